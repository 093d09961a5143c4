package server

import (
	"context"
	"iter"
	"maps"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/ops/metrics"
)

// Bounds under hostile or overloading clients: max_connections (admit), the
// response buffer budget (admitResponse, watchHeld, shedSlowReaders) and the
// release of memory after a burst (releaseLoop). Config documents the
// settings.

const (
	// watchIdle and watchEvery are how often watchHeld reads the response
	// bytes held: every watchIdle while they are under a quarter of the
	// budget, every watchEvery above it or while requests wait for it. A
	// ring reader copies at most a few gigabytes a second, so the budget is
	// overrun by tens of megabytes at most before the slowest readers are
	// shed. Reading on a timer, rather than waking the watcher as requests
	// start, costs the request path nothing.
	watchIdle  = 100 * time.Millisecond
	watchEvery = 10 * time.Millisecond
	// minStuck: a write blocked for less than this is not a slow reader's;
	// it is never shed for the budget.
	minStuck = 100 * time.Millisecond
	// shedPace: after a pass of shedSlowReaders, which holds s.mu over every
	// connection (65 ms at 500,000), watchHeld lets shedPace times its
	// length go by before the next, so that accepts and closes keep s.mu at
	// least nine tenths of the time while the budget stays spent (with no
	// write stuck long enough to shed, every pass finds nothing).
	shedPace = 10
	// releaseEvery is how often releaseLoop looks for a burst that ended.
	releaseEvery = 5 * time.Second
	// releaseMinBytes: a burst that held less response memory than this at
	// its peak is not worth a forced collection.
	releaseMinBytes = 32 << 20
	// idleSample and maxScan bound admit's scan at the limit, which holds
	// s.mu (every connection's open and close waits on it): it picks the
	// longest idle of the first idleSample idle connections it meets, in
	// the map's random order, and looks at no more than maxScan in all. A
	// full scan of 500,000 connections took 190 ms per accepted connection.
	idleSample = 64
	maxScan    = 4096
)

