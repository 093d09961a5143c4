package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// Dispatcher owns the live route table and one worker pool per app.
type Dispatcher struct {
	cfg    Config
	log    *slog.Logger
	routes router.Router[*Route]

	mu   sync.Mutex // guards apps
	apps map[string]*app
	// down counts the apps in apps with no live worker; while it is not zero, or
	// no app is known at all, the route table may lack routes, and Lookup answers
	// a miss with the unavailable route (503) rather than a 404 or 405.
	down        atomic.Int32
	known       atomic.Int32 // len(apps)
	unavailable *Route

	nextID atomic.Int64
	epoch  atomic.Uint64
	heads  sync.Pool // *[]byte buffers for encoded REQ_HEADs
}

// New returns a Dispatcher. A nil logger discards.
func New(cfg Config, log *slog.Logger) (*Dispatcher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{cfg: cfg, log: log, apps: map[string]*app{}}
	// An app of no name, with no worker and none expected: Serve answers
	// ErrNoWorker for its route at once.
	d.unavailable = &Route{Pattern: metrics.Unmatched, app: &app{down: &d.down}}
	cfg.Metrics.SetPoolSource(d.PoolStats) // no-op without metrics
	return d, nil
}

// newApp makes the pool of app name, with no worker yet; addApp makes it known.
func (d *Dispatcher) newApp(name string) *app {
	return &app{name: name, m: d.cfg.Metrics.App(name), down: &d.down}
}

// addApp adds a new app, down until its first worker attaches. Caller holds d.mu.
func (d *Dispatcher) addApp(a *app) {
	d.apps[a.name] = a
	d.down.Add(1)
	d.known.Add(1)
}

// Expect declares that workers of app will come (the supervisor spawns them) and
// come back when they die. Until one has attached the app counts as down (Ready,
// Lookup), and while it has no live worker a request for one of its routes waits in
// its queue, up to the queue deadline, for a worker to attach, instead of failing at
// once with ErrNoWorker. Drain ends the expectation.
func (d *Dispatcher) Expect(app string) {
	d.mu.Lock()
	a := d.apps[app]
	if a == nil {
		a = d.newApp(app)
		d.addApp(a)
	}
	d.mu.Unlock()
	a.mu.Lock()
	a.expected = true
	a.mu.Unlock()
}

// app is one application's worker pool and route manifest.
type app struct {
	name     string
	manifest string       // canonical form of the routes, to compare later workers'
	m        *metrics.App // nil without metrics

	down *atomic.Int32 // Dispatcher.down: counts this app while sessions is empty

	mu       sync.Mutex
	sessions []*Session
	expected bool // workers are on their way (Dispatcher.Expect): wait for them
	waiting  int
	inflight int           // requests handed to a worker, not yet released
	states   [3]int        // sessions starting, ready, draining (observe.go)
	next     int           // round-robin start of the least-loaded scan
	wake     chan struct{} // closed when a credit frees or a session leaves; nil if nobody waits
	// grpcServices names the services of the app's KindGRPC routes, each once;
	// descriptors are the files its latest worker's hello sent (grpc.go).
	grpcServices []string
	descriptors  [][]byte
}

