package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"

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
}

func (f *h3Front) stop() { f.stopOnce.Do(func() { close(f.stopped) }) }

// shutdown sends GOAWAY on every HTTP/3 connection; each closes once its
// streams are answered (the client closes it) or ctx ends.
func (f *h3Front) shutdown(ctx context.Context) {
	f.hs.Shutdown(ctx)
	f.stop()
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
		s.h3 = &h3Front{
			hs: &http3.Server{
				Handler:        s.Handler("3"),
				MaxHeaderBytes: s.cfg.Limits.MaxHeaderBytes,
				IdleTimeout:    s.cfg.IdleTimeout,
				Logger:         s.log.With("proto", "h3"),
				// Close cancels every request, as it does over HTTP/1.1
				// and HTTP/2.
				ConnContext: func(ctx context.Context, qc *quic.Conn) context.Context {
					ctx, cancel := context.WithCancel(ctx)
					stop := context.AfterFunc(s.baseCtx, cancel)
					context.AfterFunc(qc.Context(), func() { stop(); cancel() })
					return ctx
				},
			},
			stopped: make(chan struct{}),
		}
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
