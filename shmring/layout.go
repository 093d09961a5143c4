package shmring

import (
	"fmt"
	"math/bits"
)

// Segment header layout (PROTOCOL.md §2.1). All integers are little-endian.
const (
	Magic      = "COVETSHM" // bytes 0..8 of every segment
	Version    = 1          // protocol version stored at OffVersion
	HeaderSize = 4096       // bytes before the request ring; also req_offset

	OffMagic           = 0   // [8]byte, Magic
	OffVersion         = 8   // u32
	OffHeaderSize      = 12  // u32, HeaderSize
	OffSegmentSize     = 16  // u64
	OffReqOffset       = 24  // u64, HeaderSize
	OffReqCapacity     = 32  // u64
	OffRespOffset      = 40  // u64
	OffRespCapacity    = 48  // u64
	OffGatewayPID      = 56  // u32
	OffWorkerPID       = 60  // u32
	OffEpoch           = 64  // u64, non-zero
	OffWorkerHeartbeat = 128 // u64, CLOCK_MONOTONIC nanoseconds, written by the worker
	OffWorkerState     = 192 // u32, WorkerState, written by the worker
)

// Ring control block layout (PROTOCOL.md §2.1): offsets from the start of a ring's
// control block. Each field has its own 128 bytes so that no two writers share a
// cache line (or an adjacent-line-prefetch pair).
const (
	ControlBlockSize = 1024

	CtlTail             = 0   // u64, bytes ever claimed by producers
	CtlHeadCache        = 128 // u64, producers' cached copy of head
	CtlHead             = 256 // u64, bytes ever released by the consumer
	CtlConsumerSleeping = 384 // u32, 0/1: consumer sets, producer clears
	CtlProducerWaiting  = 512 // u32, 0/1: producer sets, consumer clears
)

// Ring geometry limits (PROTOCOL.md §2.1, §4).
const (
	MinCapacity     = 4096
	MaxCapacity     = 1 << 30
	DefaultCapacity = 1 << 20
)

// Record layout (PROTOCOL.md §2.2).
const (
	RecordHeaderSize = 8  // i32 length (the commit word), i32 type
	FrameHeaderSize  = 16 // u64 id, u32 flags, u32 reserved (0)
	// FrameOverhead is the size of a record with an empty payload.
	FrameOverhead = RecordHeaderSize + FrameHeaderSize
	// RecordAlign is the alignment of every record's start index.
	RecordAlign = 8
)

// Record types this package interprets. The meaning of frame types 16..127 belongs to
// workerproto; shmring only checks the range.
const (
	TypePad      int32 = 1   // padding to the wrap point; no frame header
	MinFrameType int32 = 16  // lowest valid frame type
	MaxFrameType int32 = 127 // highest valid frame type
)

// Fragmentation flags (PROTOCOL.md §2.3). The other flags (CANCEL 0x4, ERR 0x8) carry
// meaning only to workerproto and pass through this package untouched.
const (
	FlagBegin uint32 = 0x1 // first fragment of a message
	FlagEnd   uint32 = 0x2 // last fragment of a message
)

// maxPos bounds tail and head. An honest ring needs decades at 10 GB/s to get there;
// a larger value read from shared memory is treated as corruption, which keeps all
// position arithmetic free of overflow.
const maxPos = 1 << 62

// Geometry is the size of the two rings of a segment. The zero value means
// DefaultCapacity for both.
type Geometry struct {
	ReqCapacity  uint64 // request ring data bytes; power of two in [MinCapacity, MaxCapacity]; 0 means DefaultCapacity
	RespCapacity uint64 // response ring data bytes; same rules
}

// WithDefaults returns g with zero capacities replaced by DefaultCapacity.
func (g Geometry) WithDefaults() Geometry {
	if g.ReqCapacity == 0 {
		g.ReqCapacity = DefaultCapacity
	}
	if g.RespCapacity == 0 {
		g.RespCapacity = DefaultCapacity
	}
	return g
}

// Validate reports whether both capacities are powers of two within
// [MinCapacity, MaxCapacity]. It does not apply defaults.
func (g Geometry) Validate() error {
	if err := validCapacity(g.ReqCapacity); err != nil {
		return fmt.Errorf("shmring: req_capacity: %w", err)
	}
	if err := validCapacity(g.RespCapacity); err != nil {
		return fmt.Errorf("shmring: resp_capacity: %w", err)
	}
	return nil
}

func validCapacity(c uint64) error {
	if c < MinCapacity || c > MaxCapacity || bits.OnesCount64(c) != 1 {
		return fmt.Errorf("%d is not a power of two in [%d, %d]", c, MinCapacity, MaxCapacity)
	}
	return nil
}

// ReqOffset is the segment offset of the request ring's control block.
func (g Geometry) ReqOffset() uint64 { return HeaderSize }

// RespOffset is the segment offset of the response ring's control block.
func (g Geometry) RespOffset() uint64 { return HeaderSize + ControlBlockSize + g.ReqCapacity }

// SegmentSize is the total size of the segment.
func (g Geometry) SegmentSize() uint64 { return g.RespOffset() + ControlBlockSize + g.RespCapacity }

// MaxRecord is the largest record (header included) a ring of capacity c accepts.
func MaxRecord(c uint64) uint64 { return c / 8 }

// MaxPayload is the largest fragment payload a ring of capacity c accepts.
func MaxPayload(c uint64) int { return int(c/8) - FrameOverhead }

func align8(n uint64) uint64 { return (n + RecordAlign - 1) &^ (RecordAlign - 1) }
