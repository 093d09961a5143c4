package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/covetpy/covetpy/ops/metrics"
)

// The HTTP/3 front end is quic-go's (its http3 server) with the same
// Handler as HTTP/2, told "3". Each QUIC connection counts in s.pending
// from its accept to its close, so MaxConnections, Shutdown and the
// connection gauges see it as they see a TLS connection.

// h3Front is the Server's HTTP/3 server, made by the first ServeHTTP3.
type h3Front struct {
	hs       *http3.Server
	stopped  chan struct{} // closed once hs has shut down or closed
	stopOnce sync.Once

	mu      sync.Mutex
	conns   map[*h3Conn]struct{} // the open connections
	closing bool                 // shutting down: an idle connection is closed
}

// h3Conn is one QUIC connection and its requests in flight.
type h3Conn struct {
	qc     *quic.Conn
	active atomic.Int64
}

type h3ConnKey struct{}

// goawayGrace is how long an HTTP/3 connection with no request in flight
// is left after GOAWAY (or after its last handler returned, during
// Shutdown) before the server closes it, if its client has not: a request
// stream accepted just before GOAWAY, whose handler has not yet started,
// is served meanwhile, and the tail of a response the handler has handed
// to QUIC gets delivered (a CONNECTION_CLOSE discards what is not yet
// acknowledged). Clients that follow RFC 9114 5.2 close the connection
// themselves as soon as their last response is in.
const goawayGrace = time.Second

func (f *h3Front) stop() { f.stopOnce.Do(func() { close(f.stopped) }) }

// shutdown sends GOAWAY on every HTTP/3 connection; each closes once its
// streams are answered (the server closes an idle one, the client may
// first), or when ctx ends.
func (f *h3Front) shutdown(ctx context.Context) {
	f.mu.Lock()
	f.closing = true
	idle := make([]*h3Conn, 0, len(f.conns))
	for c := range f.conns {
		idle = append(idle, c)
	}
	f.mu.Unlock()
	for _, c := range idle {
		f.closeIfIdle(c)
	}
	f.hs.Shutdown(ctx)
	f.stop()
}

// closeIfIdle closes c, after goawayGrace, if it has no request in flight
// then.
func (f *h3Front) closeIfIdle(c *h3Conn) {
	if c.active.Load() != 0 {
		return
	}
	time.AfterFunc(goawayGrace, func() {
		if c.active.Load() == 0 {
			c.qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
		}
	})
}

// connContext registers qc, closes its requests' contexts when the Server
// is closed (as over HTTP/1.1 and HTTP/2), and puts its h3Conn in ctx.
func (f *h3Front) connContext(s *Server, ctx context.Context, qc *quic.Conn) context.Context {
	c := &h3Conn{qc: qc}
	f.mu.Lock()
	if f.conns == nil {
		f.conns = make(map[*h3Conn]struct{})
	}
	f.conns[c] = struct{}{}
	closing := f.closing
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.baseCtx, cancel)
	context.AfterFunc(qc.Context(), func() {
		stop()
		cancel()
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	})
	if closing {
		f.closeIfIdle(c)
	}
	return context.WithValue(ctx, h3ConnKey{}, c)
}

