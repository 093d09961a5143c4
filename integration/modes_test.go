package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// protoMode is one way clients reach the gateway: the flags it runs with and the
// client that speaks that protocol to it. TestModes runs the core behaviour suite once
// per mode.
type protoMode struct {
	name  string
	tls   bool     // the gateway serves TLS with a certificate the client trusts
	flags []string // more gateway flags
	// transport makes the client's round tripper; roots trusts the gateway's
	// certificate (nil without TLS).
	transport func(roots *x509.CertPool) http.RoundTripper
	major     int    // the response's ProtoMajor
	alpn      string // the protocol TLS negotiates; "" without TLS
	version   string // req.http_version in the worker
}

// protoModes are the modes TestModes (and, those over TLS, tls_test.go) run in.
var protoModes = []protoMode{
	{name: "http1", transport: netTransport(httpProtocols(true, false, false)), major: 1, version: "1.1"},
	{name: "http1-tls", tls: true, transport: netTransport(httpProtocols(true, false, false)), major: 1, alpn: "http/1.1", version: "1.1"},
	{name: "h2-tls", tls: true, transport: netTransport(httpProtocols(false, true, false)), major: 2, alpn: "h2", version: "2"},
	{name: "h2c", flags: []string{"--h2c"}, transport: netTransport(httpProtocols(false, false, true)), major: 2, version: "2"},
	{name: "h3", tls: true, flags: []string{"--http3"}, transport: h3Transport, major: 3, alpn: "h3", version: "3"},
}

// httpProtocols is the set of protocols a net/http client may speak.
func httpProtocols(http1, http2, h2c bool) *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(http1)
	p.SetHTTP2(http2)
	p.SetUnencryptedHTTP2(h2c)
	return &p
}

// netTransport makes net/http transports that speak only the protocols p.
func netTransport(p *http.Protocols) func(*x509.CertPool) http.RoundTripper {
	return func(roots *x509.CertPool) http.RoundTripper {
		cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
		if !p.HTTP2() {
			// net/http offers no ALPN for HTTP/1.1 alone; a browser offers it.
			cfg.NextProtos = []string{"http/1.1"}
		}
		return &http.Transport{Protocols: p, TLSClientConfig: cfg}
	}
}

// client is an http.Client of the mode that trusts roots and presents cert (none if
// nil).
func (mode protoMode) client(roots *x509.CertPool, cert *certPair) *http.Client {
	rt := mode.transport(roots)
	if cert != nil {
		switch tr := rt.(type) {
		case *http.Transport:
			tr.TLSClientConfig.Certificates = []tls.Certificate{cert.tlsCert()}
		case *http3.Transport:
			tr.TLSClientConfig.Certificates = []tls.Certificate{cert.tlsCert()}
		}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: rt}
}

// h3Transport makes quic-go's HTTP/3 client (QUIC on the listen port's UDP twin).
func h3Transport(roots *x509.CertPool) http.RoundTripper {
	return &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
}

// modeGateway is a gateway serving gwapp in a protocol mode, and a client for it.
type modeGateway struct {
	*gateway
	mode   protoMode
	base   string // http://addr or https://addr
	client *http.Client
	// certFile and keyFile are the gateway's certificate and key files (TLS modes).
	certFile, keyFile string
}

// startModeGateway runs the gateway with workers of gwapp in mode, with flags added,
// and waits until the mode's client gets 200 from /hello and every worker attached.
func startModeGateway(t *testing.T, mode protoMode, workers int, flags ...string) *modeGateway {
	t.Helper()
	var server *certPair
	if mode.tls {
		server = selfSignedServer(t)
	}
	return startModeGatewayWith(t, mode, server, nil, workers, flags...)
}

// startModeGatewayWith is startModeGateway with the gateway's certificate server
// (written to server.crt and server.key in a folder of its own; nil without TLS) and
// the client's certificate, if any.
func startModeGatewayWith(t *testing.T, mode protoMode, server, client *certPair, workers int, flags ...string) *modeGateway {
	t.Helper()
	var roots *x509.CertPool
	var certFile, keyFile string
	scheme := "http"
	if mode.tls {
		certFile, keyFile = server.write(t, t.TempDir(), "server")
		flags = append([]string{"--tls-cert", certFile, "--tls-key", keyFile}, flags...)
		roots, scheme = pool(server), "https"
	}
	flags = append(append([]string(nil), mode.flags...), flags...)
	g := launchGateway(t, "gwapp", sdkWorker(t, "gwapp"), workers, flags...)
	t.Cleanup(g.stop)
	m := &modeGateway{gateway: g, mode: mode, base: scheme + "://" + g.addr, client: mode.client(roots, client),
		certFile: certFile, keyFile: keyFile}
	t.Cleanup(m.client.CloseIdleConnections)
	g.waitServingBy(workers, m.client, m.base+"/hello")
	return m
}

