package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/engine"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/covetpy/covetpy/router"
)

// Backend routes and serves requests. *dispatch.Dispatcher implements it.
//
// Lookup is called on a connection's reader goroutine as soon as a request
// head is parsed (before its body is read, so that 404, 405 and OPTIONS are
// answered without waiting for a body and 100-continue is only sent for a
// routed request). It must be safe for concurrent use and should not block.
//
// Serve is called on the connection's writer goroutine, one request at a
// time per connection, in request order; it must return only when it has
// finished with req and w (see dispatch.ResponseWriter). ctx is cancelled
// when the client goes away or the Server is closed.
type Backend interface {
	Lookup(method, path string, ps *router.Params) (router.Match[*dispatch.Route], router.Status)
	Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("server: closed")

// Server is the HTTP/1.1 front end. Set Config and Backend, then call Serve
// with one or more listeners. Config must not change once Serve has been
// called. A Server must not be copied after first use.
type Server struct {
	Config  Config
	Backend Backend
	// Engine, when set, is the socket engine to serve on, owned by the
	// caller (who closes it after the Server); else the Server opens
	// Config.Engine itself and closes it when shut down.
	Engine engine.Engine
	// TLS, when set, makes every connection Serve accepts a TLS one,
	// handshaken within ReadHeaderTimeout; those whose client chose h2 in
	// ALPN are served HTTP/2 (Config.HTTP2 must be on when NextProtos
	// offers h2: such a connection is closed otherwise). A client that
	// sends plain HTTP instead is answered 400. Its GetConfigForClient, if
	// any, picks each handshake's certificates (covettls).
	TLS *tls.Config

	initOnce sync.Once
	initErr  error
	cfg      Config // Config with defaults, fixed at the first Serve
	log      *slog.Logger
	// metrics and access are cfg.Metrics and cfg.AccessLog; timed says
	// either is set, so requests are timed.
	metrics *metrics.Metrics
	access  *slog.Logger
	timed   bool
	date    http1.DateCache

	eng      engine.Engine
	ownsEng  bool
	engClose sync.Once

	baseCtx    context.Context // parent of every connection's context
	cancelBase context.CancelFunc

	inShutdown atomic.Bool

	// The response buffer budget (limits.go). held reads the response
	// bytes held (dispatch.HeldResponseBytes; tests replace it); wakeWatch
	// wakes watchHeld when a request waits; budgetWaiters counts requests
	// waiting for the budget, and freed is closed (and replaced) when they
	// may look again. heldPeak is the most held since memory was last
	// released; stopRelease ends watchHeld and releaseLoop.
	held          func() int64
	wakeWatch     chan struct{}
	budgetWaiters atomic.Int64
	freedMu       sync.Mutex
	freed         chan struct{}
	heldPeak      atomic.Int64
	budgetLogged  atomic.Bool
	stopRelease   chan struct{}
	stopOnce      sync.Once
	// releaseEvery and releaseMin override releaseLoop's period and
	// threshold (bytes) in tests; zero: the defaults.
	releaseEvery time.Duration
	releaseMin   int64

	// h2 is the HTTP/2 server (h2.go), when HTTP2 (with TLS) or H2C is on.
	h2 *h2Front
	// h3 is the HTTP/3 server (h3.go), made by the first ServeHTTP3;
	// guarded by mu.
	h3 *h3Front
	// pending counts the open connections not in conns: in their TLS
	// handshake or h2c preface, or served by h2 or h3. They count towards
	// MaxConnections and keep Shutdown waiting.
	pending atomic.Int64
	// perIP counts the open connections per client IP when MaxConnsPerIP
	// is on; nil otherwise (accept.go).
	perIP *perIP
	// statics: the static mounts and static routes' directories (static.go).
	statics statics

	// wsSessions are the open WebSocket sessions (ws.go), told 1001 by
	// Shutdown.
	wsMu       sync.Mutex
	wsSessions map[*wsSession]struct{}

	mu         sync.Mutex
	listeners  map[net.Listener]struct{}
	conns      map[*conn]struct{}
	shedLogged bool // MaxConnections was reached and said so
}

func (s *Server) init() error {
	s.initOnce.Do(func() {
		if s.Backend == nil {
			s.initErr = errors.New("server: nil Backend")
			return
		}
		if err := s.Config.Validate(); err != nil {
			s.initErr = err
			return
		}
		s.cfg = s.Config.WithDefaults()
		s.log = s.cfg.Logger
		if err := s.statics.open(&s.cfg); err != nil {
			s.initErr = err
			return
		}
		if s.eng = s.Engine; s.eng == nil {
			name := s.cfg.Engine
			if name == "" {
				name = engine.Netpoll
			}
			e, fallback, err := engine.New(name)
			if err != nil {
				s.initErr = fmt.Errorf("engine %s: %w", name, err)
				return
			}
			if fallback != "" {
				s.log.Warn("io_uring unavailable, using the netpoll engine", "reason", fallback)
			}
			s.eng, s.ownsEng = e, true
		}
		s.metrics, s.access = s.cfg.Metrics, s.cfg.AccessLog
		s.metrics.SetEngine(s.eng.Name())
		s.timed = s.metrics != nil || s.access != nil
		s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		if s.held == nil {
			s.held = dispatch.HeldResponseBytes
		}
		s.metrics.SetBudgetSource(s.held)
		s.wakeWatch = make(chan struct{}, 1)
		s.freed = make(chan struct{})
		s.stopRelease = make(chan struct{})
		every, minBytes := s.releaseEvery, s.releaseMin
		if every == 0 {
			every = releaseEvery
		}
		if minBytes == 0 {
			minBytes = releaseMinBytes
		}
		if s.cfg.MaxConnsPerIP > 0 {
			s.perIP = &perIP{max: s.cfg.MaxConnsPerIP, n: make(map[netip.Addr]int)}
		}
		if (s.cfg.HTTP2 && s.TLS != nil) || s.cfg.H2C {
			s.h2 = s.newH2Front()
		}
		go s.watchHeld()
		go s.releaseLoop(every, minBytes)
	})
	return s.initErr
}

// Prepare applies the Config and opens the engine, as the first Serve
// does; calling it before Serve reports a bad Config, or an engine that
// cannot start (engine "uring" where io_uring is refused), up front.
func (s *Server) Prepare() error { return s.init() }

// EngineName is the name of the engine the Server runs on (after Prepare
// or Serve; empty before).
func (s *Server) EngineName() string {
	if s.init() != nil {
		return ""
	}
	return s.eng.Name()
}

// Serve accepts connections on l and serves each on its own goroutines
// until l fails or the Server is shut down; it then returns ErrServerClosed
// (after Shutdown or Close) or the accept error. l is closed on return.
// Serve may be called for several listeners at once.
func (s *Server) Serve(l net.Listener) error {
	if err := s.init(); err != nil {
		l.Close()
		return err
	}
	l = s.eng.Listen(l)
	if !s.trackListener(l, true) {
		l.Close()
		return ErrServerClosed
	}
	defer s.trackListener(l, false)
	defer l.Close()

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				// EMFILE, ENFILE and the like: back off and retry.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept error; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		delay = 0
		var o origin
		if !s.cfg.ProxyProtocol && !s.admitIP(&o, addrIP(nc.RemoteAddr())) {
			nc.Close() // max_conns_per_ip: refused before it can shed another
			continue
		}
		if !s.admit() {
			nc.Close() // every connection is busy: refused (MaxConnections)
			s.releaseIP(o.ip)
			continue
		}
		s.metrics.ConnAccepted()
		if s.cfg.ProxyProtocol {
			// The PROXY header first, on the connection's own goroutine;
			// it then counts per IP by the header's source.
			s.pending.Add(1)
			go s.serveProxied(engine.Wrap(nc))
			continue
		}
		if !s.acceptPlain(nc, o) {
			return ErrServerClosed
		}
	}
}

