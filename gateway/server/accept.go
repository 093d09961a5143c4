package server

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/covetpy/covetpy/gateway/engine"
	"github.com/covetpy/covetpy/gateway/proxyproto"
	"github.com/covetpy/covetpy/ops/metrics"
)

// What happens to an accepted connection before it is HTTP: its PROXY
// protocol header is read (Config.ProxyProtocol) and it is counted against
// its IP's connection limit (Config.MaxConnsPerIP); then it goes on to TLS,
// h2c or HTTP/1.1 (route).

// origin is what the accept path learnt about a connection before its first
// HTTP (or TLS) byte.
type origin struct {
	// remote is the client's address, nil for the socket's peer: the
	// source a PROXY header gave.
	remote net.Addr
	// first holds bytes read after the PROXY header, the client's own;
	// they are served before anything read later.
	first []byte
	// ip is the address the connection counts against in perIP; not
	// valid when MaxConnsPerIP is off or the connection is not counted.
	ip netip.Addr
}

// perIP counts the open connections of each client IP address
// (Config.MaxConnsPerIP). IPv4-mapped IPv6 addresses count as IPv4; IPv6
// addresses count one by one (not by prefix).
type perIP struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
}

// acquire counts a connection from ip and reports true, or reports false
// when ip already has max open.
func (p *perIP) acquire(ip netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[ip] >= p.max {
		return false
	}
	p.n[ip]++
	return true
}

// release uncounts a connection from ip.
func (p *perIP) release(ip netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.n[ip]; n > 1 {
		p.n[ip] = n - 1
	} else {
		delete(p.n, ip)
	}
}

// open reports how many connections ip has open (tests).
func (p *perIP) open(ip netip.Addr) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[ip]
}

// addrIP is the IP address of a, IPv4-mapped addresses unmapped; not valid
// when a is no IP address (a UNIX socket).
func addrIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// admitIP counts nc's connection against ip when MaxConnsPerIP is on, and
// reports false, counted in metrics, when ip has its fill. o.ip is set when
// the connection was counted.
func (s *Server) admitIP(o *origin, ip netip.Addr) bool {
	if s.perIP == nil || !ip.IsValid() {
		return true
	}
	if !s.perIP.acquire(ip) {
		s.metrics.ClientRefused("conns_per_ip")
		return false
	}
	o.ip = ip
	return true
}

// releaseIP uncounts a connection counted by admitIP.
func (s *Server) releaseIP(ip netip.Addr) {
	if ip.IsValid() {
		s.perIP.release(ip)
	}
}

// acceptPlain starts serving nc, just accepted with no PROXY header to
// read and counted against its IP in o; it reports false when the Server is
// shutting down.
func (s *Server) acceptPlain(nc net.Conn, o origin) bool {
	if s.TLS != nil || s.cfg.H2C {
		s.pending.Add(1)
		go s.route(engine.Wrap(nc), o)
		return true
	}
	c := newConn(s, nc)
	c.ip = o.ip
	if !s.trackConn(c, true) {
		nc.Close()
		s.releaseIP(o.ip)
		return false
	}
	s.metrics.ConnOpened(metrics.ProtoHTTP1)
	go c.serve()
	return true
}

// errProxyTooSlow: the PROXY header did not arrive within
// ReadHeaderTimeout.
var errProxyTooSlow = errors.New("no PROXY header within read_header_timeout")

