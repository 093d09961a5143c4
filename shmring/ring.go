package shmring

import (
	"sync/atomic"
	"unsafe"
)

// Frame is one committed record as a consumer sees it.
type Frame struct {
	Type  int32  // MinFrameType..MaxFrameType
	Flags uint32 // FlagBegin, FlagEnd and flags this package does not interpret
	ID    uint64 // request id
	// Payload is borrowed from shared memory: it is valid only until the callback
	// that received it returns, and a misbehaving peer can change its bytes at any
	// time. Copy it (or decode it with a bounds-checked decoder) before trusting it.
	// Its capacity equals its length, so append never writes into the ring.
	Payload []byte
}

// Ring is a view of one ring (control block and data) inside a segment. It holds no
// state of its own; the roles (MPSCProducer, SPSCProducer, Consumer) do.
type Ring struct {
	name     string         // "request ring" or "response ring", for errors
	segOff   uint64         // segment offset of the control block, for errors
	ctl      unsafe.Pointer // control block (ControlBlockSize bytes)
	data     unsafe.Pointer // record data (capacity bytes)
	buf      []byte         // the same record data as a slice
	capacity uint64
	mask     uint64
	maxRec   uint64
}

// newRing makes a view over mem, which must be ControlBlockSize+capacity bytes,
// 8-byte aligned, and stay mapped for the life of the view.
func newRing(name string, segOff uint64, mem []byte, capacity uint64) *Ring {
	if uint64(len(mem)) != ControlBlockSize+capacity || validCapacity(capacity) != nil ||
		uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0 {
		panic("shmring: internal error: bad ring memory")
	}
	return &Ring{
		name:     name,
		segOff:   segOff,
		ctl:      unsafe.Pointer(unsafe.SliceData(mem)),
		data:     unsafe.Pointer(&mem[ControlBlockSize]),
		buf:      mem[ControlBlockSize:],
		capacity: capacity,
		mask:     capacity - 1,
		maxRec:   MaxRecord(capacity),
	}
}

// Capacity is the number of record data bytes.
func (r *Ring) Capacity() uint64 { return r.capacity }

// MaxPayload is the largest payload one frame can carry in this ring.
func (r *Ring) MaxPayload() int { return MaxPayload(r.capacity) }

// Used is the number of bytes between head and tail: records written and not yet
// released, with their padding. It is a racy snapshot for monitoring, clamped to
// 0..Capacity (a misbehaving peer may store anything in the control block).
func (r *Ring) Used() uint64 {
	h := atomic.LoadUint64(r.head())
	t := atomic.LoadUint64(r.tail())
	if t <= h {
		return 0
	}
	return min(t-h, r.capacity)
}

func (r *Ring) u64(off uintptr) *uint64 { return (*uint64)(unsafe.Add(r.ctl, off)) }
func (r *Ring) u32(off uintptr) *uint32 { return (*uint32)(unsafe.Add(r.ctl, off)) }

func (r *Ring) tail() *uint64             { return r.u64(CtlTail) }
func (r *Ring) headCache() *uint64        { return r.u64(CtlHeadCache) }
func (r *Ring) head() *uint64             { return r.u64(CtlHead) }
func (r *Ring) consumerSleeping() *uint32 { return r.u32(CtlConsumerSleeping) }
func (r *Ring) producerWaiting() *uint32  { return r.u32(CtlProducerWaiting) }

// word32 and word64 point into the data area; idx must be aligned (callers keep every
// index a multiple of 8, and validate positions read from shared memory).
func (r *Ring) word32(idx uint64) *int32  { return (*int32)(unsafe.Add(r.data, uintptr(idx))) }
func (r *Ring) word64(idx uint64) *uint64 { return (*uint64)(unsafe.Add(r.data, uintptr(idx))) }

func (r *Ring) corrupt(field uintptr, reason string, v uint64) error {
	return &CorruptError{Where: r.name, Offset: r.segOff + uint64(field), Reason: reason, Value: v}
}

func (r *Ring) corruptAt(pos uint64, reason string, v uint64) error {
	return &CorruptError{Where: r.name, Offset: r.segOff + ControlBlockSize + pos&r.mask, Reason: reason, Value: v}
}

// claimSize returns the bytes a record of recLen bytes claims at position t: the
// record, plus padding to the wrap point if it does not fit before the end.
func (r *Ring) claimSize(t, recLen uint64) (n, pad uint64) {
	need := align8(recLen)
	toEnd := r.capacity - t&r.mask
	if need > toEnd {
		return toEnd + need, toEnd
	}
	return need, 0
}

// fill writes a claimed region starting at position t: an optional PAD record of pad
// bytes, then the frame. Every record is committed by storing its length last.
func (r *Ring) fill(t, pad uint64, typ int32, id uint64, flags uint32, payload []byte) {
	idx := t & r.mask
	if pad != 0 {
		*r.word32(idx + 4) = TypePad
		atomic.StoreInt32(r.word32(idx), int32(pad))
		idx = 0
	}
	*r.word32(idx + 4) = typ
	*r.word64(idx + 8) = id
	*(*uint32)(unsafe.Pointer(r.word32(idx + 16))) = flags
	*r.word32(idx + 20) = 0
	copy(r.buf[idx+FrameOverhead:], payload)
	atomic.StoreInt32(r.word32(idx), int32(FrameOverhead+len(payload)))
}

// notify is the producer side of §2.5, called after a commit. The commit's atomic
// store is sequentially consistent (XCHG on amd64), so it is the full fence that must
// separate the commit from the load of consumer_sleeping.
func (r *Ring) notify(bell Ringer) error {
	s := r.consumerSleeping()
	if atomic.LoadUint32(s) == 0 || bell == nil {
		return nil
	}
	if atomic.SwapUint32(s, 0) != 1 {
		return nil
	}
	return ringBell(bell)
}

func ringBell(bell Ringer) error {
	if err := bell.Ring(); err != nil {
		return &doorbellError{err}
	}
	return nil
}

type doorbellError struct{ err error }

func (e *doorbellError) Error() string   { return "shmring: doorbell failed: " + e.err.Error() }
func (e *doorbellError) Unwrap() []error { return []error{ErrDoorbell, e.err} }

// Ringer wakes the other side. *Doorbell is the real one; tests may use others.
type Ringer interface {
	Ring() error
}

func validType(typ int32) bool { return typ >= MinFrameType && typ <= MaxFrameType }