// admit makes room for one more connection within MaxConnections, closing
// the longest-idle keep-alive connection when at the limit (longestIdle: of
// a sample when there are many). It reports false when it found every open
// connection busy: the new one is to be refused.
func (s *Server) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns)+int(s.pending.Load()) < s.cfg.MaxConnections {
		return true
	}
	if !s.shedLogged {
		s.shedLogged = true
		s.log.Warn("max_connections reached: closing the longest-idle keep-alive connections for new ones, and refusing new ones while every connection is busy (logged once; see covet_connections_shed_total)",
			"max_connections", s.cfg.MaxConnections)
	}
	for range 3 { // a victim may turn busy between the scan and its close
		victim := longestIdle(maps.Keys(s.conns))
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

// longestIdle returns the longest idle of the first idleSample idle
// connections conns yields, looking at no more than maxScan of them; nil
// when it met none idle.
func longestIdle(conns iter.Seq[*conn]) *conn {
	var victim *conn
	var since time.Time
	seen, idle := 0, 0
	for c := range conns {
		if t, ok := c.idleSince(); ok {
			if victim == nil || t.Before(since) {
				victim, since = c, t
			}
			if idle++; idle == idleSample {
				break
			}
		}
		if seen++; seen == maxScan {
			break
		}
	}
	return victim
}

// admitResponse lets a request be dispatched while the response bytes held
// are within MaxBufferedResponseBytes; otherwise it waits, up to
// ResponseBudgetWait, for watchHeld to see them back within it (shedding
// slow readers meanwhile). It reports false when they were not in time or
// ctx ended.
func (s *Server) admitResponse(ctx context.Context) bool {
	if s.held() <= s.cfg.MaxBufferedResponseBytes {
		return true
	}
	s.metrics.BudgetWaited()
	s.budgetWaiters.Add(1)
	defer s.budgetWaiters.Add(-1)
	t := time.NewTimer(s.cfg.ResponseBudgetWait)
	defer t.Stop()
	for {
		s.freedMu.Lock()
		freed := s.freed
		s.freedMu.Unlock()
		if s.held() <= s.cfg.MaxBufferedResponseBytes {
			return true
		}
		s.wakeWatcher() // read at the fast pace now
		select {
		case <-freed:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (s *Server) wakeWatcher() {
	select {
	case s.wakeWatch <- struct{}{}:
	default:
	}
}

// watchHeld keeps the response bytes held within MaxBufferedResponseBytes:
// it reads them on a timer (watchIdle, watchEvery); above the budget it
// sheds the slowest readers (paced: shedPace), below it it lets waiting
// requests go. It also keeps the peak for releaseLoop.
func (s *Server) watchHeld() {
	t := time.NewTimer(watchIdle)
	defer t.Stop()
	var nextShed time.Time
	for {
		select {
		case <-t.C:
		case <-s.wakeWatch: // a request waits for the budget
		case <-s.stopRelease:
			return
		}
		held := s.held()
		if held > s.heldPeak.Load() {
			s.heldPeak.Store(held)
		}
		budget := s.cfg.MaxBufferedResponseBytes
		if held > budget {
			if now := time.Now(); !now.Before(nextShed) {
				nextShed = now.Add(shedPace * s.shedSlowReaders(held-budget+budget/8))
			}
		} else if s.budgetWaiters.Load() > 0 {
			s.freedMu.Lock()
			close(s.freed)
			s.freed = make(chan struct{})
			s.freedMu.Unlock()
		}
		next := watchIdle
		if held > budget/4 || s.budgetWaiters.Load() > 0 {
			next = watchEvery
		}
		t.Reset(next)
	}
}

// shedSlowReaders closes the connections whose response writes have been
// blocked longest (at least minStuck), enough of them to free about excess
// bytes if each held a whole window (dispatch.MaxResponseHeld): their
// clients are the ones holding the budget. The freed bytes show at the next
// watch, once their responses have been abandoned. It returns how long it
// held s.mu.
func (s *Server) shedSlowReaders(excess int64) (locked time.Duration) {
	type stuck struct {
		c     *conn
		since int64
	}
	var victims []stuck
	s.mu.Lock()
	start := time.Now()
	cut := start.Add(-minStuck).UnixNano()
	for c := range s.conns {
		if t := c.writeStart.Load(); t != 0 && t <= cut {
			victims = append(victims, stuck{c, t})
		}
	}
	locked = time.Since(start)
	s.mu.Unlock()
	if len(victims) == 0 {
		return locked
	}
	slices.SortFunc(victims, func(a, b stuck) int { return int(a.since - b.since) })
	n := min(len(victims), int((excess+dispatch.MaxResponseHeld-1)/dispatch.MaxResponseHeld))
	if !s.budgetLogged.Swap(true) {
		s.log.Warn("response buffer budget spent: closing the connections of the slowest readers (logged once; see covet_slow_readers_shed_total)",
			"max_buffered_response_bytes", s.cfg.MaxBufferedResponseBytes)
	}
	for _, v := range victims[:n] {
		v.c.debug("shed", errBudget)
		v.c.nc.Close() // the blocked write fails; the backend abandons the response
		s.metrics.SlowReaderShed()
	}
	return locked
}

// releaseLoop returns freed memory to the operating system once a burst of
// responses has ended: a burst of slow readers leaves hundreds of megabytes
// of pooled response chunks (sync.Pool) that the runtime only frees over
// two collections, which a gateway gone quiet may not run for minutes, and
// then returns to the system slowly. So, every period, when the peak of the
// response bytes held since the last release reached minBytes and what is
// held now is under an eighth of it, it collects (moving the pooled chunks
// to the pool's victim cache), then calls debug.FreeOSMemory (which
// collects again, freeing them, and returns the free heap at once).
func (s *Server) releaseLoop(period time.Duration, minBytes int64) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.stopRelease:
			return
		case <-t.C:
		}
		peak, cur := s.heldPeak.Load(), s.held()
		if peak < minBytes || cur > peak/8 {
			continue
		}
		runtime.GC()
		debug.FreeOSMemory()
		s.heldPeak.Store(cur)
		s.metrics.MemoryReleased()
		s.log.Debug("returned memory to the system after a burst", "peak_held_bytes", peak)
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
