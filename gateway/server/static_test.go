package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// staticTree is a directory to serve, with a file outside it.
func staticTree(t *testing.T) (dir, outside string, big []byte) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "public")
	outside = filepath.Join(base, "secret.txt")
	big = make([]byte, 300<<10+7) // over smallFile: sendfile on a plain socket
	for i := range big {
		big[i] = byte(i * 31)
	}
	files := map[string][]byte{
		"small.txt":       []byte("hello static\n"),
		"big.bin":         big,
		"app.js":          []byte("console.log('plain')\n"),
		"app.js.br":       []byte("BROTLI"),
		"app.js.gz":       []byte("GZIP"),
		"docs/index.html": []byte("<h1>docs</h1>"),
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(outside, []byte("top secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "escape.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("small.txt", filepath.Join(dir, "alias.txt")); err != nil {
		t.Fatal(err)
	}
	return dir, outside, big
}

// staticBackend routes /assets/{path...} to dir (a worker's static route)
// and /download/{name} to a handler that answers with RESP_FILE for the
// file of that name under dir (or outside, for "secret").
func staticBackend(t *testing.T, dir, outside string) *fakeBackend {
	b := newFakeBackend()
	rt := &dispatch.Route{App: "app", Pattern: "/assets/{path...}", Kind: dispatch.KindStatic, Dir: dir, Index: true}
	if err := b.r.Add(router.Route[*dispatch.Route]{Method: "GET", Pattern: rt.Pattern, Value: rt}); err != nil {
		t.Fatal(err)
	}
	b.handle(t, "GET", "/download/{name}", 0, func(_ context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		name := req.Head.Params[0].Value
		p := filepath.Join(dir, name)
		status := 200
		switch name {
		case "secret":
			p = outside
		case "notfound-page":
			p, status = filepath.Join(dir, "small.txt"), 404
		}
		return w.(dispatch.FileWriter).WriteFile(status, []workerproto.Header{
			{Name: []byte("content-disposition"), Value: []byte(`attachment; filename="` + name + `"`)},
			{Name: []byte("server"), Value: []byte("the-worker")},
		}, p)
	})
	return b
}

type staticCase struct {
	name    string
	method  string
	path    string
	hdr     []string
	status  int
	body    string // "" and bodyOf nil: no body
	bodyOf  []byte
	headers map[string]string // "" value: must be absent
}

func staticCases(big []byte) []staticCase {
	return []staticCase{
		{name: "small", method: "GET", path: "/assets/small.txt", status: 200, body: "hello static\n",
			headers: map[string]string{"Content-Type": "text/plain; charset=utf-8", "Accept-Ranges": "bytes", "Content-Length": "13", "Vary": "", "Content-Encoding": ""}},
		{name: "big", method: "GET", path: "/assets/big.bin", status: 200, bodyOf: big,
			headers: map[string]string{"Content-Type": "application/octet-stream"}},
		{name: "head", method: "HEAD", path: "/assets/big.bin", status: 200,
			headers: map[string]string{"Content-Length": fmt.Sprint(len(big))}},
		{name: "range", method: "GET", path: "/assets/big.bin", hdr: []string{"Range", "bytes=100000-299999"}, status: 206, bodyOf: big[100000:300000],
			headers: map[string]string{"Content-Range": fmt.Sprintf("bytes 100000-299999/%d", len(big))}},
		{name: "suffix range", method: "GET", path: "/assets/small.txt", hdr: []string{"Range", "bytes=-3"}, status: 206, body: "ic\n"},
		{name: "416", method: "GET", path: "/assets/small.txt", hdr: []string{"Range", "bytes=13-"}, status: 416,
			headers: map[string]string{"Content-Range": "bytes */13"}},
		{name: "multi range", method: "GET", path: "/assets/small.txt", hdr: []string{"Range", "bytes=0-1,3-4"}, status: 200, body: "hello static\n"},
		{name: "brotli", method: "GET", path: "/assets/app.js", hdr: []string{"Accept-Encoding", "gzip, br"}, status: 200, body: "BROTLI",
			headers: map[string]string{"Content-Encoding": "br", "Vary": "Accept-Encoding", "Content-Type": "text/javascript; charset=utf-8"}},
		{name: "gzip", method: "GET", path: "/assets/app.js", hdr: []string{"Accept-Encoding", "gzip"}, status: 200, body: "GZIP",
			headers: map[string]string{"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}},
		{name: "gzip range", method: "GET", path: "/assets/app.js", hdr: []string{"Accept-Encoding", "gzip", "Range", "bytes=1-2"}, status: 206, body: "ZI",
			headers: map[string]string{"Content-Encoding": "gzip", "Content-Range": "bytes 1-2/4"}},
		{name: "index", method: "GET", path: "/assets/docs/", status: 200, body: "<h1>docs</h1>",
			headers: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{name: "symlink inside", method: "GET", path: "/assets/alias.txt", status: 200, body: "hello static\n"},
		{name: "symlink out", method: "GET", path: "/assets/escape.txt", status: 404, body: "Not Found\n"},
		{name: "missing", method: "GET", path: "/assets/nope.txt", status: 404, body: "Not Found\n"},
		{name: "encoded slash", method: "GET", path: "/assets/docs%2findex.html", status: 404, body: "Not Found\n"},
		{name: "mount", method: "GET", path: "/m/small.txt", status: 200, body: "hello static\n"},
		{name: "mount index", method: "GET", path: "/m/docs/", status: 200, body: "<h1>docs</h1>"},
		{name: "mount post", method: "POST", path: "/m/small.txt", status: 405, body: "Method Not Allowed\n", headers: map[string]string{"Allow": "GET, HEAD"}},
		{name: "file answer", method: "GET", path: "/download/small.txt", status: 200, body: "hello static\n",
			headers: map[string]string{"Content-Disposition": `attachment; filename="small.txt"`, "Content-Type": "text/plain; charset=utf-8", "Server": "the-worker"}},
		{name: "file answer range", method: "GET", path: "/download/big.bin", hdr: []string{"Range", "bytes=5-"}, status: 206, bodyOf: big[5:]},
		{name: "file answer outside any root", method: "GET", path: "/download/secret", status: 200, body: "top secret"},
		{name: "file answer missing", method: "GET", path: "/download/gone.txt", status: 404, body: "Not Found\n"},
		{name: "file answer 404 page", method: "GET", path: "/download/notfound-page", hdr: []string{"Range", "bytes=0-1"}, status: 404, body: "hello static\n",
			headers: map[string]string{"Accept-Ranges": "", "Content-Range": ""}},
	}
}

// TestStaticEveryProtocol serves the same requests over HTTP/1.1 on a plain
// socket (sendfile), HTTP/1.1 over TLS (copied), h2c, HTTP/2 over TLS and
// HTTP/3.
func TestStaticEveryProtocol(t *testing.T) {
	dir, outside, big := staticTree(t)
	cfg := Config{H2C: true, Static: []string{"/m=" + dir}, StaticIndex: true}
	plain := startServer(t, cfg, staticBackend(t, dir, outside))
	tlsSrv, tc, h3addr := startH3Server(t, cfg, staticBackend(t, dir, outside))
	for _, p := range []struct{ name, base, proto string }{
		{"http1", "http://" + plain.addr, "1.1"},
		{"h2c", "http://" + plain.addr, "h2c"},
		{"https1", "https://" + tlsSrv.addr, "1.1"},
		{"h2", "https://" + tlsSrv.addr, "2"},
		{"h3", "https://" + h3addr, "3"},
	} {
		t.Run(p.name, func(t *testing.T) {
			cl := h3Client(t, tc)
			if p.proto != "3" {
				cl = client(t, tc, p.proto)
			}
			for _, c := range staticCases(big) {
				req, _ := http.NewRequest(c.method, p.base+c.path, nil)
				for i := 0; i+1 < len(c.hdr); i += 2 {
					req.Header.Set(c.hdr[i], c.hdr[i+1])
				}
				if c.hdr == nil || req.Header.Get("Accept-Encoding") == "" {
					req.Header.Set("Accept-Encoding", "identity") // the client's own gzip off
				}
				resp, err := cl.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%s: body: %v", c.name, err)
				}
				want := []byte(c.body)
				if c.bodyOf != nil {
					want = c.bodyOf
				}
				if resp.StatusCode != c.status || !bytes.Equal(body, want) {
					t.Errorf("%s: %d, %d bytes %.40q; want %d, %d bytes", c.name, resp.StatusCode, len(body), body, c.status, len(want))
				}
				for k, v := range c.headers {
					if got := resp.Header.Get(k); got != v {
						if k == "Content-Length" && resp.ContentLength == int64(len(big)) {
							continue // h2 clients surface it as ContentLength
						}
						t.Errorf("%s: %s = %q, want %q", c.name, k, got, v)
					}
				}
				if c.status == 200 && c.method == "GET" && strings.HasPrefix(c.path, "/assets/") {
					checkConditional(t, cl, p.base+c.path, c, resp.Header)
				}
			}
		})
	}
}

// checkConditional asks again with the validators just received: 304,
// with the ETag and no body.
func checkConditional(t *testing.T, cl *http.Client, url string, c staticCase, h http.Header) {
	t.Helper()
	etag, lm := h.Get("ETag"), h.Get("Last-Modified")
	if !strings.HasPrefix(etag, `"`) || lm == "" {
		t.Errorf("%s: ETag %q, Last-Modified %q", c.name, etag, lm)
		return
	}
	for _, cond := range [][2]string{{"If-None-Match", etag}, {"If-Modified-Since", lm}} {
		req, _ := http.NewRequest("GET", url, nil)
		for i := 0; i+1 < len(c.hdr); i += 2 {
			req.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		req.Header.Set(cond[0], cond[1])
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s, %s: %v", c.name, cond[0], err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 304 || len(body) != 0 || resp.Header.Get("ETag") != etag {
			t.Errorf("%s, %s: %d, %d bytes, ETag %q", c.name, cond[0], resp.StatusCode, len(body), resp.Header.Get("ETag"))
		}
	}
}

// rawGet sends one raw HTTP/1.1 request line (the path exactly as given,
// which Go's client would clean) and returns the status code.
func rawGet(t *testing.T, addr, path string) int {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestStaticTraversal: every way of naming a file outside the directory is
// refused: dot segments (400, before routing, as for every route), encoded
// slashes and backslashes, NUL and symbolic links out (404).
func TestStaticTraversal(t *testing.T) {
	dir, outside, _ := staticTree(t)
	ts := startServer(t, Config{Static: []string{"/m=" + dir}}, staticBackend(t, dir, outside))
	for _, pre := range []string{"/assets/", "/m/"} {
		for path, want := range map[string]int{
			"../secret.txt":               400,
			"%2e%2e/secret.txt":           400,
			"docs/../../secret.txt":       400,
			".%2E/secret.txt":             400,
			"..%2fsecret.txt":             404,
			"docs%2f..%2f..%2fsecret.txt": 404,
			"..%5csecret.txt":             404,
			"..\\secret.txt":              404,
			"small.txt%00":                404,
			"escape.txt":                  404,
			"%2fetc%2fpasswd":             404,
			"/etc/passwd":                 404,
			"small.txt":                   200,
		} {
			if got := rawGet(t, ts.addr, pre+path); got != want {
				t.Errorf("GET %s%s = %d, want %d", pre, path, got, want)
			}
		}
	}
}

// TestStaticRedirect: a directory named without its slash is redirected,
// its query kept; a mount's bare prefix too.
func TestStaticRedirect(t *testing.T) {
	dir, outside, _ := staticTree(t)
	ts := startServer(t, Config{Static: []string{"/m=" + dir}, StaticIndex: true}, staticBackend(t, dir, outside))
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, loc := range map[string]string{"/assets/docs?v=1": "/assets/docs/?v=1", "/m": "/m/", "/m/docs": "/m/docs/"} {
		resp, err := cl.Get("http://" + ts.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 301 || resp.Header.Get("Location") != loc {
			t.Errorf("GET %s = %d Location %q, want 301 %q", path, resp.StatusCode, resp.Header.Get("Location"), loc)
		}
	}
}

// TestStaticConfig: mounts are checked, each error naming the entry.
func TestStaticConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, e := range []string{"assets=" + dir, "/=" + dir, "/a/=" + dir, "/a", "/a=", "/a=" + file, "/a=" + dir + "/nope",
		"/a/../b=" + dir, "/a{x}=" + dir, "/a%20=" + dir} {
		c := Config{Static: []string{e}}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "static: entry") {
			t.Errorf("Static %q: %v", e, err)
		}
	}
	c := Config{Static: []string{"/a=" + dir, "/a=" + dir}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate: %v", err)
	}
	c = Config{Static: []string{"/a=" + dir, "/b/c=" + dir}}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// TestStaticObserved: static answers count in the metrics and the access log
// like routed ones, under their route pattern, with the bytes sent (the
// sendfile body included), over HTTP/1.1 and HTTP/2.
func TestStaticObserved(t *testing.T) {
	dir, outside, big := staticTree(t)
	m, reg := newMetrics(t)
	var logs lockedBuffer
	cfg := Config{H2C: true, Static: []string{"/m=" + dir}, Metrics: m, AccessLog: slog.New(slog.NewJSONHandler(&logs, nil))}
	ts := startServer(t, cfg, staticBackend(t, dir, outside))
	for _, proto := range []string{"1.1", "h2c"} {
		cl := client(t, &tls.Config{}, proto)
		for _, path := range []string{"/assets/big.bin", "/m/big.bin", "/download/big.bin", "/assets/nope"} {
			resp, err := cl.Get("http://" + ts.addr + path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	waitFor(t, "8 access records", func() bool { return len(logs.lines()) == 8 })
	for _, c := range []struct {
		app, route, status string
		proto              string
	}{
		{"app", "/assets/{path...}", "200", "http/1.1"}, {"", "/m/{path...}", "200", "http/1.1"},
		{"GET /download/{name}", "/download/{name}", "200", "http/1.1"}, {"app", "/assets/{path...}", "404", "http/1.1"},
		{"app", "/assets/{path...}", "200", "h2"}, {"", "/m/{path...}", "200", "h2"},
	} {
		labels := map[string]string{"app": c.app, "route": c.route, "method": "GET", "status": c.status, "protocol": c.proto}
		if got := metricValue(t, reg, "covet_requests_total", labels); got != 1 {
			t.Errorf("covet_requests_total%v = %v, want 1", labels, got)
		}
	}
	if out := metricValue(t, reg, "covet_bytes_sent_total", nil); out < float64(6*len(big)) {
		t.Errorf("bytes sent %v, want at least %d", out, 6*len(big))
	}
	var rec struct {
		Route  string `json:"route"`
		Status int    `json:"status"`
		Bytes  int64  `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(logs.lines()[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Route != "/assets/{path...}" || rec.Status != 200 || rec.Bytes < int64(len(big)) {
		t.Errorf("access record %+v", rec)
	}
}

// TestStaticPipelinedAndHTTP10: static answers keep their place among
// pipelined requests (a worker's answer between them), HEAD among them
// sends no body, and an HTTP/1.0 client gets its file and the close it
// asked for.
func TestStaticPipelinedAndHTTP10(t *testing.T) {
	dir, outside, big := staticTree(t)
	ts := startServer(t, Config{Static: []string{"/m=" + dir}}, staticBackend(t, dir, outside))
	rc := ts.dial(t)
	rc.send("GET /m/big.bin HTTP/1.1\r\nHost: x\r\n\r\n" +
		"HEAD /assets/small.txt HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /download/small.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\n\r\n" +
		"GET /assets/small.txt HTTP/1.1\r\nHost: x\r\nIf-Match: \"nope\"\r\n\r\n" +
		"GET /assets/small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	for i, want := range []struct {
		method string
		status int
		body   string
	}{{"GET", 200, string(big)}, {"HEAD", 200, ""}, {"GET", 206, "hello"}, {"GET", 412, ""}, {"GET", 200, "hello static\n"}} {
		resp, body := rc.read(want.method)
		if resp.StatusCode != want.status || body != want.body {
			t.Fatalf("response %d: %d, %d bytes %.20q; want %d, %d bytes", i, resp.StatusCode, len(body), body, want.status, len(want.body))
		}
		if want.method == "HEAD" && resp.ContentLength != 13 {
			t.Errorf("HEAD Content-Length %d, want 13", resp.ContentLength)
		}
	}
	old := ts.dial(t)
	old.send("GET /assets/big.bin HTTP/1.0\r\n\r\n")
	resp, body := old.read("GET")
	if resp.StatusCode != 200 || body != string(big) || !resp.Close {
		t.Fatalf("HTTP/1.0: %d, %d bytes, close %v", resp.StatusCode, len(body), resp.Close)
	}
	old.expectEOF()
}
