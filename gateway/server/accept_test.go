package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
)

// PROXY protocol headers, written here by hand from the spec (not with
// gateway/proxyproto, which the server parses them with).

func proxyV1(src, dst string, sport, dport int) string {
	fam := "TCP4"
	if strings.Contains(src, ":") {
		fam = "TCP6"
	}
	return "PROXY " + fam + " " + src + " " + dst + " " + strconv.Itoa(sport) + " " + strconv.Itoa(dport) + "\r\n"
}

const v2Sig = "\r\n\r\n\x00\r\nQUIT\n"

// proxyV2 is a v2 PROXY TCP header for src -> dst, with a NOOP TLV.
func proxyV2(src, dst string) string {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	var body []byte
	fam := byte(0x11)
	if s.Addr().Is4() {
		a, b := s.Addr().As4(), d.Addr().As4()
		body = append(append(body, a[:]...), b[:]...)
	} else {
		fam = 0x21
		a, b := s.Addr().As16(), d.Addr().As16()
		body = append(append(body, a[:]...), b[:]...)
	}
	body = binary.BigEndian.AppendUint16(body, s.Port())
	body = binary.BigEndian.AppendUint16(body, d.Port())
	body = append(body, 0x04, 0, 2, 'h', 'i') // PP2_TYPE_NOOP
	h := append([]byte(v2Sig), 0x21, fam)
	h = binary.BigEndian.AppendUint16(h, uint16(len(body)))
	return string(append(h, body...))
}

// proxyV2Local is a v2 LOCAL header (a balancer's health check).
const proxyV2Local = v2Sig + "\x20\x00\x00\x00"

// clientBackend answers GET /who with the client REQ_HEAD carries.
func clientBackend(t testing.TB) *fakeBackend {
	b := newFakeBackend()
	b.handle(t, "GET", "/who", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 200, req.Head.Client)
	})
	return b
}

// dialFrom dials addr from the loopback address local ("127.0.0.2"; ""
// for any).
func dialFrom(t testing.TB, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc
}

func rawFrom(t testing.TB, local, addr string) *rawConn {
	nc := dialFrom(t, local, addr)
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func TestProxyProtocolClient(t *testing.T) {
	var logs lockedBuffer
	ts := startServer(t, Config{ProxyProtocol: true, AccessLog: slog.New(slog.NewJSONHandler(&logs, nil))}, clientBackend(t))
	req := get("x", "/who")
	tests := []struct {
		name, header, want string
	}{
		{"v1 TCP4", proxyV1("203.0.113.7", "192.0.2.1", 5555, 443), "203.0.113.7:5555"},
		{"v1 TCP6", proxyV1("2001:db8::7", "2001:db8::1", 6000, 443), "[2001:db8::7]:6000"},
		{"v2 TCP4", proxyV2("198.51.100.9:40000", "192.0.2.1:443"), "198.51.100.9:40000"},
		{"v2 TCP6", proxyV2("[2001:db8::9]:41000", "[2001:db8::1]:443"), "[2001:db8::9]:41000"},
		{"v2 mapped", proxyV2("[::ffff:198.51.100.10]:1", "[::ffff:192.0.2.1]:443"), "198.51.100.10:1"},
		{"v1 UNKNOWN keeps the peer", "PROXY UNKNOWN\r\n", "peer"},
		{"v2 LOCAL keeps the peer", proxyV2Local, "peer"},
	}
	// How the bytes arrive: with the request in one write, the header
	// alone first, or the header split across writes.
	sends := map[string]func(rc *rawConn, hdr string){
		"together": func(rc *rawConn, hdr string) { rc.send(hdr + req) },
		"apart": func(rc *rawConn, hdr string) {
			rc.send(hdr)
			time.Sleep(20 * time.Millisecond)
			rc.send(req)
		},
		"split": func(rc *rawConn, hdr string) {
			for _, part := range []string{hdr[:5], hdr[5:13], hdr[13 : len(hdr)-1], hdr[len(hdr)-1:] + req[:3], req[3:]} {
				rc.send(part)
				time.Sleep(10 * time.Millisecond)
			}
		},
	}
	for _, tt := range tests {
		for how, send := range sends {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				rc := ts.dial(t)
				send(rc, tt.header)
				resp, body := rc.read("GET")
				want := tt.want
				if want == "peer" {
					want = rc.nc.LocalAddr().String()
				}
				if resp.StatusCode != 200 || body != want {
					t.Fatalf("client = %d %q, want %q", resp.StatusCode, body, want)
				}
				// The connection goes on as HTTP/1.1: a second request.
				rc.send(req)
				if _, body := rc.read("GET"); body != want {
					t.Fatalf("second request: client %q, want %q", body, want)
				}
			})
		}
	}
	waitFor(t, "the access log", func() bool { return strings.Contains(strings.Join(logs.lines(), "\n"), `"client":"203.0.113.7:5555"`) })
}

