package supervisor

// Worker lifecycle: recycling (after MaxRequests, above MaxRSS), rolling restarts
// (Roll, on SIGHUP) and the heartbeat watchdog.
//
// A worker is replaced without failing a request: the replacement is started first
// and attached (it serves from then on); only then is the old worker retired
// (dispatch.Session.Retire: out of the pool, in-flight requests finish, DRAIN, BYE,
// exit). One replacement runs at a time, so at most one extra worker exists and the
// app never loses capacity. Each worker process runs in a slot (one keep loop); a
// replacement is a new slot, and a retired slot's loop ends when its process exits
// instead of restarting it.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/workerproto"
)

// Lifecycle holds the recycling and watchdog settings; it is embedded in Config. Zero
// values mean the defaults.
type Lifecycle struct {
	// MaxRequests recycles a worker once it has finished this many requests (plus
	// its jitter). 0 (the default) = never.
	MaxRequests int `config:"max_requests" help:"recycle a worker after this many requests; 0 = never"`
	// MaxRequestsJitter adds a random 0..MaxRequestsJitter requests to each
	// worker's MaxRequests, so that workers started together do not all recycle
	// together. Default 0.
	MaxRequestsJitter int `config:"max_requests_jitter" help:"add a random 0..n to each worker's max_requests"`
	// MaxRSS recycles a worker whose resident set size (from /proc/PID/statm),
	// checked every RSSInterval, is above this many bytes. 0 (the default) = never.
	MaxRSS int64
	// RSSInterval is how often MaxRSS is checked. Default 1s.
	RSSInterval time.Duration `config:"rss_interval" help:"how often worker memory is checked against max_rss; 0 = 1s"`
	// WatchdogTimeout: a worker whose heartbeat (segment header) has not advanced
	// for longer than this while it has requests in flight is killed (SIGKILL for
	// a spawned worker, which is then restarted; its session closed for an external
	// one); its in-flight requests get 502, or go to another worker if it never
	// took them. 0 = the default, 10 heartbeat intervals (10s); negative = off.
	WatchdogTimeout time.Duration `config:"watchdog_timeout" help:"kill a worker whose heartbeat stalls this long with requests in flight; 0 = 10 heartbeats, negative = off"`
	// RetireTimeout is the time a recycled or rolled-out worker gets to finish its
	// in-flight requests before it is told to cancel them. Default 30s.
	RetireTimeout time.Duration `config:"retire_timeout" help:"time a recycled worker gets to finish its requests; 0 = 30s"`
	// OnRecycle, if set, is called once for every worker replaced or killed, with
	// its app and the reason: "max_requests", "max_rss", "reload" or "watchdog".
	// It must not block.
	OnRecycle func(app, reason string)
}

// Recycle reasons, as passed to OnRecycle and counted by Recycles.
const (
	ReasonMaxRequests = "max_requests"
	ReasonMaxRSS      = "max_rss"
	ReasonReload      = "reload"
	ReasonWatchdog    = "watchdog"
)

// monitorTick is how often the monitor looks at request counts and heartbeats.
const monitorTick = 100 * time.Millisecond

// lifecycle is the Supervisor's state for all this.
type lifecycle struct {
	once sync.Once // starts the monitor
	roll sync.Mutex

	mu       sync.Mutex // guards everything below
	ctx      context.Context
	slots    map[*slot]struct{}
	external map[*dispatch.Session]struct{}
	specs    map[string]Spec // the current spec of each app (Roll replaces it)
	recycles map[string]int  // by reason
}

// slot is one keep loop: the worker processes run one after another in it.
type slot struct {
	s         *Supervisor
	n         int  // slot number, for logs
	spec      Spec // the spec its processes run
	probation bool // a replacement: if its first worker fails, the slot ends
	first     chan error
	gone      chan struct{} // closed when the keep loop has returned
	retired   atomic.Bool   // its worker drains and the slot ends, not restarting it

	// guarded by s.lc.mu
	sess     *dispatch.Session
	proc     *os.Process
	limit    int // requests after which the current worker is recycled
	reported bool
	attached bool
	pending  bool      // a recycle is queued or running
	retryAt  time.Time // a failed recycle is not tried again before this
}

func (c Lifecycle) withDefaults() Lifecycle {
	if c.RSSInterval == 0 {
		c.RSSInterval = time.Second
	}
	if c.RetireTimeout == 0 {
		c.RetireTimeout = 30 * time.Second
	}
	return c
}

