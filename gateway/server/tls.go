package server

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/covetpy/covetpy/gateway/engine"
	"github.com/covetpy/covetpy/ops/metrics"
)

// The TLS and h2c entry points: a connection is handshaken (TLS) or its
// first bytes are looked at (h2c) on a goroutine of its own, then served by
// the HTTP/1.1 front end (conn) or handed to the HTTP/2 one (h2.go).

// maxTLSGather: WriteBuffers gathers up to this many bytes into one TLS
// write (one record, one system call), as writev does on a plain socket.
const maxTLSGather = 64 << 10

// plainToTLS answers a client that spoke plain HTTP to the TLS port, as
// nginx does.
const plainToTLS = "HTTP/1.1 400 Bad Request\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 48\r\n" +
	"Connection: close\r\n\r\n" +
	"Bad Request: plain HTTP sent to the HTTPS port.\n"

// tlsConn is a TLS connection as the HTTP/1.1 front end sees it.
type tlsConn struct {
	*tls.Conn
	raw    engine.Conn
	gather []byte
}

var _ engine.Conn = (*tlsConn)(nil)

// CloseWrite sends close_notify and then the TCP FIN.
func (c *tlsConn) CloseWrite() error {
	err := c.Conn.CloseWrite()
	if e := c.raw.CloseWrite(); err == nil {
		err = e
	}
	return err
}

// WriteBuffers writes *bufs, gathered into one TLS write when they are
// several and small together, else one at a time; it consumes what it
// wrote.
func (c *tlsConn) WriteBuffers(bufs *net.Buffers) (int64, error) {
	total := 0
	for _, b := range *bufs {
		total += len(b)
	}
	if len(*bufs) < 2 || total > maxTLSGather {
		return bufs.WriteTo(c.Conn)
	}
	g := c.gather[:0]
	for _, b := range *bufs {
		g = append(g, b...)
	}
	c.gather = g[:0]
	n, err := c.Conn.Write(g)
	consume(bufs, n)
	return int64(n), err
}

// consume drops the first n bytes of *bufs.
func consume(bufs *net.Buffers, n int) {
	for n > 0 && len(*bufs) > 0 {
		b := (*bufs)[0]
		if n < len(b) {
			(*bufs)[0] = b[n:]
			return
		}
		n -= len(b)
		*bufs = (*bufs)[1:]
	}
	for len(*bufs) > 0 && len((*bufs)[0]) == 0 {
		*bufs = (*bufs)[1:]
	}
}

// serveTLS handshakes nc, within ReadHeaderTimeout, and serves it as
// HTTP/2 when the client chose h2 in ALPN, else as HTTP/1.1. A client that
// sent plain HTTP is answered 400; any other failed handshake just closes
// the connection. nc counts in s.pending until it is a conn or handed to
// HTTP/2.
func (s *Server) serveTLS(nc engine.Conn) {
	tc := tls.Server(nc, s.TLS)
	nc.SetDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
	if err := tc.HandshakeContext(s.baseCtx); err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			io.WriteString(nc, plainToTLS)
			nc.CloseWrite()
			err = errPlainHTTP
		}
		s.metrics.TLSHandshakeFailed()
		s.log.Debug("tls handshake failed", "remote", remoteAddr(nc), "err", err)
		s.dropPending(nc)
		return
	}
	nc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	switch st.NegotiatedProtocol {
	case "h2":
		s.serveH2(tc)
		return
	case "acme-tls/1":
		// An ACME CA's tls-alpn-01 validation: the handshake was all.
		tc.Close()
		s.pending.Add(-1)
		return
	}
	c := newConn(s, &tlsConn{Conn: tc, raw: nc})
	c.tls = &st
	c.clientCert = clientCert(&st)
	s.startConn(c)
}

var errPlainHTTP = errors.New("plain HTTP sent to the TLS port (answered 400)")

// looksLikeHTTP reports whether a TLS record header is rather the start of
// a plain HTTP request: a TLS record starts with a content type byte of 20
// to 24, an HTTP request with a method in capitals.
func looksLikeHTTP(h [5]byte) bool {
	for i, b := range h {
		switch {
		case b >= 'A' && b <= 'Z':
		case i > 0 && (b == ' ' || b == '/'):
		default:
			return false
		}
	}
	return true
}

// h2Preface is what an HTTP/2 client with prior knowledge sends first.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// serveH2C reads nc's first bytes (after o.first, bytes already read), within
// ReadHeaderTimeout, until they are the HTTP/2 preface or cannot be: HTTP/2
// then, else HTTP/1.1 with the bytes read so far already buffered.
func (s *Server) serveH2C(nc engine.Conn, o origin) {
	var buf [len(h2Preface)]byte
	got := o.first
	if len(got) < len(buf) {
		n := copy(buf[:], got)
		nc.SetReadDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
		for n < len(buf) && string(buf[:n]) == h2Preface[:n] {
			m, err := nc.Read(buf[n:])
			n += m
			if err != nil && n == 0 {
				pc := s.originConn(nc, o)
				s.log.Debug("h2c: no request", "remote", remoteAddr(pc), "err", err)
				s.dropPending(pc) // uncounts its IP
				return
			}
			if err != nil {
				break // HTTP/1.1 reads the error again and answers it
			}
		}
		nc.SetReadDeadline(time.Time{})
		got = buf[:n]
	}
	if len(got) >= len(h2Preface) && string(got[:len(h2Preface)]) == h2Preface {
		o.first = got
		s.serveH2(s.originConn(nc, o))
		return
	}
	c := newConn(s, nc)
	o.first = got
	c.adopt(o)
	s.startConn(c)
}

// startConn serves c, a connection that counted in s.pending, on this
// goroutine.
func (s *Server) startConn(c *conn) {
	ok := s.trackConn(c, true)
	s.pending.Add(-1)
	if !ok {
		c.nc.Close()
		c.srv.releaseIP(c.ip)
		c.releaseBuf()
		return
	}
	s.metrics.ConnOpened(metrics.ProtoHTTP1)
	c.serve()
}

// dropPending closes nc, a connection that counted in s.pending.
func (s *Server) dropPending(nc net.Conn) {
	nc.Close()
	s.pending.Add(-1)
}

func remoteAddr(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}