func (s *Server) trackListener(l net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.inShutdown.Load() {
			return false
		}
		s.listeners[l] = struct{}{}
	} else {
		delete(s.listeners, l)
	}
	return true
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.inShutdown.Load() {
			return false
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

// numConns is the number of connections not yet closed. It may be asked
// before Serve has run init (a test that dials at once): init's Once orders
// the making of the maps before the read.
func (s *Server) numConns() int {
	_ = s.init() // a failed init leaves no connections to count
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) + int(s.pending.Load())
}

// closeListeners stops every Serve loop. Caller holds s.mu.
func (s *Server) closeListenersLocked() {
	for l := range s.listeners {
		l.Close()
	}
}

// Shutdown stops the Server gracefully: it closes the listeners, closes
// idle keep-alive connections at once, and lets each busy connection finish
// the response it is writing (sent with Connection: close) and then close;
// requests parsed ahead behind it are dropped unanswered, as a client of a
// closing keep-alive connection expects. Shutdown returns nil when every
// connection is closed, or, if ctx ends first, closes the remaining
// connections (their requests' contexts are cancelled) and returns
// ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	if s.init() != nil {
		return nil // never served
	}
	s.inShutdown.Store(true)
	defer s.endRelease()
	s.closeWebSockets() // close 1001; each ends once the client answers
	s.mu.Lock()
	s.closeListenersLocked()
	h3 := s.h3
	s.mu.Unlock()
	if s.h2 != nil {
		// GOAWAY to every HTTP/2 connection; each closes once its
		// streams are answered.
		go s.h2.hs.Shutdown(ctx)
	}
	if h3 != nil {
		go h3.shutdown(ctx) // GOAWAY to every HTTP/3 connection, likewise
	}

	const maxPoll = 100 * time.Millisecond
	poll := time.Millisecond
	t := time.NewTimer(poll)
	defer t.Stop()
	for {
		if s.closeIdle() == 0 {
			s.closeEngine()
			return nil
		}
		select {
		case <-ctx.Done():
			s.closeAll()
			s.closeEngine()
			return ctx.Err()
		case <-t.C:
			poll = min(2*poll, maxPoll)
			t.Reset(poll)
		}
	}
}

// closeIdle closes the idle connections and returns how many remain open.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.closeIfIdle()
	}
	return len(s.conns) + int(s.pending.Load())
}

func (s *Server) closeAll() {
	if s.h2 != nil {
		s.h2.hs.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h3 != nil {
		go s.h3.close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
}

// Close stops the Server at once: listeners and connections are closed and
// every in-flight request's context is cancelled. It does not wait for the
// connection goroutines to exit.
func (s *Server) Close() error {
	if s.init() != nil {
		return nil // never served
	}
	s.inShutdown.Store(true)
	s.endRelease()
	s.cancelBase()
	s.mu.Lock()
	s.closeListenersLocked()
	s.mu.Unlock()
	s.closeAll()
	s.closeEngine()
	return nil
}

// closeEngine closes the engine the Server opened. Connections still open
// then fail with net.ErrClosed.
func (s *Server) closeEngine() {
	if s.ownsEng {
		s.engClose.Do(func() { s.eng.Close() })
	}
}

// endRelease stops watchHeld and releaseLoop.
func (s *Server) endRelease() {
	s.stopOnce.Do(func() { close(s.stopRelease) })
}
