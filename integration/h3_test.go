package integration

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/covetpy/covetpy/integration/harness"
)

// testCert is a self-signed certificate for localhost and 127.0.0.1 written
// as PEM files, with a pool that trusts it and the base64 SHA-256 of its
// public key (what Chromium's --ignore-certificate-errors-spki-list takes).
type testCert struct {
	certFile, keyFile string
	pool              *x509.CertPool
	spki              string
}

func writeTestCert(t *testing.T) testCert {
	t.Helper()
	c := selfSignedServer(t)
	certFile, keyFile := c.write(t, t.TempDir(), "server")
	sum := sha256.Sum256(c.cert.RawSubjectPublicKeyInfo)
	return testCert{certFile: certFile, keyFile: keyFile, pool: pool(c), spki: base64.StdEncoding.EncodeToString(sum[:])}
}

// startH3Gateway runs the gateway over TLS with --http3 and the access log,
// serving integration/apps/h3app.py with one worker, and waits until it
// answers over HTTPS.
func startH3Gateway(t *testing.T) (*gateway, testCert) {
	t.Helper()
	cert := writeTestCert(t)
	g := launchGateway(t, "h3app", sdkWorker(t, "h3app"), 1,
		"--tls-cert", cert.certFile, "--tls-key", cert.keyFile, "--http3", "--access-log")
	t.Cleanup(g.stop)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.pool, ServerName: "localhost"}}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get("https://" + g.addr + "/hello")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(g.out.String(), "worker attached") {
				return g, cert
			}
		}
		select {
		case err := <-g.exited:
			g.exited <- nil
			t.Fatalf("gateway exited (%v) before serving; output:\n%s", err, g.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not serving HTTPS after 30s (last error %v); output:\n%s", err, g.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// accessProtocols is the protocol of each access log record for path, in
// order.
func accessProtocols(out, path string) []string {
	var ps []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg=request `) || !strings.Contains(line, " path="+path+" ") {
			continue
		}
		_, p, ok := strings.Cut(line, " protocol=")
		if !ok {
			continue
		}
		p, _, _ = strings.Cut(p, " ")
		ps = append(ps, strings.Trim(p, `"`))
	}
	return ps
}

// TestHTTP3GatewayQuicGoAndAioquic: covet-gateway with --http3 serves
// HTTP/3 on the UDP port numbered as its TCP one, advertised in Alt-Svc;
// quic-go's and aioquic's clients each GET and POST through it to a Python
// worker, which sees http_version "3".
func TestHTTP3GatewayQuicGoAndAioquic(t *testing.T) {
	g, cert := startH3Gateway(t)
	_, port, _ := net.SplitHostPort(g.addr)
	if !strings.Contains(g.out.String(), "http3=127.0.0.1:"+port) {
		t.Errorf("the listening line does not give the UDP address; output:\n%s", g.out)
	}

	// HTTP/1.1 and HTTP/2 advertise HTTP/3.
	for _, proto := range []string{"http/1.1", "h2"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.pool, ServerName: "localhost"}, ForceAttemptHTTP2: proto == "h2"}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + g.addr + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
		if want := `h3=":` + port + `"; ma=86400`; resp.Header.Get("Alt-Svc") != want {
			t.Errorf("%s: Alt-Svc %q, want %q", resp.Proto, resp.Header.Get("Alt-Svc"), want)
		}
	}

	// quic-go.
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.pool, ServerName: "localhost"}}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://127.0.0.1:" + port + "/version")
	if err != nil {
		t.Fatalf("quic-go GET: %v; output:\n%s", err, g.out)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/3.0" || resp.StatusCode != 200 || string(body) != "3" {
		t.Errorf("quic-go GET /version: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	payload := strings.Repeat("quic ", 20000)
	resp, err = c.Post("https://127.0.0.1:"+port+"/echo", "text/plain", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != payload || resp.Header.Get("X-Version") != "3" {
		t.Errorf("quic-go POST /echo: %d, %d bytes, x-version %q", resp.StatusCode, len(body), resp.Header.Get("X-Version"))
	}

	// aioquic.
	py, err := harness.Python()
	if err != nil {
		t.Skip(err)
	}
	root, _ := harness.RepoRoot()
	cmd := exec.Command(py, filepath.Join(root, "integration", "clients", "h3_aioquic.py"), "127.0.0.1", port, cert.certFile,
		"GET", "/version", "-", "POST", "/echo", "from aioquic")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		if strings.Contains(string(stderr), "No module named 'aioquic'") {
			t.Skipf("aioquic is not installed in %s: run `make venv` (PYDEPS lists it)", py)
		}
		t.Fatalf("aioquic client: %v\n%s\n%s; gateway output:\n%s", err, out, stderr, g.out)
	}
	type answer struct {
		Status  int
		Headers map[string]string
		Body    string
	}
	var got []answer
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var a answer
		if err := dec.Decode(&a); err != nil {
			t.Fatalf("aioquic output %q: %v", out, err)
		}
		got = append(got, a)
	}
	if len(got) != 2 || got[0].Status != 200 || got[0].Body != "3" ||
		got[1].Status != 200 || got[1].Body != "from aioquic" || got[1].Headers["x-version"] != "3" {
		t.Errorf("aioquic: %+v", got)
	}
	if ps := accessProtocols(g.out.String(), "/echo"); len(ps) != 2 || ps[0] != "HTTP/3" || ps[1] != "HTTP/3" {
		t.Errorf("access log protocols of /echo %q, want two HTTP/3; output:\n%s", ps, g.out)
	}
}