func TestProxyProtocolRefuses(t *testing.T) {
	m, reg := newMetrics(t)
	var calls int
	b := newFakeBackend()
	b.handle(t, "GET", "/who", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		calls++
		return respond(w, 200, "no")
	})
	ts := startServer(t, Config{ProxyProtocol: true, ReadHeaderTimeout: 300 * time.Millisecond, Metrics: m}, b)
	for _, in := range []string{
		get("x", "/who"), // no header at all
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n" + get("x", "/who"),                              // bad port
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + get("x", "/who"),                                    // no CR
		"\r\n\r\n\x00\r\nQUIT\n\x11\x11\x00\x0c" + strings.Repeat("\x01", 12) + get("x", "/who"), // version 1 in a v2 header
		"\x16\x03\x01\x00\xa5\x01", // a TLS ClientHello
	} {
		rc := ts.dial(t)
		rc.send(in)
		rc.expectEOF()
	}
	waitFor(t, "refusals counted", func() bool {
		return metricValue(t, reg, "covet_proxy_protocol_refusals_total", map[string]string{"reason": "invalid"}) == 5
	})
	// Nothing, or half a header, within read_header_timeout: closed.
	for _, in := range []string{"", "PROXY TCP4 1.2.3.4"} {
		rc := ts.dial(t)
		if in != "" {
			rc.send(in)
		}
		rc.expectEOF()
	}
	waitFor(t, "timeouts counted", func() bool {
		return metricValue(t, reg, "covet_proxy_protocol_refusals_total", map[string]string{"reason": "timeout"}) == 2
	})
	if calls != 0 {
		t.Fatalf("the backend served %d requests", calls)
	}
}

// Close does not wait for a PROXY header still to come (read_header_timeout,
// 10s by default, is longer than waitFor's 5s).
func TestProxyProtocolCloseEndsTheWait(t *testing.T) {
	ts := startServer(t, Config{ProxyProtocol: true}, clientBackend(t))
	rc := ts.dial(t)
	rc.send("PROXY TCP4 ")
	waitFor(t, "the connection to be pending", func() bool { return ts.srv.numConns() == 1 })
	ts.srv.Close()
	waitFor(t, "the pending connection to close", func() bool { return ts.srv.numConns() == 0 })
	rc.expectEOF()
}

// proxyClient is an HTTP client (proto "1.1", "2" or "h2c") whose
// connections begin with header, dialled from local.
func proxyClient(t testing.TB, tc *tls.Config, proto, local string, header func() string) *http.Client {
	c := client(t, tc, proto)
	c.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{}
		if local != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
		}
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if header != nil {
			if _, err := io.WriteString(nc, header()); err != nil {
				nc.Close()
				return nil, err
			}
		}
		return nc, nil
	}
	return c
}

func getBody(t testing.TB, c *http.Client, url string) (string, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %q %v", url, resp.StatusCode, body, err)
	}
	return resp.Proto, string(body)
}

