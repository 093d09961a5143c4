package shmring

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"
)

// WorkerState is the worker_state header field (PROTOCOL.md §2.1). It is written by
// the worker, so the gateway must treat unknown values as a violation.
type WorkerState uint32

// Worker states.
const (
	StateStarting WorkerState = 0
	StateReady    WorkerState = 1
	StateDraining WorkerState = 2
	StateClosed   WorkerState = 3
)

// HeaderInit is what the gateway writes into a new segment header.
type HeaderInit struct {
	GatewayPID uint32
	WorkerPID  uint32 // 0 for an external worker until SO_PEERCRED tells
	Epoch      uint64 // non-zero
}

// Segment is one mapped segment: header plus request and response rings.
//
// Immutable after CreateSegment / OpenSegment: the geometry, the epoch, the gateway
// pid and the two Ring views. Header fields written after set-up (worker_pid,
// worker_heartbeat, worker_state) are accessed with atomics. Close unmaps the memory:
// no Ring, producer, consumer or borrowed payload of the segment may be used after.
type Segment struct {
	f     *os.File // owns the memfd
	mem   mmap.MMap
	base  unsafe.Pointer
	geo   Geometry
	epoch uint64
	gwPID uint32
	req   *Ring
	resp  *Ring

	closeOnce sync.Once
	closeErr  error
}

// CreateSegment creates, sizes, seals and maps a new memfd segment (the gateway's
// side) and writes its header. Zero capacities in g mean DefaultCapacity.
func CreateSegment(g Geometry, h HeaderInit) (*Segment, error) {
	g = g.WithDefaults()
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if h.Epoch == 0 {
		return nil, fmt.Errorf("%w: epoch must be non-zero", ErrInvalid)
	}
	fd, err := unix.MemfdCreate("covetpy-shm", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("shmring: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "covetpy-shm")
	size := g.SegmentSize()
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("shmring: ftruncate: %w", err)
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("shmring: seal memfd: %w", err)
	}
	mem, err := mmap.MapRegion(f, int(size), mmap.RDWR, 0, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("shmring: mmap: %w", err)
	}
	// The memfd starts zeroed: rings empty, worker_state = starting.
	le := binary.LittleEndian
	copy(mem[OffMagic:], Magic)
	le.PutUint32(mem[OffVersion:], Version)
	le.PutUint32(mem[OffHeaderSize:], HeaderSize)
	le.PutUint64(mem[OffSegmentSize:], size)
	le.PutUint64(mem[OffReqOffset:], g.ReqOffset())
	le.PutUint64(mem[OffReqCapacity:], g.ReqCapacity)
	le.PutUint64(mem[OffRespOffset:], g.RespOffset())
	le.PutUint64(mem[OffRespCapacity:], g.RespCapacity)
	le.PutUint32(mem[OffGatewayPID:], h.GatewayPID)
	le.PutUint32(mem[OffWorkerPID:], h.WorkerPID)
	le.PutUint64(mem[OffEpoch:], h.Epoch)
	return newSegment(f, mem, g, h.Epoch, h.GatewayPID), nil
}

// OpenSegment maps an existing segment memfd (a worker's side, and tests). It
// duplicates fd, so the caller keeps ownership of fd. The header is untrusted: it
// must be sealed against shrinking and growing, and magic, version, sizes, offsets,
// capacities and epoch must be valid and agree with the file size; otherwise the
// error wraps ErrCorrupt. Comparing the header with the welcome message (epoch,
// sizes, worker pid) is the caller's job.
func OpenSegment(fd int) (*Segment, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("shmring: dup segment fd: %w", err)
	}
	f := os.NewFile(uintptr(nfd), "covetpy-shm")
	s, err := openSegment(f, nfd)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func openSegment(f *os.File, fd int) (*Segment, error) {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("shmring: segment fd is not a sealable memfd: %w", err)
	}
	if want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW; seals&want != want {
		return nil, headerCorrupt(0, "memfd not sealed against shrink and grow", uint64(seals))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shmring: fstat segment: %w", err)
	}
	size := uint64(st.Size)
	minSize := Geometry{MinCapacity, MinCapacity}.SegmentSize()
	maxSize := Geometry{MaxCapacity, MaxCapacity}.SegmentSize()
	if st.Size < 0 || size < minSize || size > maxSize {
		return nil, headerCorrupt(0, "segment file size out of range", size)
	}
	mem, err := mmap.MapRegion(f, int(size), mmap.RDWR, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("shmring: mmap: %w", err)
	}
	// Read the header once into private memory and validate only that copy.
	var hdr [HeaderSize]byte
	copy(hdr[:], mem)
	g, epoch, gw, err := parseHeader(hdr[:], size)
	if err != nil {
		mem.Unmap()
		return nil, err
	}
	return newSegment(f, mem, g, epoch, gw), nil
}

func headerCorrupt(off uint64, reason string, v uint64) error {
	return &CorruptError{Where: "segment header", Offset: off, Reason: reason, Value: v}
}

