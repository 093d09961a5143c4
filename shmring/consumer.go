package shmring

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// DefaultSpin is how long Consumer.Wait spin-polls before it sleeps (§2.5 step 1).
const DefaultSpin = 5 * time.Microsecond

// Consumer reads one ring (either ring: the discipline is the same). One goroutine
// at a time. It keeps head in private memory: the shared head is only ever written,
// so a scribbled head cannot misdirect it.
type Consumer struct {
	r       *Ring
	wake    Ringer // the producer side's doorbell; may be nil
	head    uint64 // private copy of head: position of the next record
	tail    uint64 // last tail seen and validated
	err     error  // sticky: once corrupt, always corrupt
	spin    time.Duration
	recheck func() bool // c.sleepAndRecheck, bound once so Wait does not allocate
}

// NewConsumer returns the consumer of r, starting at the ring's current head. wake
// (the producers' doorbell) is rung when a producer waits for space; it may be nil.
// It fails with an error wrapping ErrCorrupt if head and tail are inconsistent.
func NewConsumer(r *Ring, wake Ringer) (*Consumer, error) {
	h, t, err := loadHeadTail(r)
	if err != nil {
		return nil, err
	}
	c := &Consumer{r: r, wake: wake, head: h, tail: t, spin: DefaultSpin}
	c.recheck = c.sleepAndRecheck
	return c, nil
}

// SetSpin sets how long Wait spin-polls before sleeping; 0 disables spinning.
func (c *Consumer) SetSpin(d time.Duration) { c.spin = d }

// Head is the position of the next record to read (bytes ever consumed).
func (c *Consumer) Head() uint64 { return c.head }

// Ready reports whether a committed record waits at head. It does not validate it.
func (c *Consumer) Ready() bool {
	return atomic.LoadInt32(c.r.word32(c.head&c.r.mask)) != 0
}

// Poll delivers every committed record, in position order, to fn, then releases
// them: it zeroes the bytes they occupied, stores head once, and wakes a producer
// waiting for space (§2.2 Release, §2.5). It returns the number of frames delivered.
//
// f.Payload is borrowed from shared memory and is valid only until fn returns. If
// fn returns an error, Poll stops after that frame (which counts as consumed) and
// returns the error. Every record is validated before fn sees it; a violation
// returns an error wrapping ErrCorrupt, and every later Poll returns it again.
// Poll allocates nothing unless it returns an error.
func (c *Consumer) Poll(fn func(f Frame) error) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	r := c.r
	pos := c.head
	n := 0
	var bad, err error // bad: a violation (sticky); err: from fn
	for err == nil && pos-c.head < r.capacity {
		idx := pos & r.mask
		l := atomic.LoadInt32(r.word32(idx)) // acquire: the commit
		if l == 0 {
			break
		}
		length := uint64(uint32(l))
		typ := *r.word32(idx + 4)
		size := align8(length)
		switch {
		case l < RecordHeaderSize:
			bad = r.corruptAt(pos, "record length below 8", length)
		case length > r.maxRec:
			bad = r.corruptAt(pos, "record length above capacity/8", length)
		case idx+size > r.capacity:
			bad = r.corruptAt(pos, "record crosses the end of the buffer", length)
		case typ == TypePad && idx+length != r.capacity:
			bad = r.corruptAt(pos, "PAD record does not end at the wrap point", length)
		case typ != TypePad && !validType(typ):
			bad = r.corruptAt(pos, "invalid record type", uint64(uint32(typ)))
		case typ != TypePad && l < FrameOverhead:
			bad = r.corruptAt(pos, "frame record length below 24", length)
		case typ != TypePad && *r.word32(idx + 20) != 0:
			bad = r.corruptAt(pos, "frame header reserved word not zero", uint64(uint32(*r.word32(idx + 20))))
		case pos+size > c.tail:
			bad = c.checkTail(pos + size)
		}
		if bad != nil {
			break
		}
		pos += size
		if typ == TypePad {
			continue
		}
		n++
		err = fn(Frame{
			Type:    typ,
			Flags:   *(*uint32)(unsafe.Pointer(r.word32(idx + 16))),
			ID:      *r.word64(idx + 8),
			Payload: r.buf[idx+FrameOverhead : idx+length : idx+length],
		})
	}
	if pos != c.head {
		if werr := c.release(pos); werr != nil && err == nil {
			err = werr
		}
	}
	if bad != nil {
		c.err = bad
		return n, bad
	}
	return n, err
}

// checkTail reloads tail for a committed record ending at end. A producer advances
// tail before it commits, so tail >= end; and no producer may claim past
// head+capacity.
func (c *Consumer) checkTail(end uint64) error {
	r := c.r
	t := atomic.LoadUint64(r.tail())
	switch {
	case t%RecordAlign != 0 || t >= maxPos:
		return r.corrupt(CtlTail, "tail misaligned or out of range", t)
	case t < end:
		return r.corrupt(CtlTail, "committed record beyond tail", t)
	case t-c.head > r.capacity:
		return r.corrupt(CtlTail, "tail more than capacity ahead of head", t)
	}
	c.tail = t
	return nil
}

// release zeroes [c.head, pos), publishes head = pos and wakes a waiting producer.
func (c *Consumer) release(pos uint64) error {
	r := c.r
	from, used := c.head&r.mask, pos-c.head
	if from+used <= r.capacity {
		clear(r.buf[from : from+used])
	} else {
		clear(r.buf[from:])
		clear(r.buf[:from+used-r.capacity])
	}
	c.head = pos
	// A sequentially consistent store (XCHG on amd64): it publishes the zeroes and
	// is the full fence §2.5 requires before loading producer_waiting.
	atomic.StoreUint64(r.head(), pos)
	w := r.producerWaiting()
	if atomic.LoadUint32(w) == 0 || c.wake == nil {
		return nil
	}
	if atomic.SwapUint32(w, 0) != 1 {
		return nil
	}
	return ringBell(c.wake)
}

// Wait blocks until a record may be ready, following §2.5: it spin-polls for the
// spin duration, then stores consumer_sleeping = 1 (a full fence), checks again and,
// if still empty, waits on bell (the consumer's own doorbell) for at most timeout.
// It returns nil when the caller should poll again (record ready, bell rung, or
// timeout), ctx.Err() when ctx ends, or the bell's error.
func (c *Consumer) Wait(ctx context.Context, bell Waiter, timeout time.Duration) error {
	if c.spin > 0 {
		deadline := time.Now().Add(c.spin)
		for i := 0; ; i++ {
			if c.Ready() {
				return nil
			}
			if i%64 == 63 {
				if time.Now().After(deadline) {
					break
				}
				runtime.Gosched()
			}
		}
	}
	err := bell.Wait(ctx, timeout, c.recheck)
	atomic.StoreUint32(c.r.consumerSleeping(), 0)
	return err
}

func (c *Consumer) sleepAndRecheck() bool {
	atomic.StoreUint32(c.r.consumerSleeping(), 1) // XCHG: the full fence of §2.5
	return c.Ready()
}