// The PROXY header precedes the TLS ClientHello, and its source is the
// client of HTTP/2 and HTTP/1.1 requests over TLS alike; and of h2c.
func TestProxyProtocolTLSAndH2C(t *testing.T) {
	ts, tc := startTLSServer(t, Config{ProxyProtocol: true}, clientBackend(t))
	for _, tt := range []struct{ proto, want, header string }{
		{"2", "HTTP/2.0", proxyV2("[2001:db8::5]:7000", "[2001:db8::1]:443")},
		{"1.1", "HTTP/1.1", proxyV1("203.0.113.5", "192.0.2.1", 7001, 443)},
	} {
		c := proxyClient(t, tc, tt.proto, "", func() string { return tt.header })
		for range 2 {
			proto, body := getBody(t, c, "https://"+ts.addr+"/who")
			if want, _ := proxyHeaderSource(tt.header); proto != tt.want || body != want {
				t.Fatalf("TLS %s: %s client %q, want %s %q", tt.proto, proto, body, tt.want, want)
			}
		}
	}

	hs := startServer(t, Config{H2C: true, ProxyProtocol: true}, clientBackend(t))
	for _, tt := range []struct{ proto, want string }{{"h2c", "HTTP/2.0"}, {"1.1", "HTTP/1.1"}} {
		c := proxyClient(t, nil, tt.proto, "", func() string { return proxyV2("198.51.100.77:9", "192.0.2.1:80") })
		proto, body := getBody(t, c, "http://"+hs.addr+"/who")
		if proto != tt.want || body != "198.51.100.77:9" {
			t.Fatalf("h2c port, %s: %s client %q", tt.proto, proto, body)
		}
	}
	// The PROXY header together with the h2c preface in one write.
	rc := hs.dial(t)
	rc.send(proxyV1("203.0.113.8", "192.0.2.1", 1, 80) + h2Preface)
	rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var frame [9]byte
	if _, err := io.ReadFull(rc.br, frame[:]); err != nil || frame[3] != 0x4 { // the server's SETTINGS
		t.Fatalf("h2c after a PROXY header: %x %v", frame, err)
	}
}

// proxyHeaderSource is the "ip:port" the test headers above name.
func proxyHeaderSource(h string) (string, bool) {
	if strings.HasPrefix(h, "PROXY ") {
		f := strings.Fields(h)
		return net.JoinHostPort(f[2], f[4]), true
	}
	b := []byte(h)
	if b[13] == 0x11 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[16:20])), binary.BigEndian.Uint16(b[24:26])).String(), true
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[16:32])), binary.BigEndian.Uint16(b[48:50])).String(), true
}

func TestMaxConnsPerIP(t *testing.T) {
	m, reg := newMetrics(t)
	ts := startServer(t, Config{MaxConnsPerIP: 2, Metrics: m}, clientBackend(t))
	refused := func() float64 {
		return metricValue(t, reg, "covet_client_refusals_total", map[string]string{"reason": "conns_per_ip"})
	}
	open := func(local string) *rawConn {
		rc := rawFrom(t, local, ts.addr)
		rc.send(get("x", "/who"))
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || !strings.HasPrefix(body, local+":") {
			t.Fatalf("from %s: %d %q", local, resp.StatusCode, body)
		}
		return rc
	}
	a, _ := open("127.0.0.1"), open("127.0.0.1")
	// A third from 127.0.0.1 is closed unanswered.
	rc := rawFrom(t, "127.0.0.1", ts.addr)
	rc.send(get("x", "/who"))
	rc.expectEOF()
	if refused() != 1 {
		t.Fatalf("refusals = %v, want 1", refused())
	}
	// Another address has its own count.
	open("127.0.0.2")
	open("127.0.0.2")
	// One closed: 127.0.0.1 may open one again.
	a.nc.Close()
	ip := netip.MustParseAddr("127.0.0.1")
	waitFor(t, "the closed connection to be uncounted", func() bool { return ts.srv.perIP.open(ip) == 1 })
	open("127.0.0.1")
	if refused() != 1 {
		t.Fatalf("refusals = %v, want 1", refused())
	}
}