func parseHeader(b []byte, fileSize uint64) (g Geometry, epoch uint64, gwPID uint32, err error) {
	le := binary.LittleEndian
	g = Geometry{ReqCapacity: le.Uint64(b[OffReqCapacity:]), RespCapacity: le.Uint64(b[OffRespCapacity:])}
	epoch = le.Uint64(b[OffEpoch:])
	switch {
	case string(b[OffMagic:OffMagic+8]) != Magic:
		err = headerCorrupt(OffMagic, "bad magic", le.Uint64(b[OffMagic:]))
	case le.Uint32(b[OffVersion:]) != Version:
		err = headerCorrupt(OffVersion, "unsupported version", uint64(le.Uint32(b[OffVersion:])))
	case le.Uint32(b[OffHeaderSize:]) != HeaderSize:
		err = headerCorrupt(OffHeaderSize, "header_size is not 4096", uint64(le.Uint32(b[OffHeaderSize:])))
	case validCapacity(g.ReqCapacity) != nil:
		err = headerCorrupt(OffReqCapacity, "req_capacity not a power of two in range", g.ReqCapacity)
	case validCapacity(g.RespCapacity) != nil:
		err = headerCorrupt(OffRespCapacity, "resp_capacity not a power of two in range", g.RespCapacity)
	case le.Uint64(b[OffReqOffset:]) != g.ReqOffset():
		err = headerCorrupt(OffReqOffset, "req_offset is not 4096", le.Uint64(b[OffReqOffset:]))
	case le.Uint64(b[OffRespOffset:]) != g.RespOffset():
		err = headerCorrupt(OffRespOffset, "resp_offset disagrees with req_capacity", le.Uint64(b[OffRespOffset:]))
	case le.Uint64(b[OffSegmentSize:]) != g.SegmentSize():
		err = headerCorrupt(OffSegmentSize, "segment_size disagrees with capacities", le.Uint64(b[OffSegmentSize:]))
	case g.SegmentSize() != fileSize:
		err = headerCorrupt(OffSegmentSize, "segment_size disagrees with the memfd size", fileSize)
	case epoch == 0:
		err = headerCorrupt(OffEpoch, "epoch is zero", 0)
	}
	return g, epoch, le.Uint32(b[OffGatewayPID:]), err
}

func newSegment(f *os.File, mem mmap.MMap, g Geometry, epoch uint64, gwPID uint32) *Segment {
	s := &Segment{f: f, mem: mem, base: unsafe.Pointer(&mem[0]), geo: g, epoch: epoch, gwPID: gwPID}
	ro, po := g.ReqOffset(), g.RespOffset()
	s.req = newRing("request ring", ro, mem[ro:po], g.ReqCapacity)
	s.resp = newRing("response ring", po, mem[po:g.SegmentSize()], g.RespCapacity)
	return s
}

// Fd is the memfd to pass to the worker. It belongs to the Segment.
func (s *Segment) Fd() int { return int(s.f.Fd()) }

// Close unmaps the segment and closes its memfd. It is idempotent; see Segment for
// what must stop first.
func (s *Segment) Close() error {
	s.closeOnce.Do(func() {
		err := s.mem.Unmap()
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
		s.closeErr = err
	})
	return s.closeErr
}

// Geometry is the segment's validated geometry.
func (s *Segment) Geometry() Geometry { return s.geo }

// Size is the segment size in bytes.
func (s *Segment) Size() uint64 { return s.geo.SegmentSize() }

// RequestRing is the gateway -> worker ring.
func (s *Segment) RequestRing() *Ring { return s.req }

// ResponseRing is the worker -> gateway ring.
func (s *Segment) ResponseRing() *Ring { return s.resp }

// Epoch is the header's epoch, as validated at open.
func (s *Segment) Epoch() uint64 { return s.epoch }

// GatewayPID is the header's gateway_pid, as read at open.
func (s *Segment) GatewayPID() uint32 { return s.gwPID }

func (s *Segment) u32(off uintptr) *uint32 { return (*uint32)(unsafe.Add(s.base, off)) }
func (s *Segment) u64(off uintptr) *uint64 { return (*uint64)(unsafe.Add(s.base, off)) }

// WorkerPID loads worker_pid.
func (s *Segment) WorkerPID() uint32 { return atomic.LoadUint32(s.u32(OffWorkerPID)) }

// SetWorkerPID stores worker_pid (the gateway, for an external worker, once
// SO_PEERCRED has told it).
func (s *Segment) SetWorkerPID(pid uint32) { atomic.StoreUint32(s.u32(OffWorkerPID), pid) }

// WorkerHeartbeat loads worker_heartbeat (CLOCK_MONOTONIC ns; compare with
// MonotonicNow). Untrusted.
func (s *Segment) WorkerHeartbeat() uint64 { return atomic.LoadUint64(s.u64(OffWorkerHeartbeat)) }

// SetWorkerHeartbeat stores worker_heartbeat (the worker's side).
func (s *Segment) SetWorkerHeartbeat(ns uint64) { atomic.StoreUint64(s.u64(OffWorkerHeartbeat), ns) }

// WorkerState loads worker_state. Untrusted: values above StateClosed are possible.
func (s *Segment) WorkerState() WorkerState {
	return WorkerState(atomic.LoadUint32(s.u32(OffWorkerState)))
}

// SetWorkerState stores worker_state (the worker's side).
func (s *Segment) SetWorkerState(st WorkerState) {
	atomic.StoreUint32(s.u32(OffWorkerState), uint32(st))
}

// MonotonicNow is CLOCK_MONOTONIC in nanoseconds, the clock of worker_heartbeat.
func MonotonicNow() uint64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0 // cannot happen on Linux: the clock always exists and ts is valid
	}
	return uint64(ts.Nano())
}
