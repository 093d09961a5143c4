package integration

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tlsModes are the protocol modes over TLS.
func tlsModes() []protoMode {
	var out []protoMode
	for _, m := range protoModes {
		if m.tls {
			out = append(out, m)
		}
	}
	return out
}

// TestTLSClientCertRequired: with tls_client_ca and tls_client_auth require, a client
// without a certificate, or with one its CA did not sign, is refused; one with a
// certificate the CA signed is served, and the worker sees its subject, SANs and
// fingerprint (req.client_cert).
func TestTLSClientCertRequired(t *testing.T) {
	ca := makeCertPair(t, certSpec{cn: "Test Client CA", isCA: true})
	alice := makeCertPair(t, certSpec{cn: "alice", usage: x509.ExtKeyUsageClientAuth, issuer: ca,
		sans: []string{"alice.example"}, uris: []string{"spiffe://example.org/alice"}})
	mallory := makeCertPair(t, certSpec{cn: "mallory", usage: x509.ExtKeyUsageClientAuth}) // self-signed
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.certPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range tlsModes() {
		t.Run(mode.name, func(t *testing.T) {
			server := selfSignedServer(t)
			m := startModeGatewayWith(t, mode, server, alice, 1, "--tls-client-ca", caFile, "--tls-client-auth", "require")
			st, body, _ := m.fetch("GET", "/whoami", nil)
			var got struct {
				ClientCert *struct {
					Subject     string   `json:"subject"`
					SANs        []string `json:"sans"`
					Fingerprint string   `json:"fingerprint"`
				} `json:"client_cert"`
			}
			if err := json.Unmarshal(body, &got); st != 200 || err != nil {
				t.Fatalf("/whoami with alice's certificate: %d %q (%v)", st, body, err)
			}
			want := []string{"alice", "alice.example", "spiffe://example.org/alice"}
			if c := got.ClientCert; c == nil || c.Subject != "CN=alice" || !reflect.DeepEqual(c.SANs, want) ||
				c.Fingerprint != alice.fingerprint() {
				t.Errorf("the worker saw client_cert %+v, want subject CN=alice, SANs %q, fingerprint %s",
					c, want, alice.fingerprint())
			}
			for _, who := range []struct {
				name string
				cert *certPair
			}{{"no certificate", nil}, {"a certificate of another CA", mallory}} {
				c := mode.client(pool(server), who.cert)
				resp, err := c.Get(m.base + "/hello")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					t.Errorf("a client with %s was served: %s", who.name, resp.Status)
				}
				c.CloseIdleConnections()
			}
			// The refused clients cost the gateway nothing: alice is still served.
			if st, body, _ := m.fetch("GET", "/hello", nil); st != 200 || string(body) != "hello" {
				t.Errorf("after the refused clients: %d %q", st, body)
			}
		})
	}
}

// peerSerial is the serial number of the certificate the gateway presented for
// resp, and whether resp came on a connection used before (trace).
func peerSerial(t *testing.T, resp *http.Response) string {
	t.Helper()
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatalf("%s: no TLS peer certificate", resp.Request.URL)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.String()
}

// TestTLSCertReload: with a connection open, the certificate and key files are
// replaced with a new pair; new handshakes get the new certificate within a few
// seconds while the old connection keeps serving. A broken certificate file then
// keeps the last good certificate, and the log names the file. SIGHUP reloads too.
func TestTLSCertReload(t *testing.T) {
	for _, mode := range tlsModes() {
		t.Run(mode.name, func(t *testing.T) { tlsCertReload(t, mode) })
	}
}

