package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/integration/harness"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 conformance: h2spec (github.com/summerwind/h2spec, `make bin/h2spec`) run
// against the real gateway serving integration/apps/confapp.py with a Python worker,
// over TLS (ALPN h2) and over h2c with prior knowledge, and against a bare Go net/http
// server as the baseline. docs/conformance.md gives the figures and explains each case
// in h2specKnown.

// h2specKnown are the h2spec cases the gateway fails, each for a reason that lies
// in Go's HTTP/2 server (net/http's), which the gateway runs; docs/conformance.md
// explains each. Any other failure fails the test.
var h2specKnown = map[string]string{
	"http2/6.5.3/1":   "net/http closes the connection (PROTOCOL_ERROR) on a SETTINGS frame naming one setting twice",
	"http2/8.1.2.2/1": "net/http answers 400 to a connection-specific field instead of resetting the stream",
	"http2/8.1.2.2/2": `net/http answers 400 to "te" other than "trailers" instead of resetting the stream`,
}

// h2specKnownH2C are the further cases failed over h2c only.
var h2specKnownH2C = map[string]string{
	"http2/3.5/2": "over h2c the port also speaks HTTP/1.1, which answers an invalid preface with 400",
}

// h2specCases is how many cases h2spec v2.2.1 runs without --strict.
const h2specCases = 145

// h2specBinary is $COVET_H2SPEC (`make test` sets it: the test fails without it),
// else bin/h2spec if built, else the test skips.
func h2specBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COVET_H2SPEC"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("COVET_H2SPEC=%s: %v (make bin/h2spec)", p, err)
		}
		return p
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "bin", "h2spec")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no h2spec at %s and COVET_H2SPEC unset: run `make bin/h2spec`", p)
	}
	return p
}

// h2specResult is one case of an h2spec run.
type h2specResult struct {
	id, desc, err string
	failed        bool
}