// do sends a request with ctx and checks it came back in the mode's protocol.
func (m *modeGateway) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, r)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.ProtoMajor != m.mode.major {
		m.t.Errorf("%s %s answered in %s, want HTTP/%d", method, path, resp.Proto, m.mode.major)
	}
	if m.mode.tls && resp.TLS == nil {
		m.t.Errorf("%s %s: answered without TLS", method, path)
	} else if m.mode.tls && resp.TLS.NegotiatedProtocol != m.mode.alpn {
		m.t.Errorf("%s %s: ALPN chose %q, want %q", method, path, resp.TLS.NegotiatedProtocol, m.mode.alpn)
	}
	return resp, nil
}

// fetch is do with the body read: status, body, headers; it fails the test on an
// error.
func (m *modeGateway) fetch(method, path string, body []byte) (int, []byte, http.Header) {
	m.t.Helper()
	st, b, h, err := m.tryFetch(method, path, body)
	if err != nil {
		m.t.Fatalf("%s %s: %v; output:\n%s", method, path, err, m.out)
	}
	return st, b, h
}

// tryFetch is fetch returning its error (for goroutines other than the test's).
func (m *modeGateway) tryFetch(method, path string, body []byte) (int, []byte, http.Header, error) {
	resp, err := m.do(context.Background(), method, path, body)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

// TestModes runs the core behaviour suite in each protocol mode (protoModes): routing
// and parameters, large bodies both ways, streaming, client cancel, 504 on one gateway;
// 502 and 503 each on a gateway of their own.
func TestModes(t *testing.T) {
	for _, mode := range protoModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Run("core", func(t *testing.T) {
				m := startModeGateway(t, mode, 1)
				for _, c := range modeCases {
					t.Run(c.name, func(t *testing.T) {
						m.t = t
						c.run(t, m)
					})
				}
				m.t = t // the gateway's cleanup reports to the test that started it
			})
			t.Run("502", func(t *testing.T) { modeWorkerDies(t, mode) })
			t.Run("503", func(t *testing.T) { modeQueueFull(t, mode) })
		})
	}
}

// modeCases are the behaviours checked on one gateway per mode.
var modeCases = []struct {
	name string
	run  func(*testing.T, *modeGateway)
}{
	{"routing", modeRouting},
	{"large bodies", modeLargeBodies},
	{"streaming", modeStreaming},
	{"client cancel", modeClientCancel},
	{"504", modeDeadline},
}

