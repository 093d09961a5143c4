package dispatch

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/covetpy/covetpy/ops/metrics"
)

// What operations read from the dispatcher: readiness, and the pool snapshot the
// metrics collector turns into gauges at scrape time. Nothing here runs on the
// request path.

// sessState is where a session is in its life, for the workers-by-state gauge.
type sessState uint8

const (
	stateNew      sessState = iota // created, not counted yet
	stateStarting                  // handshake: WELCOME sent, waiting for ready
	stateReady                     // in the pool
	stateDraining                  // out of the pool (BYE, Drain, Retire), still connected
	stateGone                      // closed
)

// setState moves s to st under a.mu.
func (a *app) setState(s *Session, st sessState) {
	a.mu.Lock()
	a.setStateLocked(s, st)
	a.mu.Unlock()
}

func (a *app) setStateLocked(s *Session, st sessState) {
	if s.state >= stateStarting && s.state <= stateDraining {
		a.states[s.state-stateStarting]--
	}
	if st >= stateStarting && st <= stateDraining {
		a.states[st-stateStarting]++
	}
	s.state = st
}

// inState is the number of a's sessions in st (stateStarting ..= stateDraining),
// under a.mu.
func (a *app) inState(st sessState) int { return a.states[st-stateStarting] }

// Ready reports nil when at least one app has registered and every registered app
// has at least one live worker; otherwise an error naming the apps without one.
// It backs the admin /readyz endpoint.
func (d *Dispatcher) Ready() error {
	live := d.Live()
	if len(live) == 0 {
		return errors.New("no app has registered a worker yet")
	}
	var down []string
	for name, n := range live {
		if n == 0 {
			down = append(down, fmt.Sprintf("%q", name))
		}
	}
	if len(down) == 0 {
		return nil
	}
	slices.Sort(down)
	return fmt.Errorf("app %s has no live worker", strings.Join(down, ", "))
}

// PoolStats is a snapshot of every app's pool: requests in flight and queued,
// workers by state, and the bytes in use in each pooled worker's rings. Apps are in
// name order, workers in app then id order.
func (d *Dispatcher) PoolStats() metrics.PoolStats {
	d.mu.Lock()
	apps := make([]*app, 0, len(d.apps))
	for _, a := range d.apps {
		apps = append(apps, a)
	}
	d.mu.Unlock()
	slices.SortFunc(apps, func(x, y *app) int { return strings.Compare(x.name, y.name) })

	var st metrics.PoolStats
	var pooled []*Session
	for _, a := range apps {
		a.mu.Lock()
		st.Apps = append(st.Apps, metrics.AppStats{
			App: a.name, InFlight: a.inflight, Queued: a.waiting,
			Starting: a.inState(stateStarting),
			Ready:    a.inState(stateReady),
			Draining: a.inState(stateDraining),
		})
		n := len(pooled)
		pooled = append(pooled, a.sessions...)
		a.mu.Unlock()
		slices.SortFunc(pooled[n:], func(x, y *Session) int { return int(x.ID - y.ID) })
	}
	// The rings are read outside a.mu: ringMu may wait on a writer.
	for _, s := range pooled {
		if w, ok := s.rings(); ok {
			st.Workers = append(st.Workers, w)
		}
	}
	return st
}

// rings reads the occupancy of s's rings; ok is false once the segment is gone.
func (s *Session) rings() (metrics.WorkerStats, bool) {
	s.ringMu.RLock()
	defer s.ringMu.RUnlock()
	if s.gone || s.seg == nil {
		return metrics.WorkerStats{}, false
	}
	req, resp := s.seg.RequestRing(), s.seg.ResponseRing()
	return metrics.WorkerStats{
		App: s.App, Worker: s.ID,
		RequestRingUsed: req.Used(), RequestRingSize: req.Capacity(),
		ResponseRingUsed: resp.Used(), ResponseRingSize: resp.Capacity(),
	}, true
}

// sinceOrZero is the time since t, or 0 for the zero t.
func sinceOrZero(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return time.Since(t)
}
