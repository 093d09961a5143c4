package shmring

import (
	"sync/atomic"
)

// Producer is a ring's write side: *MPSCProducer or *SPSCProducer.
type Producer interface {
	// TryWrite writes one frame without blocking. It returns ErrFull when there is
	// no room now, ErrTooLarge when len(payload) > MaxPayload, ErrInvalid for a type
	// outside MinFrameType..MaxFrameType, and an error wrapping ErrCorrupt when the
	// ring's shared state is impossible.
	TryWrite(typ int32, id uint64, flags uint32, payload []byte) error
	// MaxPayload is the largest payload TryWrite accepts.
	MaxPayload() int
	// setWaiting stores producer_waiting = 1 (a full fence, §2.5).
	setWaiting()
}

// MPSCProducer writes the request ring (PROTOCOL.md §2.2): any number of goroutines
// may call TryWrite at once. Claims are made by compare-and-swap on tail; each
// goroutine then fills and commits its own claim.
type MPSCProducer struct {
	r    *Ring
	wake Ringer // the consumer's doorbell; may be nil
}

// NewMPSCProducer returns a producer for r that rings wake (the consumer's doorbell)
// when it finds the consumer asleep. wake may be nil (no wakeups).
func NewMPSCProducer(r *Ring, wake Ringer) *MPSCProducer {
	return &MPSCProducer{r: r, wake: wake}
}

// MaxPayload is the largest payload one frame can carry.
func (p *MPSCProducer) MaxPayload() int { return p.r.MaxPayload() }

func (p *MPSCProducer) setWaiting() { atomic.StoreUint32(p.r.producerWaiting(), 1) }

// TryWrite writes one frame; see Producer. It is safe for concurrent use, allocates
// nothing, and makes a system call only to wake a sleeping consumer.
func (p *MPSCProducer) TryWrite(typ int32, id uint64, flags uint32, payload []byte) error {
	r := p.r
	if !validType(typ) {
		return ErrInvalid
	}
	if len(payload) > r.MaxPayload() {
		return ErrTooLarge
	}
	recLen := uint64(FrameOverhead + len(payload))
	for {
		// head_cache is loaded before tail, so an honest ring has hc <= t.
		hc := atomic.LoadUint64(r.headCache())
		t := atomic.LoadUint64(r.tail())
		if t%RecordAlign != 0 || t >= maxPos {
			return r.corrupt(CtlTail, "tail misaligned or out of range", t)
		}
		if hc%RecordAlign != 0 || hc > t {
			return r.corrupt(CtlHeadCache, "head_cache misaligned or beyond tail", hc)
		}
		n, pad := r.claimSize(t, recLen)
		if t-hc+n > r.capacity {
			// Refresh the cache from the consumer's head. tail was loaded before
			// head, so an honest ring has t <= h + capacity; t2, loaded after,
			// has h <= t2.
			h := atomic.LoadUint64(r.head())
			t2 := atomic.LoadUint64(r.tail())
			if h%RecordAlign != 0 || h >= maxPos || h > t2 || t > h+r.capacity {
				return r.corrupt(CtlHead, "head misaligned or outside [tail-capacity, tail]", h)
			}
			if h <= hc {
				return ErrFull // the consumer has released nothing since hc
			}
			atomic.StoreUint64(r.headCache(), h)
			if h < t && t-h+n > r.capacity {
				return ErrFull
			}
			continue
		}
		if !atomic.CompareAndSwapUint64(r.tail(), t, t+n) {
			continue
		}
		r.fill(t, pad, typ, id, flags, payload)
		return r.notify(p.wake)
	}
}

// SPSCProducer writes the response ring (PROTOCOL.md §2.2): one goroutine at a time.
// It owns tail and keeps its own copy, so a scribbled tail cannot misdirect it.
type SPSCProducer struct {
	r         *Ring
	wake      Ringer
	tailPos   uint64 // private copy of tail
	headCache uint64 // private copy of head
}

// NewSPSCProducer returns the single producer of r, starting at the ring's current
// tail. It fails with an error wrapping ErrCorrupt if head and tail are inconsistent.
func NewSPSCProducer(r *Ring, wake Ringer) (*SPSCProducer, error) {
	h, t, err := loadHeadTail(r)
	if err != nil {
		return nil, err
	}
	return &SPSCProducer{r: r, wake: wake, tailPos: t, headCache: h}, nil
}

// MaxPayload is the largest payload one frame can carry.
func (p *SPSCProducer) MaxPayload() int { return p.r.MaxPayload() }

func (p *SPSCProducer) setWaiting() { atomic.StoreUint32(p.r.producerWaiting(), 1) }

// TryWrite writes one frame; see Producer. Not safe for concurrent use.
func (p *SPSCProducer) TryWrite(typ int32, id uint64, flags uint32, payload []byte) error {
	r := p.r
	if !validType(typ) {
		return ErrInvalid
	}
	if len(payload) > r.MaxPayload() {
		return ErrTooLarge
	}
	t := p.tailPos
	n, pad := r.claimSize(t, uint64(FrameOverhead+len(payload)))
	if t-p.headCache+n > r.capacity {
		h := atomic.LoadUint64(r.head())
		if h%RecordAlign != 0 || h > t || t-h > r.capacity {
			return r.corrupt(CtlHead, "head misaligned or outside [tail-capacity, tail]", h)
		}
		p.headCache = h
		if t-h+n > r.capacity {
			return ErrFull
		}
	}
	// Claim (advance tail) before the commit: a consumer that sees the commit may
	// check the record against tail.
	p.tailPos = t + n
	atomic.StoreUint64(r.tail(), t+n)
	r.fill(t, pad, typ, id, flags, payload)
	return r.notify(p.wake)
}

// loadHeadTail reads head then tail and checks head <= tail <= head+capacity.
// Used where no other party can move head (consumer start-up) or tail (SPSC
// producer start-up); elsewhere the bounds are checked as in TryWrite.
func loadHeadTail(r *Ring) (h, t uint64, err error) {
	h = atomic.LoadUint64(r.head())
	t = atomic.LoadUint64(r.tail())
	switch {
	case h%RecordAlign != 0 || h >= maxPos:
		return 0, 0, r.corrupt(CtlHead, "head misaligned or out of range", h)
	case t%RecordAlign != 0 || t >= maxPos:
		return 0, 0, r.corrupt(CtlTail, "tail misaligned or out of range", t)
	case h > t:
		return 0, 0, r.corrupt(CtlTail, "tail behind head", t)
	case t-h > r.capacity:
		return 0, 0, r.corrupt(CtlTail, "tail more than capacity ahead of head", t)
	}
	return h, t, nil
}
