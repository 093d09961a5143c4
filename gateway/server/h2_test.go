package server

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/http1"
	covettls "github.com/covetpy/covetpy/tls"
	"github.com/covetpy/covetpy/workerproto"
)

// testCert makes a self-signed ECDSA certificate for localhost and
// 127.0.0.1, and a pool that trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	return makeCert(t, "localhost", x509.ExtKeyUsageServerAuth)
}

// makeCert makes a self-signed ECDSA certificate named cn (also a SAN) for
// usage, and a pool that trusts it.
func makeCert(t testing.TB, cn string, usage x509.ExtKeyUsage) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              []string{cn},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// startTLSServer serves b over TLS offering h2 and http/1.1 (HTTP2 on);
// the client returned speaks the protocols given and trusts the server.
// tune, when given, alters the server's tls.Config before it serves (after,
// a change would race with handshakes).
func startTLSServer(t testing.TB, cfg Config, b Backend, tune ...func(*tls.Config)) (*testServer, *tls.Config) {
	t.Helper()
	cert, pool := testCert(t)
	cfg.HTTP2 = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	eng := testEngine(t)
	ts := &testServer{
		srv: &Server{Config: cfg, Backend: b, Engine: eng, TLS: &tls.Config{
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{"h2", "http/1.1"},
		}},
		addr:   l.Addr().String(),
		ln:     &countingListener{Listener: eng.Listen(l)},
		served: make(chan error, 1),
	}
	for _, f := range tune {
		f(ts.srv.TLS)
	}
	go func() { ts.served <- ts.srv.Serve(ts.ln) }()
	t.Cleanup(func() {
		ts.srv.Close()
		if err := <-ts.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		waitFor(t, "connections to close", func() bool { return ts.srv.numConns() == 0 })
		eng.Close()
	})
	return ts, &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// client returns an HTTP client speaking only proto ("1.1", "2" or "h2c").
func client(t testing.TB, tc *tls.Config, proto string) *http.Client {
	var p http.Protocols
	switch proto {
	case "1.1":
		p.SetHTTP1(true)
	case "2":
		p.SetHTTP2(true)
	case "h2c":
		p.SetUnencryptedHTTP2(true)
	}
	tr := &http.Transport{TLSClientConfig: tc.Clone(), Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// seen records the request heads the fake worker got.
type seen struct {
	mu     sync.Mutex
	heads  []workerproto.RequestHead
	bodies [][]byte
}

func (s *seen) add(req *dispatch.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := req.Head
	h.Headers = nil
	for _, f := range req.Head.Headers {
		h.Headers = append(h.Headers, workerproto.Header{Name: []byte(strings.ToLower(string(f.Name))), Value: append([]byte(nil), f.Value...)})
	}
	s.heads = append(s.heads, h)
	s.bodies = append(s.bodies, append([]byte(nil), req.Body...))
}

func (s *seen) last(t testing.TB) (workerproto.RequestHead, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.heads) == 0 {
		t.Fatal("the worker saw no request")
	}
	return s.heads[len(s.heads)-1], s.bodies[len(s.bodies)-1]
}

func header(h workerproto.RequestHead, name string) string {
	for _, f := range h.Headers {
		if string(f.Name) == name {
			return string(f.Value)
		}
	}
	return ""
}

func echoBackend(t testing.TB, sn *seen) *fakeBackend {
	b := newFakeBackend()
	b.handle(t, "GET", "/items/{id}", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		sn.add(req)
		return respond(w, 200, "item "+req.Head.Params[0].Value, "content-type", "text/plain", "x-proto", req.Head.HTTPVersion)
	})
	b.handle(t, "POST", "/echo", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		sn.add(req)
		return respond(w, 201, string(req.Body))
	})
	return b
}