// track counts each request in flight on its connection, so that Shutdown
// can close the connection once it has none.
func (f *h3Front) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(h3ConnKey{}).(*h3Conn)
		if c == nil {
			h.ServeHTTP(w, r)
			return
		}
		c.active.Add(1)
		defer func() {
			if c.active.Add(-1) == 0 {
				f.mu.Lock()
				closing := f.closing
				f.mu.Unlock()
				if closing {
					f.closeIfIdle(c)
				}
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// close closes every HTTP/3 connection at once.
func (f *h3Front) close() {
	f.hs.Close()
	f.stop()
}

// h3Front returns the Server's HTTP/3 server, made on first use; nil once
// the Server is shutting down.
func (s *Server) h3Front() *h3Front {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return nil
	}
	if s.h3 == nil {
		f := &h3Front{stopped: make(chan struct{})}
		f.hs = &http3.Server{
			Handler:        f.track(s.Handler("3")),
			MaxHeaderBytes: s.cfg.Limits.MaxHeaderBytes,
			IdleTimeout:    s.cfg.IdleTimeout,
			Logger:         s.log.With("proto", "h3"),
			ConnContext: func(ctx context.Context, qc *quic.Conn) context.Context {
				return f.connContext(s, ctx, qc)
			},
		}
		s.h3 = f
	}
	return s.h3
}

// ServeHTTP3 serves HTTP/3 on pc (a UDP socket) with the Server's TLS
// config, ALPN h3, until the Server is shut down; it then returns
// ErrServerClosed, or the error that stopped it. pc is closed on return.
// ServeHTTP3 may be called beside Serve, and for several sockets.
//
// The QUIC limits: MaxConcurrentStreams request streams per connection,
// IdleTimeout for an idle connection, ReadHeaderTimeout for the handshake.
// Before the handshake completes, the gateway sends a client at most three
// times the bytes it received from it (quic-go's anti-amplification limit,
// RFC 9000 8.1). 0-RTT (early data) is accepted only with HTTP3EarlyData;
// then a request that arrived before the handshake completed, with a method
// other than GET, HEAD or OPTIONS, is answered 425 Too Early and never
// reaches a worker (RFC 8470), since early data can be replayed.
func (s *Server) ServeHTTP3(pc net.PacketConn) error {
	if err := s.init(); err != nil {
		pc.Close()
		return err
	}
	if s.TLS == nil {
		pc.Close()
		return errors.New("server: HTTP/3 needs TLS")
	}
	f := s.h3Front()
	if f == nil {
		pc.Close()
		return ErrServerClosed
	}
	cfg := &s.cfg
	tr := &quic.Transport{Conn: pc}
	defer pc.Close()
	defer tr.Close()
	ln, err := tr.ListenEarly(http3.ConfigureTLSConfig(s.TLS), &quic.Config{
		MaxIncomingStreams:   int64(cfg.MaxConcurrentStreams),
		MaxIdleTimeout:       cfg.IdleTimeout,
		HandshakeIdleTimeout: cfg.ReadHeaderTimeout,
		Allow0RTT:            cfg.HTTP3EarlyData,
	})
	if err != nil {
		return err
	}
	defer ln.Close()
	s.log.Debug("serving HTTP/3", "addr", pc.LocalAddr().String(), "early_data", cfg.HTTP3EarlyData)
	err = f.hs.ServeListener(&quicListener{EarlyListener: ln, s: s})
	if errors.Is(err, http.ErrServerClosed) {
		// The connections still open finish (Shutdown) or are closed
		// (Close) before the socket closes under them.
		<-f.stopped
		return ErrServerClosed
	}
	return err
}

// quicListener counts the connections it accepts: MaxConnections refuses
// one past the limit; the rest count in s.pending and the connection
// metrics until they close.
type quicListener struct {
	*quic.EarlyListener
	s *Server
}

// h3ExcessiveLoad is the HTTP/3 error code H3_EXCESSIVE_LOAD (RFC 9114 8.1).
const h3ExcessiveLoad = 0x107

func (l *quicListener) Accept(ctx context.Context) (*quic.Conn, error) {
	s := l.s
	for {
		qc, err := l.EarlyListener.Accept(ctx)
		if err != nil {
			return nil, err
		}
		if !s.admit() {
			qc.CloseWithError(h3ExcessiveLoad, "")
			continue
		}
		s.metrics.ConnAccepted()
		s.pending.Add(1)
		s.metrics.ConnOpened(metrics.ProtoH3)
		context.AfterFunc(qc.Context(), func() {
			s.pending.Add(-1)
			s.metrics.ConnClosed(metrics.ProtoH3)
		})
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("http3 connection", "remote", qc.RemoteAddr().String())
		}
		return qc, nil
	}
}

// earlyData reports whether r arrived in TLS early data (0-RTT): before the
// handshake completed.
func earlyData(r *http.Request) bool {
	return r.TLS != nil && !r.TLS.HandshakeComplete
}

// replayable reports whether a request with method may be served from
// early data: a safe method, whose replay changes nothing.
func replayable(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}
