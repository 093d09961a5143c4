package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/covetpy/covetpy/gateway/dispatch"
)

// startH3Server serves b over TLS (HTTP/1.1 and HTTP/2) and HTTP/3 on the
// same port number, TCP and UDP; it returns the server, a client TLS config
// that trusts it, and the UDP address.
func startH3Server(t testing.TB, cfg Config, b Backend) (*testServer, *tls.Config, string) {
	t.Helper()
	ts, tc := startTLSServer(t, cfg, b)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ts.srv.ServeHTTP3(pc) }()
	t.Cleanup(func() {
		ts.srv.Close()
		select {
		case err := <-served:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("ServeHTTP3 returned %v, want ErrServerClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("ServeHTTP3 did not return after Close")
		}
	})
	return ts, tc, pc.LocalAddr().String()
}

// h3Client returns an HTTP/3 client trusting tc's roots.
func h3Client(t testing.TB, tc *tls.Config) *http.Client {
	tr := &http3.Transport{TLSClientConfig: tc.Clone()}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestHTTP3ServesRequestsAndAltSvc(t *testing.T) {
	var sn seen
	b := echoBackend(t, &sn)
	b.handle(t, "GET", "/own-alt-svc", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 200, "x", "alt-svc", "clear")
	})
	const altSvc = `h3=":4433"; ma=86400`
	ts, tc, addr := startH3Server(t, Config{AltSvc: altSvc}, b)
	c := h3Client(t, tc)
	resp, err := c.Get("https://" + addr + "/items/7?x=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/3.0" || resp.StatusCode != 200 || string(body) != "item 7" {
		t.Fatalf("%s %d %q, want HTTP/3.0 200 \"item 7\"", resp.Proto, resp.StatusCode, body)
	}
	if resp.Header.Get("Server") != "covetpy" || len(resp.Header.Get("X-Request-Id")) != 16 || resp.Header.Get("X-Proto") != "3" {
		t.Errorf("response fields %v", resp.Header)
	}
	h, _ := sn.last(t)
	if h.HTTPVersion != "3" || h.Scheme != "https" || h.Path != "/items/7" || h.Query != "x=1" || h.Route != "/items/{id}" {
		t.Errorf("worker saw version %q scheme %q path %q query %q route %q", h.HTTPVersion, h.Scheme, h.Path, h.Query, h.Route)
	}
	if got := header(h, "host"); got != addr {
		t.Errorf("worker saw host %q, want %q", got, addr)
	}

	resp, err = c.Post("https://"+addr+"/echo", "text/plain", strings.NewReader(strings.Repeat("b", 100000)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || string(body) != strings.Repeat("b", 100000) {
		t.Errorf("echo: %d, %d bytes", resp.StatusCode, len(body))
	}
	for _, a := range []struct {
		method, path string
		status       int
		allow        string
	}{{"GET", "/nope", 404, ""}, {"DELETE", "/echo", 405, "OPTIONS, POST"}} {
		req, _ := http.NewRequest(a.method, "https://"+addr+a.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != a.status || resp.Header.Get("Allow") != a.allow || !strings.HasSuffix(string(body), "\n") {
			t.Errorf("%s %s: %d Allow %q %q, want %d Allow %q", a.method, a.path, resp.StatusCode, resp.Header.Get("Allow"), body, a.status, a.allow)
		}
	}

	// Alt-Svc goes on HTTP/1.1 and HTTP/2 responses, the worker's and the
	// gateway's own, unless the worker set its own.
	for _, proto := range []string{"1.1", "2"} {
		c := client(t, tc, proto)
		for _, a := range []struct{ path, want string }{{"/items/1", altSvc}, {"/nope", altSvc}, {"/own-alt-svc", "clear"}} {
			resp, err := c.Get("https://" + ts.addr + a.path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := resp.Header.Values("Alt-Svc"); len(got) != 1 || got[0] != a.want {
				t.Errorf("HTTP/%s %s: Alt-Svc %q, want %q", proto, a.path, got, a.want)
			}
		}
	}
}

func TestHTTP3StreamingCancelAndLimits(t *testing.T) {
	streamingCancelAndLimits(t, func(cfg Config, b Backend) (*http.Client, string) {
		_, tc, addr := startH3Server(t, cfg, b)
		return h3Client(t, tc), "https://" + addr
	})
}

func TestHTTP3ShutdownFinishesStreams(t *testing.T) {
	shutdownFinishesStreams(t, func(cfg Config, b Backend) (*testServer, *http.Client, string) {
		ts, tc, addr := startH3Server(t, cfg, b)
		return ts, h3Client(t, tc), "https://" + addr
	})
}

// countingCache is a TLS client session cache that counts the tickets put.
type countingCache struct {
	tls.ClientSessionCache
	puts atomic.Int64
}

func (c *countingCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts.Add(1)
	}
	c.ClientSessionCache.Put(key, cs)
}

// TestHTTP3EarlyData resumes a QUIC connection with 0-RTT and sends a GET
// in early data: it is served. quic-go's client sends only GET and HEAD in
// early data, so the 425 for an unsafe method is driven through the
// Handler with a request whose handshake has not completed, as quic-go's
// server hands it one that arrived in 0-RTT.
func TestHTTP3EarlyData(t *testing.T) {
	var sn seen
	var echoed atomic.Int64
	b := echoBackend(t, &sn)
	b.handle(t, "PUT", "/echo", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		echoed.Add(1)
		return respond(w, 200, "")
	})
	ts, tc, addr := startH3Server(t, Config{HTTP3EarlyData: true}, b)
	cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	ctc := http3.ConfigureTLSConfig(tc.Clone())
	ctc.ClientSessionCache = cache
	dial := func() (*quic.Conn, *http3.ClientConn) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		qc, err := quic.DialAddrEarly(ctx, addr, ctc, &quic.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return qc, (&http3.Transport{}).NewClientConn(qc)
	}
	get := func(cc *http3.ClientConn, method string) int {
		req, _ := http.NewRequest(method, "https://"+addr+"/items/5", nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	qc, cc := dial()
	if st := get(cc, http.MethodGet); st != 200 {
		t.Fatalf("first GET: %d", st)
	}
	waitFor(t, "a session ticket", func() bool { return cache.puts.Load() > 0 })
	qc.CloseWithError(0, "")

	qc, cc = dial()
	defer qc.CloseWithError(0, "")
	if st := get(cc, http3.MethodGet0RTT); st != 200 {
		t.Fatalf("GET in early data: %d", st)
	}
	if !qc.ConnectionState().Used0RTT {
		t.Fatal("the second connection did not use 0-RTT")
	}

	h := ts.srv.Handler("3")
	for _, a := range []struct {
		method   string
		complete bool
		want     int
	}{{"PUT", false, 425}, {"PUT", true, 200}, {"GET", false, 200}} {
		path := "/echo"
		if a.method == "GET" {
			path = "/items/1"
		}
		req := httptest.NewRequest(a.method, "https://localhost"+path, strings.NewReader("body"))
		req.RequestURI = path // as a server sets it: origin form
		req.TLS = &tls.ConnectionState{HandshakeComplete: a.complete, Version: tls.VersionTLS13}
		rec := httptest.NewRecorder()
		before := echoed.Load()
		h.ServeHTTP(rec, req)
		if rec.Code != a.want {
			t.Errorf("%s handshake complete %v: %d, want %d", a.method, a.complete, rec.Code, a.want)
		}
		if a.want == 425 && (echoed.Load() != before || rec.Body.String() != "Too Early\n") {
			t.Errorf("425: the worker was reached (%d) or body %q", echoed.Load()-before, rec.Body.String())
		}
	}
}

// TestHTTP3NeedsTLS: ServeHTTP3 without a TLS config fails and closes the
// socket.
func TestHTTP3NeedsTLS(t *testing.T) {
	ts := startServer(t, Config{}, newFakeBackend())
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.ServeHTTP3(pc); err == nil || errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeHTTP3 without TLS: %v", err)
	}
	if _, err := pc.WriteTo([]byte("x"), pc.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the socket is still open: %v", err)
	}
}

// TestHTTP3ShutdownClosesIdleConnections: a QUIC connection with no
// request in flight is closed by Shutdown after GOAWAY, even when its
// client would keep it open.
func TestHTTP3ShutdownClosesIdleConnections(t *testing.T) {
	ts, tc, addr := startH3Server(t, Config{}, newFakeBackend())
	ctc := tc.Clone()
	ctc.NextProtos = []string{http3.NextProtoH3}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A bare QUIC client: it never reads GOAWAY, so it never closes.
	qc, err := quic.DialAddr(ctx, addr, ctc, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	waitFor(t, "the QUIC connection to count", func() bool { return ts.srv.numConns() == 1 })
	shut := make(chan error, 1)
	go func() { shut <- ts.srv.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown waits on an idle QUIC connection")
	}
	select {
	case <-qc.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the client's connection was not closed")
	}
}

// BenchmarkHTTP3VersusHTTP2 times one GET at a time on one connection,
// HTTP/2 over TLS and HTTP/3, through a fake worker answering 1 KiB.
func BenchmarkHTTP3VersusHTTP2(b *testing.B) {
	be := newFakeBackend()
	body := strings.Repeat("x", 1024)
	be.handle(b, "GET", "/k", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 200, body)
	})
	ts, tc, addr := startH3Server(b, Config{}, be)
	for _, tt := range []struct {
		name string
		c    *http.Client
		url  string
	}{{"h2", client(b, tc, "2"), "https://" + ts.addr + "/k"}, {"h3", h3Client(b, tc), "https://" + addr + "/k"}} {
		b.Run(tt.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				resp, err := tt.c.Get(tt.url)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n != 1024 {
					b.Fatalf("%d bytes", n)
				}
			}
		})
	}
}