func TestTLSServesHTTP2AndHTTP1(t *testing.T) {
	var sn seen
	ts, tc := startTLSServer(t, Config{}, echoBackend(t, &sn))
	for _, tt := range []struct{ proto, want string }{{"2", "HTTP/2.0"}, {"1.1", "HTTP/1.1"}} {
		t.Run(tt.proto, func(t *testing.T) {
			c := client(t, tc, tt.proto)
			resp, err := c.Get("https://" + ts.addr + "/items/7?x=1")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Proto != tt.want || resp.StatusCode != 200 || string(body) != "item 7" {
				t.Fatalf("%s %d %q, want %s 200 \"item 7\"", resp.Proto, resp.StatusCode, body, tt.want)
			}
			if resp.Header.Get("Server") != "covetpy" || len(resp.Header.Get("X-Request-Id")) != 16 || resp.Header.Get("Content-Type") != "text/plain" {
				t.Errorf("response fields %v", resp.Header)
			}
			h, _ := sn.last(t)
			if h.HTTPVersion != tt.proto || h.Scheme != "https" || h.Path != "/items/7" || h.Query != "x=1" || h.Route != "/items/{id}" {
				t.Errorf("worker saw version %q scheme %q path %q query %q route %q", h.HTTPVersion, h.Scheme, h.Path, h.Query, h.Route)
			}
			if got := header(h, "host"); got != ts.addr {
				t.Errorf("worker saw host %q, want %q", got, ts.addr)
			}
			if resp.Header.Get("X-Request-Id") != h.RequestID {
				t.Errorf("X-Request-Id %q, worker saw %q", resp.Header.Get("X-Request-Id"), h.RequestID)
			}
			resp, err = c.Post("https://"+ts.addr+"/echo", "text/plain", strings.NewReader(strings.Repeat("b", 100000)))
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 201 || len(body) != 100000 {
				t.Errorf("echo: %d, %d bytes", resp.StatusCode, len(body))
			}
			for _, a := range []struct {
				method, path string
				status       int
				allow        string
			}{{"GET", "/nope", 404, ""}, {"DELETE", "/echo", 405, "OPTIONS, POST"}, {"GET", "/a/%2e%2e/b", 400, ""}} {
				req, _ := http.NewRequest(a.method, "https://"+ts.addr+a.path, nil)
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
		})
	}
}

func TestTLSPortRefusesPlainHTTPAndGarbage(t *testing.T) {
	var sn seen
	ts, tc := startTLSServer(t, Config{}, echoBackend(t, &sn))
	// Plain HTTP: 400, as nginx answers.
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(nc, "GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n")
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	nc.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "HTTPS port") || !resp.Close {
		t.Fatalf("plain HTTP to the TLS port: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	// A garbage ClientHello: that connection is closed, nothing is written.
	nc, err = net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5})
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(nc)
	nc.Close()
	if err != nil || len(b) > 0 && b[0] != 0x15 { // EOF, or a TLS alert record
		t.Fatalf("garbage ClientHello got %q, %v", b, err)
	}
	// The server serves on.
	resp, err = client(t, tc, "2").Get("https://" + ts.addr + "/items/2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after bad clients: %d", resp.StatusCode)
	}
}

func TestHTTP2StreamingCancelAndLimits(t *testing.T) {
	streamingCancelAndLimits(t, func(cfg Config, b Backend) (*http.Client, string) {
		ts, tc := startTLSServer(t, cfg, b)
		return client(t, tc, "2"), "https://" + ts.addr
	})
}

// streamingCancelAndLimits: each piece of a streamed response arrives before
// the worker writes the next, a client's cancel reaches the handler, and a
// body over MaxBodyBytes, declared or not, is 413 without reaching it. start
// serves b over the protocol under test and returns a client and the base URL.
func streamingCancelAndLimits(t *testing.T, start func(Config, Backend) (*http.Client, string)) {
	b := newFakeBackend()
	next := make(chan struct{})
	canceled := make(chan struct{})
	b.handle(t, "GET", "/stream", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		if err := w.WriteHead(200, nil, -1); err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			if err := w.WriteBody([]byte("tick\n")); err != nil {
				return err
			}
			select {
			case <-next:
			case <-ctx.Done():
				close(canceled)
				return dispatch.ErrCanceled
			}
		}
		return nil
	})
	var uploads atomic.Int64
	b.handle(t, "POST", "/up", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		uploads.Add(1)
		return respond(w, 200, "")
	})
	c, base := start(Config{Limits: http1.Limits{MaxBodyBytes: 1000}}, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/stream", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// Each piece arrives before the worker writes the next: streamed.
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 2; i++ {
		line, err := br.ReadString('\n')
		if err != nil || line != "tick\n" {
			t.Fatalf("piece %d: %q %v", i, line, err)
		}
		if i == 0 {
			next <- struct{}{}
		}
	}
	cancel() // the stream is reset: the handler's context ends
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream's cancel did not reach the handler")
	}
	resp.Body.Close()

	// A body over MaxBodyBytes: 413, declared or not; the worker never
	// sees it.
	for _, declared := range []bool{true, false} {
		body := io.Reader(strings.NewReader(strings.Repeat("x", 2000)))
		if !declared {
			body = io.MultiReader(body) // length unknown: no content-length
		}
		resp, err = c.Post(base+"/up", "text/plain", body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 || uploads.Load() != 0 {
			t.Fatalf("declared=%v: %d, %d uploads served", declared, resp.StatusCode, uploads.Load())
		}
	}
}