// Attach registers a worker that has sent hello on conn: it checks the manifest
// against the live route table, sends WELCOME with a new segment and, once the worker
// reports ready, adds it to its app's pool. pid is the worker's process id (the exec
// pid for a spawned worker, SO_PEERCRED for an external one); origin says how its
// end is learnt (a Spawned worker's supervisor must call Session.Exited once it has
// reaped the process). On failure the worker is sent an error frame and conn is
// closed.
func (d *Dispatcher) Attach(conn *net.UnixConn, hello workerproto.Hello, pid int, origin Origin) (*Session, error) {
	a, err := d.register(hello)
	if err != nil {
		workerproto.Refuse(conn, err)
		return nil, err
	}
	s := &Session{
		ID: d.nextID.Add(1), App: hello.App, PID: pid, Origin: origin, d: d, conn: conn,
		readerDone: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{}),
	}
	s.a = a
	s.log = d.log.With("app", hello.App, "worker", s.ID, "pid", pid)
	a.setState(s, stateStarting)
	if err := s.start(d.epoch.Add(1)); err != nil {
		if s.ctx == nil { // failed before any goroutine started
			workerproto.Refuse(conn, &workerproto.Error{Code: workerproto.CodeInternal, Message: err.Error()})
		}
		a.setState(s, stateGone)
		return nil, err
	}
	a.mu.Lock()
	if s.ctx.Err() != nil {
		// The worker died between reporting ready and here: close has already
		// run its remove, so pooling it now would keep a dead session forever.
		a.mu.Unlock()
		<-s.done
		return nil, fmt.Errorf("dispatch: worker %d left right after the handshake: %w", s.PID, s.err)
	}
	a.addLocked(s)
	a.mu.Unlock()
	s.log.Info("worker attached")
	return s, nil
}

// register adds the app's routes to the route table, or checks them against the
// routes its earlier workers registered.
func (d *Dispatcher) register(h workerproto.Hello) (*app, error) {
	key := manifestKey(h.Routes)
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.apps[h.App]
	if a != nil && a.manifest == key {
		a.mu.Lock()
		a.descriptors = h.Descriptors // a restarted worker may serve newer files
		a.mu.Unlock()
		return a, nil
	}
	if a != nil && a.live() > 0 {
		return nil, &workerproto.Error{Code: workerproto.CodeConflict,
			Message: fmt.Sprintf("app %q is running with a different route manifest; stop its workers first", h.App)}
	}
	isNew := a == nil
	if isNew {
		a = d.newApp(h.App)
	}
	var routes []router.Route[*Route]
	var services []string
	for _, r := range h.Routes {
		kind, ok := routeKinds[r.Kind]
		if !ok {
			continue // hello.Validate refuses unknown kinds; none gets here
		}
		if kind == KindGRPC {
			svc, err := grpcService(r.Method, r.Path)
			if err != nil {
				return nil, &workerproto.Error{Code: workerproto.CodeManifest,
					Message: fmt.Sprintf("route %s %s: %v", r.Method, r.Path, err)}
			}
			if !slices.Contains(services, svc) {
				services = append(services, svc)
			}
		}
		rt := &Route{
			App: h.App, Pattern: r.Path, Timeout: time.Duration(r.TimeoutMS()) * time.Millisecond,
			Kind: kind, Resumable: r.Resumable(), AlsoHTTP: r.AlsoHTTP(), Dir: r.Dir(), Index: r.Index(), app: a,
		}
		if d.cfg.CompileRoute != nil {
			p, err := d.cfg.CompileRoute(h.App, &r)
			if err != nil {
				return nil, &workerproto.Error{Code: workerproto.CodeManifest,
					Message: fmt.Sprintf("route %s %s: %v", r.Method, r.Path, err)}
			}
			rt.Policy = p
		}
		routes = append(routes, router.Route[*Route]{Method: r.Method, Pattern: r.Path, Value: rt})
	}
	err := d.routes.Replace(func(r router.Route[*Route]) bool { return r.Value.App == h.App }, routes...)
	if err != nil {
		return nil, &workerproto.Error{Code: workerproto.CodeConflict, Message: err.Error()}
	}
	if isNew {
		d.addApp(a)
	}
	a.manifest = key
	a.mu.Lock()
	a.grpcServices, a.descriptors = services, h.Descriptors
	a.mu.Unlock()
	return a, nil
}

func manifestKey(routes []workerproto.Route) string {
	keys := make([]string, 0, len(routes))
	for _, r := range routes {
		// fmt prints a map's keys in sorted order: equal options, equal keys.
		keys = append(keys, fmt.Sprintf("%s %s %s %v", r.Method, r.Path, r.Kind, r.Options))
	}
	slices.Sort(keys)
	return strings.Join(keys, "\n")
}