// startLifecycle records sp as its app's current spec and starts the monitor.
func (s *Supervisor) startLifecycle(ctx context.Context, sp Spec) {
	s.lc.mu.Lock()
	if s.lc.ctx == nil {
		s.lc.ctx = ctx
	}
	if s.lc.specs == nil {
		s.lc.specs = map[string]Spec{}
	}
	s.lc.specs[sp.App] = sp
	s.lc.mu.Unlock()
	s.lc.once.Do(func() { go s.monitor(ctx) })
}

// newSlot registers a slot; the caller runs its keep loop.
func (s *Supervisor) newSlot(sp Spec, n int) *slot {
	sl := &slot{s: s, n: n, spec: sp, first: make(chan error, 1), gone: make(chan struct{})}
	s.lc.mu.Lock()
	if s.lc.slots == nil {
		s.lc.slots = map[*slot]struct{}{}
	}
	s.lc.slots[sl] = struct{}{}
	s.lc.mu.Unlock()
	return sl
}

// addSlot starts a new slot running sp; nil if the supervisor is stopping.
func (s *Supervisor) addSlot(sp Spec, n int, probation bool) *slot {
	s.mu.Lock() // Add must not race with Stop's Wait
	if s.stopping {
		s.mu.Unlock()
		return nil
	}
	s.wg.Add(1)
	s.mu.Unlock()
	sl := s.newSlot(sp, n)
	sl.probation = probation
	s.lc.mu.Lock()
	ctx := s.lc.ctx
	s.lc.mu.Unlock()
	go s.keep(ctx, sp, sl)
	return sl
}

// attach is called by runOnce with the outcome of a worker's handshake.
func (sl *slot) attach(sess *dispatch.Session, proc *os.Process, err error) {
	s := sl.s
	s.lc.mu.Lock()
	if err == nil {
		sl.sess, sl.proc, sl.attached = sess, proc, true
		sl.limit = s.cfg.MaxRequests
		if s.cfg.MaxRequestsJitter > 0 {
			sl.limit += rand.IntN(s.cfg.MaxRequestsJitter + 1)
		}
	}
	first := !sl.reported
	sl.reported = true
	s.lc.mu.Unlock()
	if first {
		sl.first <- err
	}
	if err == nil && (sl.retired.Load() || s.isStopping()) {
		// Retired (or Stop drained the pool) while this worker was starting.
		go sess.Retire(s.cfg.RetireTimeout)
	}
}

// ran is called by keep each time a worker has exited; true means the slot ends.
func (sl *slot) ran(err error) bool {
	s := sl.s
	s.lc.mu.Lock()
	sl.sess, sl.proc = nil, nil
	first := !sl.reported
	sl.reported = true
	if sl.probation && !sl.attached {
		sl.retired.Store(true)
	}
	s.lc.mu.Unlock()
	if first {
		if err == nil {
			err = errors.New("worker exited before attaching")
		}
		sl.first <- err
	}
	return sl.retired.Load()
}

// finish is deferred by keep.
func (sl *slot) finish() {
	sl.s.lc.mu.Lock()
	delete(sl.s.lc.slots, sl)
	if !sl.reported {
		sl.reported = true
		sl.first <- errors.New("supervisor stopping")
	}
	sl.s.lc.mu.Unlock()
	close(sl.gone)
}

// Recycles reports how many workers have been replaced or killed, by reason.
func (s *Supervisor) Recycles() map[string]int {
	s.lc.mu.Lock()
	defer s.lc.mu.Unlock()
	m := make(map[string]int, len(s.lc.recycles))
	for k, v := range s.lc.recycles {
		m[k] = v
	}
	return m
}

func (s *Supervisor) countRecycle(app, reason string) {
	s.lc.mu.Lock()
	if s.lc.recycles == nil {
		s.lc.recycles = map[string]int{}
	}
	s.lc.recycles[reason]++
	s.lc.mu.Unlock()
	if s.cfg.OnRecycle != nil {
		s.cfg.OnRecycle(app, reason)
	}
}

// watchExternal puts a worker attached through Listen under the watchdog.
func (s *Supervisor) watchExternal(sess *dispatch.Session) {
	s.lc.mu.Lock()
	if s.lc.external == nil {
		s.lc.external = map[*dispatch.Session]struct{}{}
	}
	s.lc.external[sess] = struct{}{}
	s.lc.mu.Unlock()
	s.lc.once.Do(func() { go s.monitor(context.Background()) })
}