func TestH2CPriorKnowledgeBesideHTTP1(t *testing.T) {
	var sn seen
	ts := startServer(t, Config{H2C: true}, echoBackend(t, &sn))
	for _, proto := range []string{"h2c", "1.1"} {
		resp, err := client(t, &tls.Config{}, proto).Get("http://" + ts.addr + "/items/3")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := map[string]string{"h2c": "HTTP/2.0", "1.1": "HTTP/1.1"}[proto]
		if resp.Proto != want || string(body) != "item 3" {
			t.Fatalf("%s: %s %q", proto, resp.Proto, body)
		}
		h, _ := sn.last(t)
		if h.Scheme != "http" || h.HTTPVersion != map[string]string{"h2c": "2", "1.1": "1.1"}[proto] {
			t.Errorf("%s: worker saw %s over %s", proto, h.HTTPVersion, h.Scheme)
		}
	}
	// A request line shorter than the preface, split in two writes.
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "GET /items/4 HTTP/1.1\r\n")
	time.Sleep(10 * time.Millisecond)
	io.WriteString(nc, "Host: x\r\n\r\n")
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 6))
	if resp.StatusCode != 200 || string(body) != "item 4" {
		t.Fatalf("split HTTP/1.1 on an h2c port: %d %q", resp.StatusCode, body)
	}
}

func TestHTTP2ShutdownFinishesStreams(t *testing.T) {
	shutdownFinishesStreams(t, func(cfg Config, b Backend) (*testServer, *http.Client, string) {
		ts, tc := startTLSServer(t, cfg, b)
		return ts, client(t, tc, "2"), "https://" + ts.addr
	})
}

// shutdownFinishesStreams: Shutdown with a request in flight waits for
// it, which completes, and then returns with no connection left. start
// serves b over the protocol under test and returns a client and the base
// URL.
func shutdownFinishesStreams(t *testing.T, start func(Config, Backend) (*testServer, *http.Client, string)) {
	b := newFakeBackend()
	started := make(chan struct{})
	release := make(chan struct{})
	b.handle(t, "GET", "/slow", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		close(started)
		<-release
		return respond(w, 200, "done")
	})
	ts, c, base := start(Config{}, b)
	got := make(chan string, 1)
	go func() {
		resp, err := c.Get(base + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(body)
	}()
	<-started
	if n := ts.srv.numConns(); n != 1 {
		t.Errorf("numConns %d with one connection open, want 1", n)
	}
	shut := make(chan error, 1)
	go func() { shut <- ts.srv.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond) // let GOAWAY go out
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a stream in flight", err)
	default:
	}
	close(release)
	if body := <-got; body != "done" {
		t.Fatalf("in-flight stream got %q", body)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last stream")
	}
	if n := ts.srv.numConns(); n != 0 {
		t.Errorf("numConns %d after Shutdown", n)
	}
}

func TestHTTP2EarlyHints(t *testing.T) {
	b := newFakeBackend()
	b.handle(t, "GET", "/page", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		iw := w.(interface {
			WriteInterim(int, []workerproto.Header) error
		})
		link := []workerproto.Header{{Name: []byte("link"), Value: []byte("</app.css>; rel=preload; as=style")}}
		if err := iw.WriteInterim(103, link); err != nil {
			return err
		}
		return respond(w, 200, "page", "content-type", "text/html")
	})
	ts, tc := startTLSServer(t, Config{}, b)
	var hints []http.Header
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		if code == 103 {
			hints = append(hints, http.Header(h).Clone())
		}
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "https://"+ts.addr+"/page", nil)
	resp, err := client(t, tc, "2").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != 200 || string(body) != "page" || len(hints) != 1 || hints[0].Get("Link") != "</app.css>; rel=preload; as=style" {
		t.Fatalf("%d %q, hints %v", resp.StatusCode, body, hints)
	}
	if resp.Header.Get("Link") != "" {
		t.Errorf("the hint's Link leaked into the final response: %v", resp.Header)
	}
}

func TestMutualTLSClientCertReachesWorker(t *testing.T) {
	var sn seen
	clientCert, clientPool := makeCert(t, "alice.example", x509.ExtKeyUsageClientAuth)
	ts, tc := startTLSServer(t, Config{}, echoBackend(t, &sn), func(c *tls.Config) {
		c.ClientCAs = clientPool
		c.ClientAuth = tls.VerifyClientCertIfGiven
	})
	leaf := []*x509.Certificate{clientCert.Leaf}
	want := covettls.Identity(&tls.ConnectionState{PeerCertificates: leaf, VerifiedChains: [][]*x509.Certificate{leaf}})
	for _, proto := range []string{"2", "1.1"} {
		withCert := tc.Clone()
		withCert.Certificates = []tls.Certificate{clientCert}
		for _, cc := range []*tls.Config{withCert, tc} {
			resp, err := client(t, cc, proto).Get("https://" + ts.addr + "/items/1")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h, _ := sn.last(t)
			switch {
			case cc == tc && h.ClientCert != nil:
				t.Errorf("%s without a certificate: worker saw %+v", proto, h.ClientCert)
			case cc == withCert && (h.ClientCert == nil || h.ClientCert.Subject != want.Subject ||
				h.ClientCert.Fingerprint != want.Fingerprint || strings.Join(h.ClientCert.SANs, ",") != "alice.example,127.0.0.1"):
				t.Errorf("%s with a certificate: worker saw %+v, want %+v", proto, h.ClientCert, want)
			}
		}
	}
}