// serveProxied reads nc's PROXY protocol header, within ReadHeaderTimeout,
// then serves the connection as from the source it names (route). A
// connection that does not start with a valid header is closed unanswered
// (covet_proxy_protocol_refusals_total). nc counts in s.pending.
func (s *Server) serveProxied(nc engine.Conn) {
	// Close ends the wait at once, as it ends TLS handshakes.
	stop := context.AfterFunc(s.baseCtx, func() { nc.SetReadDeadline(time.Unix(1, 0)) })
	h, first, err := readProxyHeader(nc, time.Now().Add(s.cfg.ReadHeaderTimeout))
	closing := !stop()
	if err != nil {
		reason := "invalid"
		switch {
		case closing:
			reason = "closed"
		case errors.Is(err, errProxyTooSlow):
			reason = "timeout"
		case !errors.Is(err, proxyproto.ErrInvalid):
			reason = "closed"
		}
		s.metrics.ProxyProtocolRefused(reason)
		s.log.Debug("proxy protocol: connection refused", "remote", remoteAddr(nc), "err", err)
		s.dropPending(nc)
		return
	}
	o := origin{first: first}
	ip := addrIP(nc.RemoteAddr())
	if !h.Local && h.Source.IsValid() {
		src := netip.AddrPortFrom(h.Source.Addr().Unmap(), h.Source.Port())
		o.remote = net.TCPAddrFromAddrPort(src)
		ip = src.Addr()
	}
	if closing || !s.admitIP(&o, ip) {
		s.dropPending(nc)
		return
	}
	s.route(nc, o)
}

// proxyFirstRead is the first read's size for a PROXY header: the longest
// v1 header, or a v2 one with IPv6 or UNIX addresses and some TLVs. A v2
// header's length then says how much more to read, and no more is read.
const proxyFirstRead = 512

// readProxyHeader reads a PROXY header from nc by deadline, and returns it
// with the bytes read after it (the client's first, nil for none).
func readProxyHeader(nc engine.Conn, deadline time.Time) (proxyproto.Header, []byte, error) {
	nc.SetReadDeadline(deadline)
	defer nc.SetReadDeadline(time.Time{})
	buf := make([]byte, proxyFirstRead)
	w := 0
	for {
		m, err := nc.Read(buf[w:])
		w += m
		if m > 0 {
			h, n, perr := proxyproto.Parse(buf[:w])
			if perr == nil {
				var first []byte
				if n < w {
					first = buf[n:w]
				}
				return h, first, nil
			}
			if perr != proxyproto.ErrNeedMore {
				return proxyproto.Header{}, nil, perr
			}
			if w == len(buf) {
				// Only a v2 header outgrows the first read: it has
				// its length by now (16 bytes); read exactly it.
				total := 16 + int(binary.BigEndian.Uint16(buf[14:16]))
				nb := make([]byte, total)
				copy(nb, buf[:w])
				buf = nb
			}
			continue
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return proxyproto.Header{}, nil, errProxyTooSlow
			}
			return proxyproto.Header{}, nil, err
		}
	}
}

// route serves nc, which counts in s.pending, by the Server's kind: TLS,
// h2c or HTTP/1.1.
func (s *Server) route(nc engine.Conn, o origin) {
	switch {
	case s.TLS != nil:
		s.serveTLS(s.originConn(nc, o))
	case s.cfg.H2C:
		s.serveH2C(nc, o)
	default:
		c := newConn(s, nc)
		c.adopt(o)
		s.startConn(c)
	}
}

// adopt gives c what the accept path learnt: the client's address, its
// first bytes, its per-IP count.
func (c *conn) adopt(o origin) {
	if o.remote != nil {
		c.remote = o.remote.String()
	}
	if len(o.first) > 0 {
		c.buf = getReadBuf()
		c.w = copy(c.buf, o.first) // at most proxyFirstRead bytes
	}
	c.ip = o.ip
}

// originConn returns nc as o says: from o.remote, reading o.first first,
// releasing o.ip once closed. nc itself when there is nothing to say.
func (s *Server) originConn(nc engine.Conn, o origin) engine.Conn {
	if o.remote == nil && len(o.first) == 0 && !o.ip.IsValid() {
		return nc
	}
	return &proxiedConn{Conn: nc, remote: o.remote, prefix: o.first, ip: o.ip, srv: s}
}

// proxiedConn is a connection as the TLS and HTTP/2 front ends see it once
// the accept path has read a PROXY header or counted it per IP.
type proxiedConn struct {
	engine.Conn
	remote net.Addr // nil: Conn's own
	prefix []byte   // read before Conn (owned by the reader)
	ip     netip.Addr
	srv    *Server
	closed atomic.Bool
}

func (c *proxiedConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *proxiedConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// Close closes the socket and, the first time, uncounts its IP.
func (c *proxiedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) && c.srv != nil {
		c.srv.releaseIP(c.ip)
	}
	return err
}