// modeRouting: a typed path parameter and a query parameter reach the handler, which
// sees the protocol and scheme of the mode; unknown paths and ill-typed parameters
// are 404.
func modeRouting(t *testing.T, m *modeGateway) {
	st, body, h := m.fetch("GET", "/items/42?q=a%20b", nil)
	if st != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("/items/42: %d %q %q", st, h.Get("Content-Type"), body)
	}
	var got struct {
		ID          int    `json:"id"`
		Q           string `json:"q"`
		HTTPVersion string `json:"http_version"`
		Scheme      string `json:"scheme"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("/items/42: %v in %q", err, body)
	}
	scheme := "http"
	if m.mode.tls {
		scheme = "https"
	}
	if got.ID != 42 || got.Q != "a b" || got.HTTPVersion != m.mode.version || got.Scheme != scheme {
		t.Errorf("/items/42?q=a%%20b: the handler saw %+v, want id 42, q \"a b\", http_version %q, scheme %q",
			got, m.mode.version, scheme)
	}
	for _, path := range []string{"/items/x", "/no/such/route"} {
		if st, body, _ := m.fetch("GET", path, nil); st != 404 {
			t.Errorf("%s: %d %q, want 404", path, st, body)
		}
	}
	if st, body, _ := m.fetch("GET", "/hello", nil); st != 200 || string(body) != "hello" {
		t.Errorf("/hello: %d %q", st, body)
	}
}

// modeLargeBodies: a 3 MiB request body comes back whole (echo), and a 2 MiB streamed
// response arrives whole and in order.
func modeLargeBodies(t *testing.T, m *modeGateway) {
	in := make([]byte, 3<<20)
	rand.Read(in)
	st, out, _ := m.fetch("POST", "/echo", in)
	if st != 200 || !bytes.Equal(in, out) {
		t.Errorf("POST /echo of %d bytes: %d, %d bytes back (sha256 %x, sent %x)",
			len(in), st, len(out), sha256.Sum256(out), sha256.Sum256(in))
	}
	const mb, chunk = 2, 64 << 10
	st, out, _ = m.fetch("GET", fmt.Sprintf("/flood?mb=%d", mb), nil)
	if st != 200 || len(out) != mb<<20 {
		t.Fatalf("/flood?mb=%d: %d, %d bytes", mb, st, len(out))
	}
	for i := 0; i < len(out); i += chunk {
		if want := byte(i / chunk % 251); out[i] != want || out[i+chunk-1] != want {
			t.Fatalf("/flood chunk %d starts with %d, want %d", i/chunk, out[i], want)
		}
	}
}

// modeStreaming: the first piece of a streamed response reaches the client while the
// handler still runs (it cannot finish until the test has read that piece).
func modeStreaming(t *testing.T, m *modeGateway) {
	resp, err := m.do(context.Background(), "GET", "/held/s", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "first\n" {
		t.Fatalf("first piece %q, %v", first, err)
	}
	// Only now may the handler go on.
	if err := os.WriteFile(filepath.Join(m.state, "release-s"), []byte("go"), 0o644); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("the rest %q, %v", rest, err)
	}
}

// modeClientCancel: a client that gives up on a request (HTTP/1.1: closes the
// connection; HTTP/2: resets the stream) gets the handler cancelled; the gateway
// keeps serving.
func modeClientCancel(t *testing.T, m *modeGateway) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		resp, err := m.do(ctx, "GET", "/wait/c", nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	if _, ok := m.waitFile("started-c", 10*time.Second); !ok {
		cancel()
		t.Fatalf("the handler never started; output:\n%s", m.out)
	}
	cancel()
	if err := <-done; err == nil {
		t.Error("the cancelled request completed")
	}
	if _, ok := m.waitFile("cancelled-c", 5*time.Second); !ok {
		t.Fatalf("the handler was not cancelled after the client gave up; output:\n%s", m.out)
	}
	if st, body, _ := m.fetch("GET", "/hello", nil); st != 200 || string(body) != "hello" {
		t.Errorf("after the cancel: %d %q", st, body)
	}
}

// modeDeadline: a handler past its route's deadline (300 ms) gives 504, and the
// worker cancels it.
func modeDeadline(t *testing.T, m *modeGateway) {
	if st, body, _ := m.fetch("GET", "/deadline", nil); st != 504 {
		t.Errorf("/deadline: %d %q, want 504", st, body)
	}
	if _, ok := m.waitFile("cancelled-deadline", 5*time.Second); !ok {
		t.Errorf("the handler was not cancelled after its deadline; output:\n%s", m.out)
	}
}

// modeWorkerDies: the worker running a request is SIGKILLed; its client gets 502,
// and the replacement worker serves the next requests.
func modeWorkerDies(t *testing.T, mode protoMode) {
	m := startModeGateway(t, mode, 1)
	doomed := make(chan int, 1)
	go func() {
		resp, err := m.do(context.Background(), "GET", "/doomed", nil)
		if err != nil {
			t.Errorf("/doomed: %v", err)
			doomed <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		doomed <- resp.StatusCode
	}()
	pid, ok := m.waitFile("doomed.pid", 10*time.Second)
	if !ok {
		t.Fatalf("the /doomed handler never ran; output:\n%s", m.out)
	}
	n, _ := strconv.Atoi(pid)
	if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-doomed:
		if st != 502 {
			t.Errorf("the killed worker's client got %d, want 502", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the killed worker's client got no answer")
	}
	// The supervisor starts another worker; its requests are served.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, body, _ := m.fetch("GET", "/pid", nil)
		if st == 200 && string(body) != pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new worker serving 30s after the kill (last %d %q); output:\n%s", st, body, m.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// modeQueueFull: with the one worker's only credit held, requests that find no
// worker within the queue timeout, or the queue full, get 503 with Retry-After; once
// the credit is back (its client gave up), requests are served again.
func modeQueueFull(t *testing.T, mode protoMode) {
	m := startModeGateway(t, mode, 1, "--max-inflight", "1", "--queue-size", "1", "--queue-timeout", "300ms")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make(chan struct{})
	go func() {
		defer close(held)
		if resp, err := m.do(ctx, "GET", "/wait/hold", nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	if _, ok := m.waitFile("started-hold", 10*time.Second); !ok {
		t.Fatalf("the holding request never started; output:\n%s", m.out)
	}
	// Two at once: one waits in the queue (size 1) until the queue timeout, the other
	// finds it full; which is which does not matter, both are 503.
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body, h, err := m.tryFetch("GET", "/hello", nil)
			if err != nil {
				t.Errorf("request %d with the worker busy: %v", i, err)
			} else if st != 503 || h.Get("Retry-After") == "" {
				t.Errorf("request %d with the worker busy: %d %q Retry-After %q, want 503 with Retry-After",
					i, st, body, h.Get("Retry-After"))
			}
		}()
	}
	wg.Wait()
	cancel()
	<-held
	if _, ok := m.waitFile("cancelled-hold", 5*time.Second); !ok {
		t.Fatalf("the holding request was not cancelled; output:\n%s", m.out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, body, _ := m.fetch("GET", "/hello", nil)
		if st == 200 && string(body) == "hello" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served 10s after the credit came back: %d %q", st, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
