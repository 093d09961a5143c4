package dispatch

import (
	"time"

	"github.com/covetpy/covetpy/workerproto"
)

// What the supervisor needs to recycle workers and watch them: a session's request
// count, its load, its heartbeat, and a graceful or forced end.

// Heartbeat is the interval workers are told to refresh their heartbeat at.
func (d *Dispatcher) Heartbeat() time.Duration { return d.cfg.Heartbeat }

// Served reports how many requests this worker has finished (answered, failed or
// abandoned), counting each attempt of a retried request once.
func (s *Session) Served() int {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.served
}

// InFlight reports how many requests have been handed to this worker and are not
// finished yet.
func (s *Session) InFlight() int {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.inflight
}

// Heartbeat loads the worker's heartbeat (CLOCK_MONOTONIC ns, written by the worker).
// ok is false once the session has ended and its segment is released.
func (s *Session) Heartbeat() (ns uint64, ok bool) {
	s.ringMu.RLock()
	defer s.ringMu.RUnlock()
	if s.gone || s.seg == nil {
		return 0, false
	}
	return s.seg.WorkerHeartbeat(), true
}

// Retire ends the session gracefully: it takes the worker out of its app's pool at
// once (it is handed no new request), waits until the requests already handed to it
// have finished (at most deadline), then sends DRAIN with the rest of deadline. The
// worker then finishes anything left, says BYE and exits. Waiting before DRAIN means
// no request reaches a worker that has begun draining (it would refuse it with 503),
// so a retirement fails no request. Retire returns when DRAIN has been sent.
func (s *Session) Retire(deadline time.Duration) {
	s.a.remove(s)
	end := time.Now().Add(deadline)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for s.InFlight() > 0 && time.Now().Before(end) {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
	}
	left := max(time.Until(end), time.Millisecond)
	if err := s.send(workerproto.Drain{DeadlineMS: left.Milliseconds()}); err != nil {
		s.close(err)
	}
}

// Close ends the session at once, as if the worker had died: its in-flight requests
// fail with 502, or go to another worker if it never took them and is proven gone
// (see teardown). Used by the watchdog on an external worker that stopped
// responding.
func (s *Session) Close(reason error) { s.close(reason) }