// Lookup finds the route for a request. It is lock-free and allocates nothing.
//
// Routes come from the workers' manifests, so while no app has registered, or an app
// has no live worker, the table may lack the route asked for: a miss (404 or 405)
// then returns the unavailable route instead, which Serve answers with ErrNoWorker
// (503 with Retry-After), never a 404 that is not true.
func (d *Dispatcher) Lookup(method, path string, ps *router.Params) (router.Match[*Route], router.Status) {
	m, st := d.routes.Lookup(method, path, ps)
	if (st == router.StatusNotFound || st == router.StatusMethodNotAllowed) && d.incomplete() {
		ps.Reset()
		return router.Match[*Route]{Value: d.unavailable, Pattern: d.unavailable.Pattern}, router.StatusFound
	}
	return m, st
}

// incomplete reports whether the route table may lack routes: no app is known yet,
// or one has no live worker.
func (d *Dispatcher) incomplete() bool {
	return d.down.Load() > 0 || d.known.Load() == 0
}

// Live reports the number of live workers of each app that has registered.
func (d *Dispatcher) Live() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[string]int, len(d.apps))
	for name, a := range d.apps {
		m[name] = a.live()
	}
	return m
}

// timeout is the handler deadline of req: its own, else its route's, else the
// configured default.
func (d *Dispatcher) timeout(rt *Route, req *Request) time.Duration {
	switch {
	case req.Timeout != 0:
		return req.Timeout
	case rt.Timeout != 0:
		return rt.Timeout
	}
	return d.cfg.Timeout
}

// Serve sends req to a worker of rt's app and writes the answer to w. It returns nil
// when the whole response reached w, or one of the errors in api.go.
func (d *Dispatcher) Serve(ctx context.Context, rt *Route, req *Request, w ResponseWriter) error {
	timeout := d.timeout(rt, req)
	req.Head.TimeoutMS = timeout.Milliseconds() // the effective deadline, default applied
	deadline := time.Now().Add(timeout)
	fixed := !req.Deadline.IsZero()
	if fixed && req.Deadline.Before(deadline) {
		deadline = req.Deadline
		left := time.Until(deadline)
		if left <= 0 {
			return ErrDeadline
		}
		req.Head.TimeoutMS = max(left.Milliseconds(), 1) // 0 would mean none
	}
	src := req.BodyStream
	bp, _ := d.heads.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer d.heads.Put(bp)
	head, err := req.Head.Append((*bp)[:0])
	if err != nil {
		return &StatusError{Status: 400, Reason: "request head not encodable"}
	}
	*bp = head
	if src == nil && len(req.Body) > workerproto.RequestWindow {
		src = &bytesStream{}
	}
	for attempt := 0; ; attempt++ {
		s, err := rt.app.acquire(ctx, d.cfg)
		if err != nil {
			return err
		}
		if bs, ok := src.(*bytesStream); ok {
			bs.Reset(req.Body) // from the start again on a retry
		}
		err = s.do(ctx, deadline, fixed, head, req.Body, src, req.Head.Body, w)
		rt.app.release(s)
		if fa, ok := err.(*fileAnswer); ok {
			// Sent with the worker's credit back: a slow client holds no worker.
			return writeFile(w, fa.f)
		}
		if err != errRetry {
			return err
		}
		if attempt >= d.cfg.Retries {
			return ErrWorkerDied
		}
		s.log.Info("retrying a request the dead worker never took")
	}
}

