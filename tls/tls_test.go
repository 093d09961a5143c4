package covettls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// authority is a test CA that issues certificates into PEM files.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string // its certificate's file
	pool *x509.CertPool
	dir  string
	n    int64
}

func newAuthority(t *testing.T, name string) *authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	a := &authority{cert: cert, key: key, dir: t.TempDir(), pool: x509.NewCertPool(), n: 1}
	a.pool.AddCert(cert)
	a.pem = filepath.Join(a.dir, name+"-ca.pem")
	writePEM(t, a.pem, "CERTIFICATE", der)
	return a
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue writes a certificate for cn with the DNS names (server and client
// use) and its key; it returns the pair and the certificate.
func (a *authority) issue(t *testing.T, file, cn string, dns ...string) (Pair, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a.n++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(a.n), Subject: pkix.Name{CommonName: cn, Organization: []string{"CovetPy tests"}},
		DNSNames: dns, EmailAddresses: []string{cn + "@example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := Pair{CertFile: filepath.Join(a.dir, file+".pem"), KeyFile: filepath.Join(a.dir, file+".key")}
	writePEM(t, p.CertFile, "CERTIFICATE", der)
	writePEM(t, p.KeyFile, "PRIVATE KEY", kder)
	cert, _ := x509.ParseCertificate(der)
	return p, cert
}

// serve accepts TLS connections with s on loopback, answering each with its
// first byte echoed until the client closes; it returns the address.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(ln, s.TLSConfig())
	t.Cleanup(func() { tl.Close() })
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dial makes a TLS connection and one echo through it.
func dial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func servedName(t *testing.T, addr, sni string, roots *x509.CertPool) string {
	t.Helper()
	c, err := dial(addr, &tls.Config{ServerName: sni, RootCAs: roots, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("SNI %q: %v", sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestSNI: an exact name wins, then a wildcard one label deep, then the
// first pair; names compare without case or a trailing dot.
func TestSNI(t *testing.T) {
	ca := newAuthority(t, "ca")
	def, _ := ca.issue(t, "default", "default", "default.test")
	exact, _ := ca.issue(t, "exact", "exact", "api.example.com")
	wild, _ := ca.issue(t, "wild", "wild", "*.example.com")
	s, err := New(Config{Pairs: []Pair{def, wild, exact}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	for sni, want := range map[string]string{
		"api.example.com":  "exact",
		"API.Example.com.": "exact",
		"www.example.com":  "wild",
		"a.b.example.com":  "default", // a wildcard covers one label
		"example.com":      "default",
		"other.test":       "default",
		"":                 "default",
	} {
		if got := servedName(t, addr, sni, ca.pool); got != want {
			t.Errorf("SNI %q got the %q certificate, want %q", sni, got, want)
		}
	}
}

// TestProtocols: ALPN offers h2 then http/1.1; TLS 1.3 is negotiated with
// the hybrid post-quantum key exchange by default; TLS 1.1 is refused, and
// with MinVersion 1.3 so is 1.2.
func TestProtocols(t *testing.T) {
	ca := newAuthority(t, "ca")
	p, _ := ca.issue(t, "srv", "srv", "srv.test")
	s, err := New(Config{Pairs: []Pair{p}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	c, err := dial(addr, &tls.Config{ServerName: "srv.test", RootCAs: ca.pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	st := c.ConnectionState()
	c.Close()
	if st.NegotiatedProtocol != "h2" || st.Version != tls.VersionTLS13 || st.CurveID != tls.X25519MLKEM768 {
		t.Fatalf("ALPN %q, version %x, key exchange %v; want h2, TLS 1.3, X25519MLKEM768", st.NegotiatedProtocol, st.Version, st.CurveID)
	}
	c, err = dial(addr, &tls.Config{ServerName: "srv.test", RootCAs: ca.pool, NextProtos: []string{"http/1.1"}, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	if st := c.ConnectionState(); st.NegotiatedProtocol != "http/1.1" || st.Version != tls.VersionTLS12 {
		t.Fatalf("ALPN %q version %x; want http/1.1 over TLS 1.2", st.NegotiatedProtocol, st.Version)
	}
	c.Close()
	if _, err := dial(addr, &tls.Config{ServerName: "srv.test", RootCAs: ca.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}

	s13, err := New(Config{Pairs: []Pair{p}, MinVersion: "1.3"})
	if err != nil {
		t.Fatal(err)
	}
	addr13 := serve(t, s13)
	if _, err := dial(addr13, &tls.Config{ServerName: "srv.test", RootCAs: ca.pool, MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("MinVersion 1.3 served a TLS 1.2 client")
	}
}

// TestClientAuth: the three modes, with no, an untrusted and a trusted
// client certificate, and the identity of a verified one.
func TestClientAuth(t *testing.T) {
	ca := newAuthority(t, "ca")
	srv, _ := ca.issue(t, "srv", "srv", "srv.test")
	clientCA := newAuthority(t, "clients")
	good, goodCert := clientCA.issue(t, "alice", "alice", "alice.clients.test")
	rogueCA := newAuthority(t, "rogue")
	rogue, _ := rogueCA.issue(t, "mallory", "mallory")
	load := func(p Pair) []tls.Certificate {
		c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	for _, tc := range []struct {
		mode                   string
		none, untrusted, valid bool // served
		identity               bool // a verified identity with the valid certificate
	}{
		{ClientAuthNone, true, true, true, false},
		{ClientAuthRequest, true, false, true, true},
		{ClientAuthRequire, false, false, true, true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg := Config{Pairs: []Pair{srv}, ClientAuth: tc.mode}
			if tc.mode != ClientAuthNone {
				cfg.ClientCA = clientCA.pem
			}
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			states := make(chan *tls.ConnectionState, 4)
			go func() {
				for {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					c := tls.Server(nc, s.TLSConfig())
					c.SetDeadline(time.Now().Add(5 * time.Second))
					if c.Handshake() != nil {
						c.Close()
						states <- nil
						continue
					}
					st := c.ConnectionState()
					c.Write([]byte("x"))
					c.Close()
					states <- &st
				}
			}()
			try := func(certs []tls.Certificate) (*tls.ConnectionState, bool) {
				cfg := &tls.Config{ServerName: "srv.test", RootCAs: ca.pool}
				if certs != nil {
					// Sent whatever CAs the server names (Go's client would
					// otherwise send no certificate the server cannot verify).
					cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
				}
				c, err := dial(ln.Addr().String(), cfg)
				if c != nil {
					c.Close()
				}
				st := <-states
				return st, err == nil && st != nil
			}
			if _, ok := try(nil); ok != tc.none {
				t.Errorf("no client certificate: served %v, want %v", ok, tc.none)
			}
			if _, ok := try(load(rogue)); ok != tc.untrusted {
				t.Errorf("untrusted client certificate: served %v, want %v", ok, tc.untrusted)
			}
			st, ok := try(load(good))
			if ok != tc.valid {
				t.Fatalf("trusted client certificate: served %v, want %v", ok, tc.valid)
			}
			id := Identity(st)
			if !tc.identity {
				if id != nil {
					t.Errorf("mode %s gave identity %+v, want none", tc.mode, id)
				}
				return
			}
			sum := sha256.Sum256(goodCert.Raw)
			if id == nil || !strings.Contains(id.Subject, "CN=alice") || id.Fingerprint != hex.EncodeToString(sum[:]) ||
				strings.Join(id.SANs, ",") != "alice.clients.test,alice@example.com" {
				t.Errorf("identity %+v", id)
			}
		})
	}
}

// TestReload: new files are served from the next handshake on; a connection
// opened before goes on working; a bad file is refused with its name and
// changes nothing; Watch picks a change up by itself.
func TestReload(t *testing.T) {
	ca := newAuthority(t, "ca")
	p, _ := ca.issue(t, "srv", "first", "srv.test")
	s, err := New(Config{Pairs: []Pair{p}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	old, err := dial(addr, &tls.Config{ServerName: "srv.test", RootCAs: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	// A bad certificate file: refused, named, the old pair still served.
	good, _ := os.ReadFile(p.CertFile)
	os.WriteFile(p.CertFile, []byte("not a certificate"), 0o600)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), p.CertFile) {
		t.Fatalf("Reload with a bad certificate: %v, want an error naming %s", err, p.CertFile)
	}
	if got := servedName(t, addr, "srv.test", ca.pool); got != "first" {
		t.Fatalf("after a failed reload the %q certificate is served, want first", got)
	}
	os.WriteFile(p.CertFile, good, 0o600)

	// A key that does not match: refused, naming both files.
	other, _ := ca.issue(t, "other", "other", "srv.test")
	okey, _ := os.ReadFile(other.KeyFile)
	gkey, _ := os.ReadFile(p.KeyFile)
	os.WriteFile(p.KeyFile, okey, 0o600)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), p.KeyFile) {
		t.Fatalf("Reload with a mismatched key: %v", err)
	}
	os.WriteFile(p.KeyFile, gkey, 0o600)

	// Watch: a new pair written in place is served, and reported once.
	reports := make(chan error, 8)
	stop := make(chan struct{})
	defer close(stop)
	go s.Watch(10*time.Millisecond, stop, func(err error) { reports <- err })
	next, _ := ca.issue(t, "next", "second", "srv.test")
	c2, _ := os.ReadFile(next.CertFile)
	k2, _ := os.ReadFile(next.KeyFile)
	os.WriteFile(p.KeyFile, k2, 0o600)
	os.WriteFile(p.CertFile, c2, 0o600)
	deadline := time.After(10 * time.Second)
	for servedName(t, addr, "srv.test", ca.pool) != "second" {
		select {
		case <-deadline:
			t.Fatal("Watch did not load the new pair")
		case err := <-reports:
			if err != nil {
				t.Logf("a reload between the two writes: %v", err) // key written, certificate not yet
			}
		}
	}
	// The connection from before the reloads still works.
	old.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := old.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Read(make([]byte, 1)); err != nil {
		t.Fatalf("the connection opened before the reload: %v", err)
	}
}

// TestTicketRotation: a session resumes across Keys-1 rotations, and not
// after Keys.
func TestTicketRotation(t *testing.T) {
	ca := newAuthority(t, "ca")
	p, _ := ca.issue(t, "srv", "srv", "srv.test")
	s, err := New(Config{Pairs: []Pair{p}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	// resumed connects with the client's session cache and says whether the
	// handshake resumed a session.
	resumed := func(cache tls.ClientSessionCache) bool {
		t.Helper()
		c, err := dial(addr, &tls.Config{ServerName: "srv.test", RootCAs: ca.pool, ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().DidResume
	}
	rotate := func(n int) {
		t.Helper()
		for range n {
			if err := s.RotateTickets(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cache := tls.NewLRUClientSessionCache(4)
	if resumed(cache) {
		t.Fatal("the first connection resumed")
	}
	if !resumed(cache) {
		t.Fatal("the second connection did not resume")
	}
	cache = tls.NewLRUClientSessionCache(4)
	resumed(cache) // a ticket under the newest key
	rotate(Keys - 1)
	if !resumed(cache) {
		t.Errorf("no resumption after %d rotations", Keys-1)
	}
	cache = tls.NewLRUClientSessionCache(4)
	resumed(cache)
	rotate(Keys)
	if resumed(cache) {
		t.Errorf("resumed after %d rotations: the oldest key should be gone", Keys)
	}
}

// TestConfigErrors: each bad setting stops New with a message naming it or
// its file.
func TestConfigErrors(t *testing.T) {
	ca := newAuthority(t, "ca")
	p, _ := ca.issue(t, "srv", "srv", "srv.test")
	missing := Pair{CertFile: filepath.Join(t.TempDir(), "none.pem"), KeyFile: p.KeyFile}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "tls_cert"},
		{Config{Pairs: []Pair{missing}}, missing.CertFile},
		{Config{Pairs: []Pair{{CertFile: p.CertFile, KeyFile: ca.pem}}}, ca.pem},
		{Config{Pairs: []Pair{p}, MinVersion: "1.1"}, "tls_min_version"},
		{Config{Pairs: []Pair{p}, ClientAuth: "maybe"}, "tls_client_auth"},
		{Config{Pairs: []Pair{p}, ClientAuth: ClientAuthRequire}, "tls_client_ca"},
		{Config{Pairs: []Pair{p}, ClientCA: p.KeyFile}, p.KeyFile},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	var pe *os.PathError
	if _, err := New(Config{Pairs: []Pair{missing}}); !errors.As(err, &pe) {
		t.Errorf("a missing file's error %v does not unwrap to *os.PathError", err)
	}
}