// Roll restarts the workers of spec.App one at a time with spec (a new command,
// directory, environment or count): for each worker, a replacement is started and,
// once it serves, the old one drains and exits. No request fails. Rolls and
// recycles are serialised. If the new workers' routes differ from the running ones
// (the dispatcher refuses a second manifest while the app has live workers), the old
// workers are drained first and then replaced: requests arriving in between wait in
// the queue for the new workers (up to queue_timeout, then 503).
func (s *Supervisor) Roll(ctx context.Context, spec Spec) error {
	if len(spec.Command) == 0 {
		return fmt.Errorf("supervisor: app %q: empty worker command", spec.App)
	}
	n := max(spec.Count, 1)
	s.lc.roll.Lock()
	defer s.lc.roll.Unlock()
	s.lc.mu.Lock()
	if s.lc.ctx == nil {
		s.lc.mu.Unlock()
		return errors.New("supervisor: Roll before Start")
	}
	if s.lc.specs == nil {
		s.lc.specs = map[string]Spec{}
	}
	s.lc.specs[spec.App] = spec
	var olds []*slot
	for sl := range s.lc.slots {
		if sl.spec.App == spec.App && !sl.retired.Load() {
			olds = append(olds, sl)
		}
	}
	s.lc.mu.Unlock()
	slices.SortFunc(olds, func(a, b *slot) int { return a.n - b.n })
	s.log.Info("rolling restart", "app", spec.App, "workers", len(olds), "count", n)
	for i, old := range olds {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.isStopping() {
			return errors.New("supervisor: stopping")
		}
		if i >= n { // fewer workers now
			s.retire(old, ReasonReload)
			continue
		}
		err := s.replaceLocked(old, ReasonReload)
		var we *workerproto.Error
		if errors.As(err, &we) && we.Code == workerproto.CodeConflict {
			s.log.Warn("the new workers' routes differ: restarting the app's workers without overlap", "app", spec.App)
			return s.restartAll(spec, n, olds[i:])
		}
		if err != nil {
			return err
		}
	}
	for i := len(olds); i < n; i++ {
		s.addSlot(spec, i, false)
	}
	return nil
}

