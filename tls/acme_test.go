package covettls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pebble is an ACME test CA (github.com/letsencrypt/pebble) run by a test.
type pebble struct {
	dir  string         // its directory URL
	api  *x509.CertPool // trusts its HTTPS API
	root *x509.CertPool // trusts what it issues
}

// pebbleBinary finds the pebble binary: $COVET_PEBBLE (set by the Makefile,
// and then the binary must be there), else ../bin/pebble, else PATH.
func pebbleBinary(t *testing.T) string {
	if p := os.Getenv("COVET_PEBBLE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("COVET_PEBBLE=%s: %v (make bin/pebble)", p, err)
		}
		return p
	}
	if p, err := filepath.Abs(filepath.Join("..", "bin", "pebble")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	t.Skip("no pebble binary: `make bin/pebble` installs it (go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3), or set COVET_PEBBLE")
	return ""
}

// freePorts returns n loopback TCP ports free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// validation has pebble check challenges for real: the tls-alpn-01 ones on
// tlsPort, the http-01 ones on httpPort, at the address the DNS server at
// resolver gives.
type validation struct {
	tlsPort, httpPort int
	resolver          string
}

// startPebble runs pebble on loopback with a config and an API certificate
// made here, and returns once its directory answers. With v nil, validation
// is off (PEBBLE_VA_ALWAYS_VALID: every challenge passes without being
// fetched). It is stopped when the test ends.
func startPebble(t *testing.T, v *validation) *pebble {
	t.Helper()
	bin := pebbleBinary(t)
	ca := newAuthority(t, "pebble-api")
	pair, _ := ca.issue(t, "pebble-api", "localhost", "localhost")
	for try := 1; ; try++ {
		ports := freePorts(t, 4)
		env := []string{"PEBBLE_VA_ALWAYS_VALID=1"}
		args := []string{}
		if v != nil {
			ports[2], ports[3] = v.httpPort, v.tlsPort
			env = []string{"PEBBLE_AUTHZREUSE=0"}
			args = []string{"-dnsserver", v.resolver}
		}
		conf := map[string]any{"pebble": map[string]any{
			"listenAddress":           fmt.Sprintf("127.0.0.1:%d", ports[0]),
			"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", ports[1]),
			"certificate":             pair.CertFile,
			"privateKey":              pair.KeyFile,
			"httpPort":                ports[2],
			"tlsPort":                 ports[3],
			"keyAlgorithm":            "ecdsa",
			"retryAfter":              map[string]int{"authz": 1, "order": 1},
		}}
		b, _ := json.Marshal(conf)
		cf := filepath.Join(t.TempDir(), "pebble.json")
		if err := os.WriteFile(cf, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out := &syncBuffer{}
		cmd := exec.Command(bin, append([]string{"-config", cf}, args...)...)
		cmd.Env = append(append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"), env...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() { cmd.Process.Kill(); <-exited }
		p := &pebble{dir: fmt.Sprintf("https://localhost:%d/dir", ports[0]), api: ca.pool}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
		up := false
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			select {
			case <-exited:
				deadline = time.Time{} // a port taken since freePorts: try others
			default:
			}
			if r, err := hc.Get(p.dir); err == nil {
				r.Body.Close()
				up = r.StatusCode == http.StatusOK
				break
			}
		}
		if !up {
			stop()
			if try < 3 {
				continue
			}
			t.Fatalf("pebble did not start:\n%s", out.String())
		}
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				t.Logf("pebble's output:\n%s", out.String())
			}
		})
		// The root that signs the certificates, from the management API.
		r, err := hc.Get(fmt.Sprintf("https://localhost:%d/roots/0", ports[1]))
		if err != nil {
			t.Fatal(err)
		}
		pem, _ := io.ReadAll(r.Body)
		r.Body.Close()
		p.root = x509.NewCertPool()
		if r.StatusCode != http.StatusOK || !p.root.AppendCertsFromPEM(pem) {
			t.Fatalf("pebble's root: %s %q", r.Status, pem)
		}
		return p
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// orderCounter counts the new orders (POST /order-plz, pebble's newOrder)
// sent through it.
type orderCounter struct {
	next   http.RoundTripper
	orders atomic.Int32
}