// chromium is the path of a Chromium binary, or "" when there is none.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestHTTP3Chromium loads a page with an image and a script from the worker
// in headless Chromium, forced onto QUIC, then without: the script's mark
// in the DOM shows both subresources loaded, and the access log shows
// every request came over HTTP/3, then HTTP/2.
func TestHTTP3Chromium(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no chromium on PATH (apt-get install -y chromium; .ci/run installs it)")
	}
	g, cert := startH3Gateway(t)
	_, port, _ := net.SplitHostPort(g.addr)
	for _, tt := range []struct {
		proto string
		flags []string
	}{
		{"HTTP/3", []string{"--origin-to-force-quic-on=localhost:" + port}},
		{"HTTP/2", []string{"--disable-quic"}},
	} {
		t.Run(strings.ReplaceAll(tt.proto, "/", ""), func(t *testing.T) {
			args := append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
				"--user-data-dir=" + t.TempDir(),
				// Not ::1 first: the gateway listens on 127.0.0.1 only.
				"--host-resolver-rules=MAP localhost 127.0.0.1",
				"--ignore-certificate-errors-spki-list=" + cert.spki,
				"--virtual-time-budget=5000"}, tt.flags...)
			args = append(args, "--dump-dom", "https://localhost:"+port+"/page")
			before := len(g.out.String())
			cmd := exec.Command(bin, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			done := make(chan struct{})
			var dom []byte
			var err error
			go func() { dom, err = cmd.Output(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("chromium did not finish in 60s; stderr:\n%s", stderr.String())
			}
			if err != nil {
				t.Fatalf("chromium: %v; stderr:\n%s", err, stderr.String())
			}
			want := map[string]string{"HTTP/3": "3", "HTTP/2": "2"}[tt.proto]
			if !strings.Contains(string(dom), "served over "+want) || !strings.Contains(string(dom), "script loaded; image loaded") {
				t.Fatalf("DOM:\n%s\nchromium stderr:\n%s", dom, stderr.String())
			}
			// A record is written just after its response: allow it a moment.
			paths := []string{"/page", "/app.js", "/pixel.png"}
			var log string
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				log = g.out.String()[before:]
				all := true
				for _, path := range paths {
					all = all && len(accessProtocols(log, path)) > 0
				}
				if all || time.Now().After(deadline) {
					break
				}
			}
			for _, path := range paths {
				ps := accessProtocols(log, path)
				if len(ps) == 0 {
					t.Errorf("no access log record of %s; output:\n%s", path, log)
				}
				for _, p := range ps {
					if p != tt.proto {
						t.Errorf("%s came over %s, want %s", path, p, tt.proto)
					}
				}
			}
		})
	}
}