// do runs one exchange on s. With src the body is streamed (upload.go), length
// long (-1: unknown), and body is unused. A fixed deadline is never moved
// (Request.Deadline); else a streamed response's counts from its last piece.
func (s *Session) do(ctx context.Context, deadline time.Time, fixed bool, head, body []byte, src BodyStream, length int64, w ResponseWriter) (err error) {
	c := s.begin()
	id := c.id
	if err := s.write(workerproto.FrameReqHead, id, 0, head); err != nil {
		// The head did not reach the ring whole, so no handler can have started:
		// another worker may take the request.
		s.end(c)
		if s.ctx.Err() == nil {
			s.close(fmt.Errorf("request ring: %w", err))
		}
		return errRetry
	}
	var bodyErr chan error // nil (never ready) without an upload
	if src != nil {
		up := s.newUpload(id, src, length)
		c.mu.Lock()
		c.up = up // before any body can reach the worker, and a grant come back
		c.mu.Unlock()
		go up.run()
		bodyErr = up.failed
		defer func() {
			up.finish()
			if err == errRetry && up.read.Load() > 0 && !isBytesStream(src) {
				// The worker never took the head, but body bytes left the
				// client's stream for its ring: they cannot be sent again.
				err = ErrWorkerDied
			}
		}()
	} else if len(body) > 0 {
		if err := s.write(workerproto.FrameReqBody, id, 0, body); err != nil && s.ctx.Err() == nil {
			s.end(c)
			s.close(fmt.Errorf("request ring: %w", err))
			return ErrWorkerDied
		}
		// If the session ended during the write, teardown fails c with the right
		// error: retryable only if the head is still on the ring.
	}
	start := time.Now()
	c.armTimer(start, deadline)
	// span is the handler's time; a streamed response gets it afresh with each
	// piece of body (streamIdle), so that a stream lives while it makes progress.
	span := deadline.Sub(start)
	wroteHead := false
	var written int64 // body bytes handed to w and not yet granted back to the worker
	for {
		select {
		case <-c.ready:
		case <-ctx.Done():
			s.abandon(c)
			return ErrCanceled
		case berr := <-bodyErr:
			// The body broke off (PROTOCOL.md 2.8): the worker has its ERR
			// fragment; the front end answers the client, or closes.
			s.abandon(c)
			if wroteHead {
				return &AbortError{Cause: &BodyError{Err: berr}}
			}
			return &BodyError{Err: berr}
		case <-c.timer.C:
			if now := time.Now(); now.Before(deadline) {
				// Armed for an earlier request of this pooled call.
				c.timerAt = time.Time{}
				c.armTimer(now, deadline)
				continue
			}
			c.timerAt = time.Time{}
			s.abandon(c)
			if wroteHead {
				return &AbortError{Cause: ErrDeadline}
			}
			return ErrDeadline
		}
		c.mu.Lock()
		gotHead, done, cerr := c.gotHead, c.done, c.err
		chunks := c.body
		c.body = c.spare
		hints := c.hints
		c.hints, c.hintsSpare = c.hintsSpare[:0], nil
		file := c.file
		trailers := c.gotTrailers
		c.mu.Unlock()
		c.spare = chunks // the writer's until drained below; putCall frees them on an early end
		if len(hints) > 0 {
			// Only before the head: the reader refuses hints after it.
			if err := writeInterim(w, hints); err != nil {
				s.abandon(c)
				return err
			}
			c.hintsSpare = hints[:0]
		}
		if cerr != nil && !wroteHead {
			s.end(c)
			return cerr
		}
		if file != nil { // the whole answer: the worker sends nothing more
			s.end(c)
			return &fileAnswer{file} // Serve writes it once the worker is released
		}
		if gotHead && !wroteHead {
			// c.head is immutable once gotHead is set.
			if err := w.WriteHead(c.head.Status, c.head.Headers, c.head.Body); err != nil {
				s.abandon(c)
				return err
			}
			wroteHead = true
			if f, ok := w.(Flusher); ok && len(chunks) == 0 && !done {
				// A stream whose first piece has not come yet (an event stream
				// waiting for its first event): the client gets the head now.
				if err := f.Flush(); err != nil {
					s.abandon(c)
					return err
				}
			}
		}
		if wroteHead && c.head.Body < 0 && len(chunks) > 0 && !done && !fixed {
			// streamIdle: the deadline of a streamed response counts from its
			// last piece of body (docs/operations.md, "Deadlines").
			deadline = time.Now().Add(span)
		}
		for rest := chunks; len(rest) > 0; {
			// Until the body is complete, write it a grant's worth at a time and
			// grant each back at once, so that the worker makes the next bytes
			// while these go to the client.
			n := len(rest)
			if !done {
				n = min(n, grantAt/bodyChunk)
			}
			if err := w.WriteBodyv(rest[:n]); err != nil {
				s.abandon(c)
				return err
			}
			if !done {
				for _, b := range rest[:n] {
					written += int64(len(b))
				}
				// Free the written chunks before granting their bytes back, so
				// that a response never holds more than MaxResponseHeld.
				putChunks(rest[:n])
				if written >= grantAt {
					// The client took these bytes: let the worker send as many more.
					s.grant(c, written)
					written = 0
				}
			}
			rest = rest[n:]
		}
		c.spare = putChunks(chunks)
		if done {
			if cerr != nil {
				s.end(c)
				return &AbortError{Cause: cerr}
			}
			if tw, ok := w.(TrailerWriter); ok && trailers {
				// c.trailers is immutable once gotTrailers is set, and
				// stays c's until end.
				if err := tw.WriteTrailers(c.trailers.Headers); err != nil {
					s.end(c)
					return err
				}
			}
			s.end(c)
			return nil
		}
	}
}