// With proxy_protocol the limit counts the PROXY header's source; TLS and
// HTTP/2 connections count like any other until they close.
func TestMaxConnsPerIPProxyTLS(t *testing.T) {
	m, reg := newMetrics(t)
	ts, tc := startTLSServer(t, Config{MaxConnsPerIP: 1, ProxyProtocol: true, Metrics: m}, clientBackend(t))
	from := func(src string) func() string {
		return func() string { return proxyV1(src, "192.0.2.1", 1234, 443) }
	}
	url := "https://" + ts.addr + "/who"
	h2 := proxyClient(t, tc, "2", "", from("203.0.113.1"))
	if _, body := getBody(t, h2, url); body != "203.0.113.1:1234" {
		t.Fatalf("client %q", body)
	}
	// The HTTP/2 connection stays open: 203.0.113.1 has its one.
	again := proxyClient(t, tc, "1.1", "", from("203.0.113.1"))
	if resp, err := again.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("a second connection from 203.0.113.1 was served: %d", resp.StatusCode)
	}
	if v := metricValue(t, reg, "covet_client_refusals_total", map[string]string{"reason": "conns_per_ip"}); v != 1 {
		t.Fatalf("refusals = %v, want 1", v)
	}
	// Same socket peer, another source: served.
	other := proxyClient(t, tc, "1.1", "", from("203.0.113.2"))
	if _, body := getBody(t, other, url); body != "203.0.113.2:1234" {
		t.Fatalf("client %q", body)
	}
	// The HTTP/2 connection closed: 203.0.113.1 is free again.
	h2.Transport.(*http.Transport).CloseIdleConnections()
	ip := netip.MustParseAddr("203.0.113.1")
	waitFor(t, "the HTTP/2 connection to be uncounted", func() bool { return ts.srv.perIP.open(ip) == 0 })
	if _, body := getBody(t, again, url); body != "203.0.113.1:1234" {
		t.Fatalf("client %q", body)
	}
	// A TLS handshake that fails uncounts its connection too.
	rc := rawFrom(t, "", ts.addr)
	rc.send(proxyV1("203.0.113.3", "192.0.2.1", 1, 443) + "\x16\x03\x01\x00\x05hello")
	if b, err := io.ReadAll(rc.br); err != nil || len(b) > 0 && b[0] != 0x15 { // a TLS alert, then EOF
		t.Fatalf("bad ClientHello: %q %v", b, err)
	}
	waitFor(t, "the failed handshake to be uncounted", func() bool { return ts.srv.perIP.open(netip.MustParseAddr("203.0.113.3")) == 0 })
}

// Without proxy_protocol, TLS connections count by their socket peer.
func TestMaxConnsPerIPTLS(t *testing.T) {
	ts, tc := startTLSServer(t, Config{MaxConnsPerIP: 1}, clientBackend(t))
	url := "https://" + ts.addr + "/who"
	first := proxyClient(t, tc, "2", "127.0.0.1", nil)
	if _, body := getBody(t, first, url); !strings.HasPrefix(body, "127.0.0.1:") {
		t.Fatalf("client %q", body)
	}
	if resp, err := proxyClient(t, tc, "2", "127.0.0.1", nil).Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("a second TLS connection from 127.0.0.1 was served")
	}
	if _, body := getBody(t, proxyClient(t, tc, "2", "127.0.0.2", nil), url); !strings.HasPrefix(body, "127.0.0.2:") {
		t.Fatalf("client %q", body)
	}
}

func TestConfigMaxConnsPerIP(t *testing.T) {
	c := Config{MaxConnsPerIP: -1}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "MaxConnsPerIP -1 is negative") {
		t.Fatalf("Validate = %v", err)
	}
}