// restartAll retires olds, waits for them to exit, then starts n workers of spec.
func (s *Supervisor) restartAll(spec Spec, n int, olds []*slot) error {
	for _, old := range olds {
		s.retire(old, ReasonReload)
	}
	var news []*slot
	for i := range n {
		if sl := s.addSlot(spec, i, false); sl != nil {
			news = append(news, sl)
		}
	}
	var errs []error
	for _, sl := range news {
		if err := <-sl.first; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recycle queues the replacement of old's worker.
func (s *Supervisor) recycle(old *slot, reason string, attrs ...any) {
	s.lc.mu.Lock()
	if old.pending || time.Now().Before(old.retryAt) {
		s.lc.mu.Unlock()
		return
	}
	old.pending = true
	s.lc.mu.Unlock()
	s.log.Info("recycling worker", append([]any{"app", old.spec.App, "slot", old.n, "reason", reason}, attrs...)...)
	go func() {
		s.lc.roll.Lock()
		err := s.replaceLocked(old, reason)
		s.lc.roll.Unlock()
		s.lc.mu.Lock()
		old.pending = false
		if err != nil {
			old.retryAt = time.Now().Add(s.cfg.MaxBackoff)
		}
		s.lc.mu.Unlock()
		if err != nil {
			s.log.Warn("recycling failed; the old worker keeps serving", "app", old.spec.App, "slot", old.n, "reason", reason, "err", err)
		}
	}()
}

// replaceLocked starts a replacement for old with its app's current spec, waits until
// it serves, then retires old. The caller holds lc.roll.
func (s *Supervisor) replaceLocked(old *slot, reason string) error {
	if old.retired.Load() || s.isStopping() {
		return nil
	}
	s.lc.mu.Lock()
	spec, ok := s.lc.specs[old.spec.App]
	s.lc.mu.Unlock()
	if !ok {
		spec = old.spec
	}
	nw := s.addSlot(spec, old.n, true)
	if nw == nil {
		return nil // stopping
	}
	if err := <-nw.first; err != nil {
		return fmt.Errorf("supervisor: replacement worker: %w", err)
	}
	s.retire(old, reason)
	return nil
}

// retire drains old's worker and waits (bounded) for its slot to end.
func (s *Supervisor) retire(old *slot, reason string) {
	old.retired.Store(true)
	s.lc.mu.Lock()
	sess, proc := old.sess, old.proc
	s.lc.mu.Unlock()
	pid := 0
	if proc != nil {
		pid = proc.Pid
	}
	s.log.Info("retiring worker", "app", old.spec.App, "slot", old.n, "pid", pid, "reason", reason)
	s.countRecycle(old.spec.App, reason)
	if sess != nil {
		sess.Retire(s.cfg.RetireTimeout)
	}
	select {
	case <-old.gone:
	case <-time.After(s.cfg.RetireTimeout + 5*time.Second):
		s.lc.mu.Lock()
		if old.proc != nil {
			old.proc.Kill()
		}
		s.lc.mu.Unlock()
	}
}

// beat is what the watchdog remembers of a worker's heartbeat.
type beat struct {
	hb     uint64
	at     time.Time // when hb was first seen
	killed bool
}

// monitor checks request counts, memory and heartbeats until the supervisor stops.
func (s *Supervisor) monitor(ctx context.Context) {
	tick := time.NewTicker(monitorTick)
	defer tick.Stop()
	beats := map[*dispatch.Session]*beat{}
	lastRSS := time.Now()
	type worker struct {
		sl    *slot // nil for an external worker
		sess  *dispatch.Session
		proc  *os.Process
		limit int
	}
	var ws []worker
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s.isStopping() {
			return
		}
		now := time.Now()
		checkRSS := s.cfg.MaxRSS > 0 && now.Sub(lastRSS) >= s.cfg.RSSInterval
		if checkRSS {
			lastRSS = now
		}
		ws = ws[:0]
		s.lc.mu.Lock()
		for sl := range s.lc.slots {
			if sl.sess != nil {
				ws = append(ws, worker{sl, sl.sess, sl.proc, sl.limit})
			}
		}
		for sess := range s.lc.external {
			ws = append(ws, worker{sess: sess})
		}
		s.lc.mu.Unlock()
		seen := make(map[*dispatch.Session]bool, len(ws))
		for _, w := range ws {
			select {
			case <-w.sess.Done():
				if w.sl == nil {
					s.lc.mu.Lock()
					delete(s.lc.external, w.sess)
					s.lc.mu.Unlock()
				}
				continue
			default:
			}
			seen[w.sess] = true
			s.watchdog(beats, w.sess, w.proc, now)
			if w.sl == nil || w.sl.retired.Load() {
				continue
			}
			if s.cfg.MaxRequests > 0 {
				if n := w.sess.Served(); n >= w.limit {
					s.recycle(w.sl, ReasonMaxRequests, "pid", w.sess.PID, "served", n, "max_requests", w.limit)
					continue
				}
			}
			if checkRSS && w.proc != nil {
				if rss, err := readRSS(w.proc.Pid); err == nil && rss > s.cfg.MaxRSS {
					s.recycle(w.sl, ReasonMaxRSS, "pid", w.sess.PID, "rss", rss, "max_rss", s.cfg.MaxRSS)
				}
			}
		}
		for sess := range beats {
			if !seen[sess] {
				delete(beats, sess)
			}
		}
	}
}

// watchdog kills the worker of sess if its heartbeat has stalled with work in flight.
func (s *Supervisor) watchdog(beats map[*dispatch.Session]*beat, sess *dispatch.Session, proc *os.Process, now time.Time) {
	timeout := s.cfg.WatchdogTimeout
	if timeout == 0 {
		timeout = 10 * s.d.Heartbeat()
	}
	if timeout < 0 {
		return
	}
	hb, ok := sess.Heartbeat()
	if !ok {
		return
	}
	b := beats[sess]
	if b == nil || b.hb != hb {
		beats[sess] = &beat{hb: hb, at: now}
		return
	}
	if b.killed || now.Sub(b.at) <= timeout {
		return
	}
	inflight := sess.InFlight()
	if inflight == 0 {
		return
	}
	b.killed = true
	s.log.Warn("watchdog: worker heartbeat stalled with requests in flight; killing it",
		"app", sess.App, "pid", sess.PID, "stalled", now.Sub(b.at).Round(time.Millisecond), "inflight", inflight)
	s.countRecycle(sess.App, ReasonWatchdog)
	if proc != nil {
		proc.Kill() // the keep loop sees it exit, the session ends, a new worker starts
		return
	}
	sess.Close(fmt.Errorf("watchdog: heartbeat stalled for %v", now.Sub(b.at).Round(time.Millisecond)))
}

// readRSS returns the resident set size of process pid in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("supervisor: /proc/%d/statm: %q", pid, b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * int64(os.Getpagesize()), nil
}