// writeInterim hands a worker's 103 Early Hints to w if it can send interim
// responses (InterimWriter); other writers drop them.
func writeInterim(w ResponseWriter, hints []workerproto.EarlyHints) error {
	iw, ok := w.(InterimWriter)
	if !ok {
		return nil
	}
	for i := range hints {
		if err := iw.WriteInterim(103, hints[i].Headers); err != nil {
			return err
		}
	}
	return nil
}

// fileAnswer is how do hands a worker's RESP_FILE answer to Serve, which
// writes it after releasing the worker.
type fileAnswer struct{ f *workerproto.RespFile }

func (*fileAnswer) Error() string { return "dispatch: file answer" }

// writeFile hands a worker's RESP_FILE answer to w, if it is a FileWriter.
func writeFile(w ResponseWriter, f *workerproto.RespFile) error {
	fw, ok := w.(FileWriter)
	if !ok {
		return ErrNoFileWriter
	}
	return fw.WriteFile(f.Status, f.Headers, f.Path)
}

// grantAt is how many response body bytes the gateway writes to the client before it
// grants them back to the worker with WINDOW: a quarter of the window. Writing a
// large body in pieces of this size, each granted at once, lets the worker make the
// next piece while one goes to the client; a response within the window costs no
// WINDOW frame at all (docs/performance.md, "Response flow control").
const grantAt = workerproto.ResponseWindow / 4

// grant lets c's worker send n more bytes of response body (PROTOCOL.md 2.7). If the
// WINDOW cannot be written the session ends, and its teardown fails c.
func (s *Session) grant(c *call, n int64) {
	var buf [16]byte
	// n is what was written since the last grant, at most the window and one piece,
	// so it is always a grant Append accepts.
	p, _ := workerproto.WindowPayload{Grant: n}.Append(buf[:0])
	c.grant(n)
	if err := s.write(workerproto.FrameWindow, c.id, 0, p); err != nil && s.ctx.Err() == nil {
		s.close(fmt.Errorf("request ring: %w", err))
	}
}

// abandon sends CANCEL for c (the client went away or the deadline passed) and frees
// its slot; the worker's late frames for it are dropped.
func (s *Session) abandon(c *call) {
	if err := s.write(workerproto.FrameCancel, c.id, workerproto.FlagCancel, nil); err != nil && !errors.Is(err, errRetry) {
		s.log.Warn("sending CANCEL failed", "err", err)
	}
	s.end(c)
}