func (o *orderCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
		o.orders.Add(1)
	}
	return o.next.RoundTrip(r)
}

// serveReporting is serve, with each handshake's server-side error (nil
// for a good one) sent on the channel returned.
func serveReporting(t *testing.T, s *Server) (string, <-chan error) {
	t.Helper()
	return serveOn(t, listen(t), s, 0)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serveOn is serveReporting on ln, each handshake limited to timeout (0:
// none).
func serveOn(t *testing.T, ln net.Listener, s *Server, timeout time.Duration) (string, <-chan error) {
	errs := make(chan error, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, s.TLSConfig())
				defer tc.Close()
				ctx := context.Background()
				if timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, timeout)
					defer cancel()
				}
				err := tc.HandshakeContext(ctx)
				errs <- err
				if err != nil {
					return
				}
				buf := make([]byte, 64)
				for {
					n, err := tc.Read(buf)
					if err != nil {
						return
					}
					tc.Write(buf[:n])
				}
			}()
		}
	}()
	return ln.Addr().String(), errs
}

func handshakeErr(t *testing.T, errs <-chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(time.Minute):
		t.Fatal("no handshake on the server")
		return nil
	}
}

// TestACMEPebble: a handshake for acme.test gets a certificate pebble
// issued, one order; it chains to pebble's root; a second handshake, and a
// new Server on the same cache whose CA is unreachable, serve the same
// certificate without a second order; a name outside acme_domains is
// refused and orders nothing.
func TestACMEPebble(t *testing.T) {
	p := startPebble(t, nil)
	cache := filepath.Join(t.TempDir(), "acme")
	counter := &orderCounter{next: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.api}}}
	logs := &syncBuffer{}
	s, err := New(Config{ACME: ACMEConfig{
		Domains: []string{"acme.test", "www.acme.test"}, Email: "ops@acme.test",
		Directory: p.dir, CacheDir: cache,
		HTTPClient: &http.Client{Transport: counter, Timeout: 30 * time.Second},
		Log:        slog.New(slog.NewTextHandler(logs, nil)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	addr, errs := serveReporting(t, s)

	// First handshake: ordered now, verified against pebble's root only.
	c, err := dial(addr, &tls.Config{ServerName: "acme.test", RootCAs: p.root})
	if err != nil {
		t.Fatalf("first handshake: %v (server: %v)\nlog:\n%s", err, handshakeErr(t, errs), logs)
	}
	st := c.ConnectionState()
	c.Close()
	if err := handshakeErr(t, errs); err != nil {
		t.Fatal(err)
	}
	leaf := st.PeerCertificates[0]
	if len(st.VerifiedChains) == 0 || !leaf.Equal(st.VerifiedChains[0][0]) {
		t.Fatal("the chain was not verified")
	}
	if got := leaf.DNSNames; len(got) != 1 || got[0] != "acme.test" {
		t.Fatalf("certificate for %v, want [acme.test]", got)
	}
	if n := counter.orders.Load(); n != 1 {
		t.Fatalf("%d orders for the first handshake, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(cache, "acme.test")); err != nil {
		t.Fatalf("not in the cache: %v", err)
	}
	if !strings.Contains(logs.String(), "acme: certificate") || !strings.Contains(logs.String(), "name=acme.test") {
		t.Errorf("the issuance was not logged:\n%s", logs)
	}

	// Second handshake: the same certificate, no new order.
	c, err = dial(addr, &tls.Config{ServerName: "acme.test", RootCAs: p.root})
	if err != nil {
		t.Fatal(err)
	}
	again := c.ConnectionState().PeerCertificates[0]
	c.Close()
	handshakeErr(t, errs)
	if !again.Equal(leaf) || counter.orders.Load() != 1 {
		t.Fatalf("second handshake: same certificate %v, orders %d; want true, 1", again.Equal(leaf), counter.orders.Load())
	}

	// A name not in acme_domains: refused, nothing ordered.
	if c, err := dial(addr, &tls.Config{ServerName: "other.test", RootCAs: p.root}); err == nil {
		c.Close()
		t.Fatal("other.test was served")
	}
	if err := handshakeErr(t, errs); err == nil || !strings.Contains(err.Error(), "not in acme_domains") {
		t.Fatalf("server error for other.test: %v", err)
	}
	if n := counter.orders.Load(); n != 1 {
		t.Fatalf("%d orders after other.test, want 1", n)
	}

	// A restart on the same cache: the certificate comes from the files,
	// with the CA unreachable.
	s2, err := New(Config{ACME: ACMEConfig{
		Domains: []string{"acme.test"}, Directory: "https://127.0.0.1:1/dir", CacheDir: cache,
	}})
	if err != nil {
		t.Fatal(err)
	}
	addr2, errs2 := serveReporting(t, s2)
	c, err = dial(addr2, &tls.Config{ServerName: "acme.test", RootCAs: p.root})
	if err != nil {
		t.Fatalf("from the cache: %v (server: %v)", err, handshakeErr(t, errs2))
	}
	cached := c.ConnectionState().PeerCertificates[0]
	c.Close()
	if !cached.Equal(leaf) {
		t.Fatal("the restarted server did not serve the cached certificate")
	}
}

// TestACMEUnreachable: with the CA down, or a directory URL that answers
// 404, a handshake for an ACME name fails and is logged once, with why,
// however often it is retried within a minute; the static pairs are still
// served, to their names and as the default.
func TestACMEUnreachable(t *testing.T) {
	notFound := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	roots := x509.NewCertPool()
	roots.AddCert(notFound.Certificate())
	for _, tc := range []struct{ dir, why string }{
		{"https://127.0.0.1:1/dir", "connection refused"},
		{notFound.URL + "/dir", "404"},
	} {
		ca := newAuthority(t, "ca")
		static, _ := ca.issue(t, "static", "static", "static.test")
		logs := &syncBuffer{}
		s, err := New(Config{Pairs: []Pair{static}, ACME: ACMEConfig{
			Domains: []string{"down.test"}, Directory: tc.dir, RootCAs: roots,
			CacheDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(logs, nil)),
		}})
		if err != nil {
			t.Fatal(err)
		}
		addr, errs := serveReporting(t, s)
		for range 3 {
			if c, err := dial(addr, &tls.Config{ServerName: "down.test", InsecureSkipVerify: true}); err == nil {
				c.Close()
				t.Fatalf("%s: down.test was served", tc.dir)
			}
			if err := handshakeErr(t, errs); err == nil || !strings.Contains(err.Error(), "acme: no certificate for down.test") {
				t.Fatalf("%s: server error: %v", tc.dir, err)
			}
		}
		if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), "name=down.test") ||
			!strings.Contains(logs.String(), tc.why) {
			t.Fatalf("%s: want one error line naming down.test and %q, got %d:\n%s", tc.dir, tc.why, n, logs)
		}
		for _, sni := range []string{"static.test", "other.test"} {
			if got := servedName(t, addr, sni, ca.pool); got != "static" {
				t.Fatalf("%s: SNI %s got %q, want the static pair", tc.dir, sni, got)
			}
			handshakeErr(t, errs)
		}
	}
}

// TestACMEHangingCA: with a CA that accepts connections and never answers
// (and an HTTP client without timeouts, so the order waits until the test
// ends), handshakes for its name give up at their own deadline, not the
// order's; twenty of them at once make one connection to the CA and leave
// one lookup waiting, not twenty goroutines.
func TestACMEHangingCA(t *testing.T) {
	ca := listen(t)
	var mu sync.Mutex
	var held []net.Conn
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ca.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			accepted <- struct{}{}
		}
	}()
	t.Cleanup(func() { // the order then fails at once
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	s, err := New(Config{ACME: ACMEConfig{
		Domains: []string{"slow.test"}, Directory: "https://" + ca.Addr().String() + "/dir", CacheDir: t.TempDir(),
		HTTPClient: &http.Client{Transport: &http.Transport{}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	addr, errs := serveOn(t, listen(t), s, 300*time.Millisecond)
	base := runtime.NumGoroutine()
	const n = 20
	for range n {
		go func() {
			if c, err := dial(addr, &tls.Config{ServerName: "slow.test", InsecureSkipVerify: true}); err == nil {
				c.Close()
			}
		}()
	}
	for range n {
		err := handshakeErr(t, errs)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("handshake for slow.test: %v", err)
		}
	}
	<-accepted
	select {
	case <-accepted:
		t.Fatal("a second connection to the CA")
	default:
	}
	// What stays: the lookup and its HTTP request's goroutines, a handful.
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > base+10; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the handshakes gave up, %d before", runtime.NumGoroutine(), base)
		}
	}
}

// TestACMEChallengeConfig: a hello offering only acme-tls/1 (a CA's
// tls-alpn-01 validation) reaches the ACME challenge config, even where
// client certificates are required, and fails there without a pending
// challenge; the served config still offers h2 and http/1.1 only.
func TestACMEChallengeConfig(t *testing.T) {
	ca := newAuthority(t, "ca")
	s, err := New(Config{ClientCA: ca.pem, ACME: ACMEConfig{
		Domains: []string{"acme.test"}, Directory: "https://127.0.0.1:1/dir", CacheDir: t.TempDir(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "acme.test", SupportedProtos: []string{"acme-tls/1"}}
	cfg, err := s.TLSConfig().GetConfigForClient(hello)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != "acme-tls/1" || cfg.ClientAuth != tls.NoClientCert {
		t.Fatalf("challenge config: ALPN %v, client auth %v", cfg.NextProtos, cfg.ClientAuth)
	}
	if _, err := cfg.GetCertificate(hello); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("challenge without a pending order: %v", err)
	}
	hello.SupportedProtos = []string{"h2", "acme-tls/1"}
	cfg, _ = s.TLSConfig().GetConfigForClient(hello)
	if strings.Join(cfg.NextProtos, ",") != "h2,http/1.1" || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("served config: ALPN %v, client auth %v", cfg.NextProtos, cfg.ClientAuth)
	}
}

// TestACMEConfigErrors: bad ACME settings stop New with the setting named.
func TestACMEConfigErrors(t *testing.T) {
	ok := ACMEConfig{Domains: []string{"a.example.com"}, CacheDir: t.TempDir()}
	for _, tc := range []struct {
		mod  func(*ACMEConfig)
		want string
	}{
		{func(c *ACMEConfig) { c.Domains = []string{"a.example.com", " "} }, "acme_domains: entry 2 is empty"},
		{func(c *ACMEConfig) { c.Domains = []string{"*.example.com"} }, `acme_domains: "*.example.com" is a wildcard`},
		{func(c *ACMEConfig) { c.Domains = []string{"127.0.0.1"} }, "acme_domains: \"127.0.0.1\" is an IP address"},
		{func(c *ACMEConfig) { c.Domains = []string{"localhost"} }, "acme_domains: \"localhost\" has one label"},
		{func(c *ACMEConfig) { c.Domains = []string{"a_b.example.com"} }, "acme_domains: \"a_b.example.com\" has '_'"},
		{func(c *ACMEConfig) { c.Domains = []string{"-a.example.com"} }, "acme_domains: \"-a.example.com\" has a bad label"},
		{func(c *ACMEConfig) { c.Domains = nil; c.Email = "ops@example.com" }, "acme_domains: empty"},
		{func(c *ACMEConfig) { c.Email = "ops" }, `acme_email: "ops" is not an e-mail address`},
		{func(c *ACMEConfig) { c.Email = "Ops <ops@example.com>" }, "acme_email:"},
		{func(c *ACMEConfig) { c.Directory = "http://ca.example.com/dir" }, "acme_directory: \"http://ca.example.com/dir\" is not an https URL"},
		{func(c *ACMEConfig) { c.Directory = "ca.example.com" }, "acme_directory:"},
		{func(c *ACMEConfig) { c.CacheDir = "/dev/null/acme" }, "acme_cache:"},
	} {
		c := ok
		tc.mod(&c)
		_, err := New(Config{ACME: c})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", c, err, tc.want)
		}
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "acme_domains") {
		t.Errorf("no pair and no ACME: %v", err)
	}
	s, err := New(Config{ACME: ACMEConfig{Domains: []string{"A.example.com.", "a.example.com", "b.example.com"}, CacheDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.ACMEDomains(), ","); got != "a.example.com,b.example.com" {
		t.Errorf("domains %s", got)
	}
}

// dnsStub is a DNS server over TCP (what pebble's -dnsserver uses) that
// answers every A question with 127.0.0.1 and every other with no record;
// it returns its address.
func dnsStub(t *testing.T) string {
	ln := listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					var n [2]byte // each message has its length first
					if _, err := io.ReadFull(c, n[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(n[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					r := dnsAnswer(q)
					if r == nil {
						return
					}
					if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(r))), r...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dnsAnswer answers the query q (RFC 1035 section 4.1), nil if q is not one.
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	i := 12 // the question: a name (labels, then 0), its type and class
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	answers := uint16(0)
	if binary.BigEndian.Uint16(q[i+1:]) == 1 { // A
		answers = 1
	}
	r := append([]byte{}, q[0], q[1], 0x84|q[2]&1, 0) // the id; a response, authoritative, RD as asked
	r = binary.BigEndian.AppendUint16(r, 1)
	r = binary.BigEndian.AppendUint16(r, answers)
	r = append(r, 0, 0, 0, 0)
	r = append(r, q[12:i+5]...)
	if answers == 1 {
		// The question's name (a pointer to offset 12), A, IN, TTL 60 s, 127.0.0.1.
		r = append(r, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
	}
	return r
}

// TestACMEChallenges: pebble validates for real, reaching the names
// through a DNS stub that says 127.0.0.1. alpn.test is proved by
// tls-alpn-01 through the TLS listener that serves it, where client
// certificates are required; http.test, whose TLS listener is not the one
// pebble tries, fails tls-alpn-01 there and is proved by http-01 through
// HTTPHandler on a cleartext listener, the Host header with its port.
func TestACMEChallenges(t *testing.T) {
	alpnLn, httpLn := listen(t), listen(t)
	p := startPebble(t, &validation{
		tlsPort:  alpnLn.Addr().(*net.TCPAddr).Port,
		httpPort: httpLn.Addr().(*net.TCPAddr).Port,
		resolver: dnsStub(t),
	})
	clients := newAuthority(t, "clients")
	cp, _ := clients.issue(t, "client", "client")
	clientCert, err := tls.LoadX509KeyPair(cp.CertFile, cp.KeyFile)
	if err != nil {
		t.Fatal(err)
	}

	logs := &syncBuffer{}
	a, err := New(Config{ClientCA: clients.pem, ACME: ACMEConfig{
		Domains: []string{"alpn.test"}, Directory: p.dir, RootCAs: p.api, CacheDir: t.TempDir(),
		Log: slog.New(slog.NewTextHandler(logs, nil)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	addr, errs := serveOn(t, alpnLn, a, 0)
	c, err := dial(addr, &tls.Config{ServerName: "alpn.test", RootCAs: p.root, Certificates: []tls.Certificate{clientCert}})
	if err != nil {
		t.Fatalf("alpn.test: %v\nlog:\n%s", err, logs)
	}
	if got := c.ConnectionState().PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != "alpn.test" {
		t.Fatalf("alpn.test got a certificate for %v", got)
	}
	c.Close()

	b, err := New(Config{ACME: ACMEConfig{
		Domains: []string{"http.test"}, Directory: p.dir, RootCAs: p.api, CacheDir: t.TempDir(),
		Log: slog.New(slog.NewTextHandler(logs, nil)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Server{Handler: b.HTTPHandler(http.NotFoundHandler()), ReadHeaderTimeout: 10 * time.Second}
	go web.Serve(httpLn)
	t.Cleanup(func() { web.Close() })
	addr, _ = serveReporting(t, b)
	c, err = dial(addr, &tls.Config{ServerName: "http.test", RootCAs: p.root})
	if err != nil {
		t.Fatalf("http.test: %v\nlog:\n%s", err, logs)
	}
	if got := c.ConnectionState().PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != "http.test" {
		t.Fatalf("http.test got a certificate for %v", got)
	}
	c.Close()
	// On alpnLn: pebble's validations of alpn.test (several, from its
	// "perspectives"), the client's handshake, then pebble's tls-alpn-01
	// for http.test, refused: that server has no such challenge pending.
	for {
		err := handshakeErr(t, errs)
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), `no token cert for "http.test"`) {
			t.Fatalf("handshake on alpn.test's listener: %v", err)
		}
		break
	}
}
