package shmring

import (
	"context"
	"sync"
	"time"
)

// DefaultWaitTimeout is the longest single wait of a Writer (the gateway's bound in
// PROTOCOL.md §2.5).
const DefaultWaitTimeout = 10 * time.Millisecond

// Waiter blocks a producer (ring full) or a consumer (ring empty) until the other
// side may have acted. *Doorbell (one waiting goroutine) and *Signal (any number)
// implement it.
type Waiter interface {
	// Wait first arms itself so that a wakeup from now on is not lost, then calls
	// recheck (if not nil), which publishes the waiter's flag (a full fence) and
	// looks again; if recheck returns true, Wait returns nil at once. Otherwise it
	// blocks until woken or timeout passes, returning nil either way, or ctx.Err()
	// if ctx ends first.
	Wait(ctx context.Context, timeout time.Duration, recheck func() bool) error
}

// Signal is a Waiter for many goroutines, woken all at once by Broadcast. The
// gateway uses one per worker for producers blocked on the request ring: the single
// goroutine that waits on the gateway doorbell calls Broadcast when it wakes. The
// zero value is ready to use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{} // closed by Broadcast; nil when nobody is armed
}

// Wait implements Waiter.
func (s *Signal) Wait(ctx context.Context, timeout time.Duration, recheck func() bool) error {
	s.mu.Lock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	ch := s.ch
	s.mu.Unlock()
	if recheck != nil && recheck() {
		return nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Broadcast wakes every goroutine armed in Wait.
func (s *Signal) Broadcast() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// Writer sends messages through a Producer, splitting payloads larger than one
// record into fragments (PROTOCOL.md §2.4) and waiting for space when the ring is
// full (§2.5). It is safe for concurrent use when its Producer and Space are (an
// MPSCProducer and a Signal). The fast path allocates nothing.
type Writer struct {
	// Producer writes the frames. Required.
	Producer Producer
	// Space is waited on when the ring is full: the producer side's doorbell, or a
	// Signal fed by the goroutine that waits on it. Nil: return ErrFull instead.
	Space Waiter
	// Timeout bounds each single wait; 0 means DefaultWaitTimeout.
	Timeout time.Duration
}

// WriteMessage sends payload as one message: a single frame flagged BEGIN|END if it
// fits (also when empty), else fragments flagged BEGIN, 0..., END. flags (for example
// ERR 0x8 on an ERROR message) is ORed into every fragment and must not contain
// FlagBegin or FlagEnd. ctx is consulted only while waiting for space. An error
// after the first fragment leaves the message unterminated; the caller must end the
// exchange by other means (CANCEL or ERROR, or ending the session).
func (w *Writer) WriteMessage(ctx context.Context, typ int32, id uint64, flags uint32, payload []byte) error {
	if flags&(FlagBegin|FlagEnd) != 0 {
		return ErrInvalid
	}
	return w.fragments(ctx, typ, id, flags, payload, true, true, 0)
}

// Stream starts a message whose payload is sent in pieces (a body). Nothing is
// written until the first Write or End.
func (w *Writer) Stream(typ int32, id uint64, flags uint32) Stream {
	return Stream{w: w, typ: typ, id: id, flags: flags}
}

// Stream is one message being sent in pieces; see Writer.Stream. Not safe for
// concurrent use; frames of other messages may interleave freely with it.
type Stream struct {
	w      *Writer
	id     uint64
	typ    int32
	flags  uint32
	begun  bool  // BEGIN has been sent
	closed bool  // END has been sent
	err    error // sticky
}

// Write sends p as one or more fragments, none flagged END. An empty p sends nothing.
func (s *Stream) Write(ctx context.Context, p []byte) error {
	if err := s.check(0); err != nil || len(p) == 0 {
		return err
	}
	s.err = s.w.fragments(ctx, s.typ, s.id, s.flags, p, !s.begun, false, 0)
	s.begun = true
	return s.err
}

// End sends p (possibly empty) as the last fragment(s), the final one flagged END
// and also with extra (for example ERR to abort a body). A message that had no
// fragment yet becomes one frame flagged BEGIN|END.
func (s *Stream) End(ctx context.Context, p []byte, extra uint32) error {
	if err := s.check(extra); err != nil {
		return err
	}
	s.err = s.w.fragments(ctx, s.typ, s.id, s.flags, p, !s.begun, true, extra)
	s.begun, s.closed = true, true
	return s.err
}

func (s *Stream) check(extra uint32) error {
	switch {
	case s.err != nil:
		return s.err
	case s.closed || (s.flags|extra)&(FlagBegin|FlagEnd) != 0:
		return ErrInvalid
	}
	return nil
}

// fragments writes p in MaxPayload pieces; the first gets BEGIN if begin, the last
// gets END|extra if end.
func (w *Writer) fragments(ctx context.Context, typ int32, id uint64, flags uint32, p []byte, begin, end bool, extra uint32) error {
	max := w.Producer.MaxPayload()
	for {
		chunk, last := p, true
		if len(chunk) > max {
			chunk, last = p[:max], false
		}
		f := flags
		if begin {
			f |= FlagBegin
		}
		if last && end {
			f |= FlagEnd | extra
		}
		if err := w.write(ctx, typ, id, f, chunk); err != nil {
			return err
		}
		begin = false
		p = p[len(chunk):]
		if last {
			return nil
		}
	}
}

// write sends one frame, waiting for space if the ring is full.
func (w *Writer) write(ctx context.Context, typ int32, id uint64, flags uint32, chunk []byte) error {
	err := w.Producer.TryWrite(typ, id, flags, chunk)
	if err != ErrFull || w.Space == nil {
		return err
	}
	return w.waitWrite(ctx, typ, id, flags, chunk)
}

// waitWrite is the slow path of §2.5: store producer_waiting = 1 (a full fence),
// try again, and only then sleep; repeat.
func (w *Writer) waitWrite(ctx context.Context, typ int32, id uint64, flags uint32, chunk []byte) error {
	p := w.Producer
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = DefaultWaitTimeout
	}
	err := ErrFull
	recheck := func() bool {
		p.setWaiting()
		err = p.TryWrite(typ, id, flags, chunk)
		return err != ErrFull
	}
	for {
		werr := w.Space.Wait(ctx, timeout, recheck)
		if err != ErrFull {
			return err
		}
		if werr != nil {
			return werr
		}
		if err = p.TryWrite(typ, id, flags, chunk); err != ErrFull {
			return err
		}
	}
}