func tlsCertReload(t *testing.T, mode protoMode) {
	certs := map[string]*certPair{"A": selfSignedServer(t), "B": selfSignedServer(t), "C": selfSignedServer(t)}
	name := map[string]string{} // serial -> A, B or C
	var all []*certPair
	for n, c := range certs {
		name[c.cert.SerialNumber.String()] = n
		all = append(all, c)
	}
	roots := pool(all...)
	m := startModeGatewayWith(t, mode, certs["A"], nil, 1)
	dir := filepath.Dir(m.certFile)

	// kept is the client whose connection stays open throughout: its requests must
	// all come on the first connection, with certificate A.
	kept := mode.client(roots, nil)
	defer kept.CloseIdleConnections()
	keptGet := func(when string) {
		t.Helper()
		reused := false
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", m.base+"/hello", nil)
		resp, err := kept.Do(req)
		if err != nil {
			t.Fatalf("%s: the kept connection: %v; output:\n%s", when, err, m.out)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := name[peerSerial(t, resp)]; resp.StatusCode != 200 || got != "A" {
			t.Errorf("%s: the kept connection got %s with certificate %s, want 200 with A", when, resp.Status, got)
		}
		if when != "first" && !reused {
			t.Errorf("%s: the kept connection's request went on a new connection", when)
		}
	}
	// fresh is the certificate a new handshake gets.
	fresh := func() string {
		c := mode.client(roots, nil)
		defer c.CloseIdleConnections()
		resp, err := c.Get(m.base + "/hello")
		if err != nil {
			t.Fatalf("a new connection: %v; output:\n%s", err, m.out)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return name[peerSerial(t, resp)]
	}
	waitFresh := func(want, after string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for got := fresh(); got != want; got = fresh() {
			if time.Now().After(deadline) {
				t.Fatalf("new connections still get certificate %s 10s after %s, want %s; output:\n%s", got, after, want, m.out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	keptGet("first")
	if got := fresh(); got != "A" {
		t.Fatalf("a new connection got certificate %s, want A", got)
	}

	// The files replaced: the gateway looks every 2s.
	certs["B"].write(t, dir, "server")
	waitFresh("B", "the files were replaced")
	keptGet("after the reload")
	if !regexp.MustCompile(`msg="certificates reloaded".* trigger="file changed"`).MatchString(m.out.String()) {
		t.Errorf("no log line of the reload; output:\n%s", m.out)
	}

	// A broken certificate file: the error names it, B is still served.
	writeFileAtomic(t, m.certFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"))
	deadline := time.Now().Add(10 * time.Second)
	for !brokenReloadLogged(m.out.String(), m.certFile) {
		if time.Now().After(deadline) {
			t.Fatalf("no error naming %s 10s after it was broken; output:\n%s", m.certFile, m.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := fresh(); got != "B" {
		t.Errorf("with the certificate file broken, new connections get %s, want B (the last good one)", got)
	}
	keptGet("with the file broken")

	// SIGHUP: the pair C is loaded, and the log says SIGHUP did it.
	certs["C"].write(t, dir, "server")
	if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFresh("C", "SIGHUP")
	deadline = time.Now().Add(10 * time.Second)
	for !regexp.MustCompile(`msg="certificates reloaded".* trigger=SIGHUP`).MatchString(m.out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload by SIGHUP logged; output:\n%s", m.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	keptGet("after SIGHUP")
}

// brokenReloadLogged reports whether out has a failed reload naming file.
func brokenReloadLogged(out, file string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `msg="certificates not reloaded; serving the previous ones"`) && strings.Contains(line, file) {
			return true
		}
	}
	return false
}

// TestTLSBadFilesStopStartup: a missing certificate, a key that is not the
// certificate's, or a file that is not PEM stops the gateway at startup with a
// non-zero exit and an error naming the file.
func TestTLSBadFilesStopStartup(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSignedServer(t).write(t, dir, "good")
	_, otherKey := selfSignedServer(t).write(t, dir, "other")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("this is not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")
	for _, tc := range []struct {
		name, cert, key, named string
	}{
		{"missing certificate", missing, keyFile, missing},
		{"missing key", certFile, filepath.Join(dir, "missing.key"), filepath.Join(dir, "missing.key")},
		{"key of another certificate", certFile, otherKey, certFile},
		{"certificate not PEM", garbage, keyFile, garbage},
		{"key not PEM", certFile, garbage, garbage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := launchGateway(t, "gwapp", sdkWorker(t, "gwapp"), 1, "--tls-cert", tc.cert, "--tls-key", tc.key)
			t.Cleanup(func() { g.cmd.Process.Kill() })
			err := g.waitExit(20 * time.Second)
			if err == nil {
				t.Errorf("the gateway exited 0; output:\n%s", g.out)
			}
			if !strings.Contains(g.out.String(), tc.named) {
				t.Errorf("the error does not name %s; output:\n%s", tc.named, g.out)
			}
			if strings.Contains(g.out.String(), "listening") {
				t.Errorf("the gateway listened before failing; output:\n%s", g.out)
			}
		})
	}
}