// runH2spec runs h2spec against 127.0.0.1:port (tls: over TLS) and returns every
// case's result, read from its JUnit report.
func runH2spec(t *testing.T, bin, addr string, tls bool) []h2specResult {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	args := []string{"-h", "127.0.0.1", "-p", port, "-o", "2", "-j", report}
	if tls {
		args = append(args, "-t", "-k")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) { // h2spec exits 1 when a case fails
		t.Fatalf("h2spec %v: %v\n%s", args, err, out)
	}
	raw, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("h2spec %v wrote no report (%v); output:\n%s", args, rerr, out)
	}
	var doc struct {
		Suites []struct {
			Package string `xml:"package,attr"`
			Cases   []struct {
				Desc    string  `xml:"classname,attr"`
				Error   *string `xml:"error"`
				Failure *string `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	var rs []h2specResult
	for _, s := range doc.Suites {
		for i, c := range s.Cases {
			r := h2specResult{id: fmt.Sprintf("%s/%d", s.Package, i+1), desc: c.Desc}
			for _, e := range []*string{c.Error, c.Failure} {
				if e != nil {
					r.failed, r.err = true, strings.TrimSpace(*e)
				}
			}
			rs = append(rs, r)
		}
	}
	if len(rs) != h2specCases {
		t.Fatalf("h2spec ran %d cases, want %d; output:\n%s", len(rs), h2specCases, out)
	}
	return rs
}

func failedIDs(rs []h2specResult) []string {
	var ids []string
	for _, r := range rs {
		if r.failed {
			ids = append(ids, r.id)
		}
	}
	return ids
}

// checkH2spec fails the test on each failed case not in known, printing what
// h2spec expected and got, and reports known cases that now pass.
func checkH2spec(t *testing.T, what string, rs []h2specResult, known ...map[string]string) {
	t.Helper()
	isKnown := func(id string) bool {
		for _, k := range known {
			if _, ok := k[id]; ok {
				return true
			}
		}
		return false
	}
	failed := failedIDs(rs)
	for _, r := range rs {
		switch {
		case r.failed && !isKnown(r.id):
			t.Errorf("%s: h2spec %s failed: %s\n  expected, then actual:\n    %s", what, r.id, r.desc, strings.ReplaceAll(r.err, "\n", "\n    "))
		case !r.failed && isKnown(r.id):
			t.Logf("%s: h2spec %s (%s) now passes: update h2specKnown and docs/conformance.md", what, r.id, r.desc)
		}
	}
	t.Logf("%s: h2spec %d cases, %d passed, %d failed %v", what, len(rs), len(rs)-len(failed), len(failed), failed)
}

func TestH2specConformance(t *testing.T) {
	bin := h2specBinary(t)
	tc := writeTestCert(t) // h3_test.go
	cert, err := tls.LoadX509KeyPair(tc.certFile, tc.keyFile)
	if err != nil {
		t.Fatal(err)
	}

	// The baseline: a bare net/http server (HTTP/2 on by default over TLS; h2c
	// through Protocols), reading the body and answering 200.
	baseline := func(h2c bool) []h2specResult {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, "conformance")
			}),
			ErrorLog: log.New(io.Discard, "", 0), // its complaints about h2spec's frames
		}
		if h2c {
			var p http.Protocols
			p.SetHTTP1(true)
			p.SetUnencryptedHTTP2(true)
			hs.Protocols = &p
			go hs.Serve(l)
		} else {
			hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
			go hs.ServeTLS(l, "", "")
		}
		defer hs.Close()
		return runH2spec(t, bin, l.Addr().String(), !h2c)
	}

	t.Run("TLS", func(t *testing.T) {
		g := launchGateway(t, "confapp", sdkWorker(t, "confapp"), 1, "--tls-cert", tc.certFile, "--tls-key", tc.keyFile)
		t.Cleanup(g.stop)
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: tc.pool, ServerName: "localhost"}, ForceAttemptHTTP2: true}}
		defer hc.CloseIdleConnections()
		g.waitServingBy(1, hc, "https://"+g.addr+"/hello")
		ours := runH2spec(t, bin, g.addr, true)
		checkH2spec(t, "gateway over TLS", ours, h2specKnown)
		goRs := baseline(false)
		t.Logf("Go net/http over TLS: h2spec %d failed %v", len(failedIDs(goRs)), failedIDs(goRs))
		if n, m := len(failedIDs(ours)), len(failedIDs(goRs)); n > m {
			t.Errorf("the gateway fails %d h2spec cases over TLS, Go's net/http %d", n, m)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		g := startGateway(t, "confapp", 1, "--h2c")
		ours := runH2spec(t, bin, g.addr, false)
		checkH2spec(t, "gateway over h2c", ours, h2specKnown, h2specKnownH2C)
		goRs := baseline(true)
		t.Logf("Go net/http over h2c: h2spec %d failed %v", len(failedIDs(goRs)), failedIDs(goRs))
		if n, m := len(failedIDs(ours)), len(failedIDs(goRs)); n > m {
			t.Errorf("the gateway fails %d h2spec cases over h2c, Go's net/http %d", n, m)
		}
	})
}

// Rapid Reset against the real gateway and a Python worker: 20,000 streams,
// each reset as soon as it is opened, begin at most a few hundred worker
// requests, the connection is closed (docs/conformance.md), and the gateway
// serves on.
func TestH2RapidResetReachesFewWorkerRequests(t *testing.T) {
	const n = 20000
	g := startGateway(t, "confapp", 1, "--h2c")
	nc, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	bw := bufio.NewWriterSize(nc, 64<<10)
	fr := http2.NewFramer(bw, nc)
	io.WriteString(bw, http2.ClientPreface)
	fr.WriteSettings()
	bw.Flush()
	done := make(chan error, 1)
	go func() { // reads until the gateway hangs up; its SETTINGS are ACKed below
		for {
			if _, err := fr.ReadFrame(); err != nil {
				done <- err
				return
			}
		}
	}()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", g.addr}, {":path", "/slow"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	// The same block each time: after the first, its fields are indexed.
	first := bytes.Clone(hb.Bytes())
	hb.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", g.addr}, {":path", "/slow"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	again := bytes.Clone(hb.Bytes())
	fr.WriteSettingsAck()
	sent := 0
	for i := range n {
		blk := again
		if i == 0 {
			blk = first
		}
		id := uint32(2*i + 1)
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
		sent++
	}
	bw.Flush()
	var closed bool
	select {
	case <-done:
		closed = true
	case <-time.After(20 * time.Second):
	}
	code, body, _ := g.get("/slow/count")
	t.Logf("rapid reset: %d streams opened and reset, connection closed by the gateway %v, the worker began %s requests", sent, closed, body)
	if code != 200 {
		t.Fatalf("GET /slow/count: %d %q", code, body)
	}
	if calls, _ := strconv.Atoi(body); calls > 400 {
		t.Errorf("the worker began %d requests for %d reset streams, want at most 400", calls, sent)
	}
	if !closed {
		t.Error("the gateway kept the connection of a Rapid Reset client")
	}
	// Which ended it: net/http's GOAWAY ENHANCE_YOUR_CALM (handlers waiting
	// to start) or the gateway's rule (a WARN line); either will do.
	t.Logf("the gateway's Rapid Reset rule fired: %v", strings.Contains(g.out.String(), "http2 client reset too many requests"))
}
