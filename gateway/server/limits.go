package server

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/ops/metrics"
)

// Bounds under hostile or overloading clients: max_connections (admit), the
// response buffer budget (reserve) and the release of memory after a burst
// (releaseLoop). Config documents the settings.

const (
	// releaseEvery is how often releaseLoop looks for a burst that ended.
	releaseEvery = 5 * time.Second
	// releaseMinBytes: a burst that reserved less response buffer budget
	// than this at its peak is not worth a forced collection.
	releaseMinBytes = 32 << 20
)

// admit makes room for one more connection within MaxConnections, closing
// the longest-idle keep-alive connection when at the limit. It reports
// false when every open connection is busy: the new one is to be refused.
// The scan is linear in the open connections, and only happens at the
// limit.
func (s *Server) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) < s.cfg.MaxConnections {
		return true
	}
	if !s.shedLogged {
		s.shedLogged = true
		s.log.Warn("max_connections reached: closing the longest-idle keep-alive connections for new ones, and refusing new ones while every connection is busy (logged once; see covet_connections_shed_total)",
			"max_connections", s.cfg.MaxConnections)
	}
	for range 3 { // a victim may turn busy between the scan and its close
		var victim *conn
		var since time.Time
		for c := range s.conns {
			if t, ok := c.idleSince(); ok && (victim == nil || t.Before(since)) {
				victim, since = c, t
			}
		}
		if victim == nil {
			break
		}
		if victim.closeIfIdle() {
			s.metrics.ConnShed(metrics.ShedIdle)
			return true
		}
	}
	s.metrics.ConnShed(metrics.ShedRefused)
	return false
}

// reserve takes one response's share (dispatch.MaxResponseHeld) of the
// response buffer budget, waiting up to ResponseBudgetWait for one to free.
// It reports false when none freed in time or ctx ended.
func (s *Server) reserve(ctx context.Context) bool {
	select {
	case s.budget <- struct{}{}:
		s.notePeak()
		return true
	default:
	}
	s.metrics.BudgetWaited()
	t := time.NewTimer(s.cfg.ResponseBudgetWait)
	defer t.Stop()
	select {
	case s.budget <- struct{}{}:
		s.notePeak()
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// unreserve gives a reservation back.
func (s *Server) unreserve() { <-s.budget }

// notePeak raises the peak number of reservations seen since the last
// release. Racing callers may lose an update by one: it only decides when
// memory is worth releasing.
func (s *Server) notePeak() {
	if n := int64(len(s.budget)); n > s.peak.Load() {
		s.peak.Store(n)
	}
}

// reservedBytes is the response buffer budget in use.
func (s *Server) reservedBytes() int64 {
	return int64(len(s.budget)) * dispatch.MaxResponseHeld
}

// releaseLoop returns freed memory to the operating system once a burst of
// responses has ended: a burst of slow readers leaves hundreds of megabytes
// of pooled response chunks (sync.Pool) that the runtime only frees over
// two collections, which a gateway gone quiet may not run for minutes, and
// then returns to the system slowly. So, every period, when the peak of
// reservations since the last release reached minSlots and what is
// reserved now is under an eighth of it, it collects (moving the pooled
// chunks to the pool's victim cache), then calls debug.FreeOSMemory (which
// collects again, freeing them, and returns the free heap at once).
func (s *Server) releaseLoop(period time.Duration, minSlots int64) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.stopRelease:
			return
		case <-t.C:
		}
		peak, cur := s.peak.Load(), int64(len(s.budget))
		if peak < minSlots || cur > peak/8 {
			continue
		}
		runtime.GC()
		debug.FreeOSMemory()
		s.peak.Store(cur)
		s.metrics.MemoryReleased()
		s.log.Debug("returned memory to the system after a burst", "peak_reserved_bytes", peak*dispatch.MaxResponseHeld)
	}
}

// idleSince reports when c became idle (waiting for a request, nothing to
// answer, not closing), and whether it is.
func (c *conn) idleSince() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight != 0 || !c.readerIdle || c.closing {
		return time.Time{}, false
	}
	if c.idleFrom.After(c.idleAt) {
		return c.idleFrom, true
	}
	return c.idleAt, true
}