// acquire picks the least-loaded live session with credit, waiting in the app's
// bounded queue when all are busy, or when it has none but expects them back (the
// supervisor is restarting them).
func (a *app) acquire(ctx context.Context, cfg Config) (*Session, error) {
	var timer *time.Timer
	var queued time.Time // when the request first had to wait
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		a.mu.Lock()
		// Least loaded; ties go round-robin, so idle workers share the work.
		var best *Session
		n := len(a.sessions)
		a.next++
		for i := range n {
			s := a.sessions[(a.next+i)%n]
			if s.inflight < cfg.MaxInflight && (best == nil || s.inflight < best.inflight) {
				best = s
			}
		}
		if best != nil {
			best.inflight++
			a.inflight++
			a.mu.Unlock()
			if a.m != nil {
				a.m.QueueWait(sinceOrZero(queued))
			}
			return best, nil
		}
		if len(a.sessions) == 0 && !a.expected {
			a.mu.Unlock()
			return nil, ErrNoWorker
		}
		if a.waiting >= cfg.QueueSize {
			a.mu.Unlock()
			return nil, ErrQueueFull
		}
		a.waiting++
		if a.wake == nil {
			a.wake = make(chan struct{})
		}
		wake := a.wake
		a.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(cfg.QueueTimeout)
			if a.m != nil {
				queued = time.Now()
			}
		}
		var err error
		select {
		case <-wake:
		case <-timer.C:
			err = ErrQueueTimeout
		case <-ctx.Done():
			err = ErrCanceled
		}
		a.mu.Lock()
		a.waiting--
		a.mu.Unlock()
		if err != nil {
			if a.m != nil {
				a.m.QueueWait(sinceOrZero(queued))
			}
			return nil, err
		}
	}
}

func (a *app) release(s *Session) {
	a.mu.Lock()
	s.inflight--
	a.inflight--
	s.served++ // lifecycle.go: Served, for max_requests recycling
	a.wakeLocked()
	a.mu.Unlock()
}

// unclaim gives back the credit acquire took, for work that is not a request (a
// WebSocket session): it counts neither in flight nor toward max_requests.
func (a *app) unclaim(s *Session) {
	a.mu.Lock()
	s.inflight--
	a.inflight--
	a.wakeLocked()
	a.mu.Unlock()
}

func (a *app) wakeLocked() {
	if a.wake != nil {
		close(a.wake)
		a.wake = nil
	}
}

// addLocked puts s in the pool and wakes the requests waiting for a worker. Caller
// holds a.mu.
func (a *app) addLocked(s *Session) {
	a.sessions = append(a.sessions, s)
	if len(a.sessions) == 1 {
		a.down.Add(-1)
	}
	a.setStateLocked(s, stateReady)
	a.wakeLocked()
}

// remove takes s out of the pool: it gets no new work. Its state becomes
// draining (it may still finish what it has), unless it has ended.
func (a *app) remove(s *Session) {
	a.mu.Lock()
	a.removeLocked(s, stateDraining)
	a.mu.Unlock()
}

// removeLocked takes s out of the pool and moves it to state st (draining or
// gone; a gone session stays gone). Caller holds a.mu.
func (a *app) removeLocked(s *Session, st sessState) {
	if i := slices.Index(a.sessions, s); i >= 0 {
		a.sessions = slices.Delete(a.sessions, i, i+1)
		if len(a.sessions) == 0 {
			a.down.Add(1)
		}
	}
	if s.state != stateGone {
		a.setStateLocked(s, st)
	}
	a.wakeLocked()
}

func (a *app) live() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sessions)
}

// Drain asks every worker to finish its work and leave: they get no new requests,
// and no app expects workers any more (Expect).
func (d *Dispatcher) Drain(deadline time.Duration) {
	d.mu.Lock()
	var all []*Session
	for _, a := range d.apps {
		a.mu.Lock()
		a.expected = false // no worker comes back now: requests fail at once
		all = append(all, a.sessions...)
		a.wakeLocked()
		a.mu.Unlock()
	}
	d.mu.Unlock()
	for _, s := range all {
		s.a.remove(s)
		if err := s.send(workerproto.Drain{DeadlineMS: deadline.Milliseconds()}); err != nil {
			s.close(err)
		}
	}
}
