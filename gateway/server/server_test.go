package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/workerproto"
)

// vecPieces is what /vec/{framing} sends: two WriteBodyv calls, a small one and one
// over flushAt, each of several pieces.
var vecPieces = [][]string{{"ab", "", "cd"}, {strings.Repeat("x", 20000), strings.Repeat("y", 20000), "z"}}

// streamPieces is what /stream sends, piece by piece, with unknown length.
var streamPieces = []string{"first piece\n", strings.Repeat("B", 10000), "\nlast piece\n"}

// probe lets tests watch handlers that block.
type probe struct {
	started  chan struct{} // one value per /block or /slow entry
	canceled chan struct{} // one value per /block whose ctx ended
}

// testBackend builds the routes every test uses.
func testBackend(t *testing.T) (*fakeBackend, *recorder, *probe) {
	b := newFakeBackend()
	rec := &recorder{}
	pr := &probe{started: make(chan struct{}, 16), canceled: make(chan struct{}, 16)}
	ok := func(body string) handlerFunc {
		return func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
			rec.add(req)
			return respond(w, 200, body, "content-type", "text/plain")
		}
	}
	b.handle(t, "GET", "/hello", 0, ok("hello"))
	b.handle(t, "GET", "/users/{id}", 2500*time.Millisecond, ok("user"))
	b.handle(t, "GET", "/files/{path...}", 0, ok("file"))
	b.handle(t, "GET", "/caf%C3%A9/{word}", 0, ok("cafe"))
	b.handle(t, "POST", "/echo", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		rec.add(req)
		if req.Head.Body != int64(len(req.Body)) && req.Head.Body != -1 { // -1: chunked
			return respond(w, 500, "Head.Body mismatch")
		}
		return respond(w, 200, string(req.Body))
	})
	b.handle(t, "GET", "/delay/{ms:int}", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		ms, _ := strconv.Atoi(req.Head.Params[0].Value)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return respond(w, 200, "delay "+req.Head.Params[0].Value)
	})
	b.handle(t, "GET", "/stream", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		rec.add(req)
		if err := w.WriteHead(200, []workerproto.Header{{Name: []byte("content-type"), Value: []byte("text/plain")}}, -1); err != nil {
			return err
		}
		for _, p := range streamPieces {
			if err := w.WriteBody([]byte(p)); err != nil {
				return err
			}
		}
		return nil
	})
	b.handle(t, "GET", "/vec/{framing}", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		length := int64(-1)
		if req.Head.Params[0].Value == "length" {
			length = int64(len(strings.Join(vecPieces[0], "") + strings.Join(vecPieces[1], "")))
		}
		if err := w.WriteHead(200, nil, length); err != nil {
			return err
		}
		for _, ps := range vecPieces {
			bs := make([][]byte, len(ps))
			for i, p := range ps {
				bs[i] = []byte(p)
			}
			if err := w.WriteBodyv(bs); err != nil {
				return err
			}
		}
		return nil
	})
	b.handle(t, "GET", "/sized/{n:int}/{pieces:int}", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		// n bytes of sizedByte(i) with their length declared, in that many
		// WriteBody calls. The buffer is overwritten after each call, as the
		// dispatcher recycles its chunks: the writer may not keep it.
		n, _ := strconv.Atoi(req.Head.Params[0].Value)
		pieces, _ := strconv.Atoi(req.Head.Params[1].Value)
		if err := w.WriteHead(200, nil, int64(n)); err != nil {
			return err
		}
		buf := make([]byte, n)
		for i, off := 0, 0; i < pieces; i++ {
			end := n * (i + 1) / pieces
			for j := off; j < end; j++ {
				buf[j] = sizedByte(j)
			}
			if err := w.WriteBody(buf[off:end]); err != nil {
				return err
			}
			for j := off; j < end; j++ {
				buf[j] = '!'
			}
			off = end
		}
		return nil
	})
	b.handle(t, "GET", "/head", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		rec.add(req)
		return respond(w, 200, "abcdef") // also for HEAD: the front end must drop it
	})
	b.handle(t, "GET", "/headlen", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		// A worker answering HEAD with no body but the GET length declared.
		return w.WriteHead(200, []workerproto.Header{{Name: []byte("content-length"), Value: []byte("1234")}}, 0)
	})
	b.handle(t, "GET", "/err/{kind}", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		switch req.Head.Params[0].Value {
		case "502":
			return dispatch.ErrWorkerDied
		case "503":
			return dispatch.ErrQueueFull
		case "504":
			return dispatch.ErrDeadline
		case "aborted":
			if err := w.WriteHead(200, nil, 100000); err != nil {
				return err
			}
			w.WriteBody(bytes.Repeat([]byte("x"), 50000))
			return dispatch.ErrAborted
		case "aborted-chunked":
			if err := w.WriteHead(200, nil, -1); err != nil {
				return err
			}
			w.WriteBody(bytes.Repeat([]byte("x"), 10000))
			return dispatch.ErrAborted
		case "short":
			if err := w.WriteHead(200, nil, 10); err != nil {
				return err
			}
			return w.WriteBody([]byte("12345"))
		case "badheader":
			return w.WriteHead(200, []workerproto.Header{{Name: []byte("x-evil"), Value: []byte("a\r\nset-cookie: x")}}, 0)
		case "unknown":
			return errors.New("something odd")
		case "none":
			return nil
		case "panic":
			panic("handler bug")
		}
		return respond(w, 400, "unknown kind")
	})
	b.handle(t, "GET", "/reserved", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 200, "ok", "content-length", "999", "connection", "close", "transfer-encoding", "gzip", "server", "worker/1", "x-request-id", "from-worker")
	})
	b.handle(t, "GET", "/block", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		pr.started <- struct{}{}
		<-ctx.Done()
		pr.canceled <- struct{}{}
		return dispatch.ErrCanceled
	})
	b.handle(t, "GET", "/slow", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		pr.started <- struct{}{}
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return dispatch.ErrCanceled
		}
		return respond(w, 200, "done")
	})
	return b, rec, pr
}

func TestKeepAliveReuse(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	cl := ts.client(t)
	reused := 0
	for i := 0; i < 5; i++ {
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
			if ci.Reused {
				reused++
			}
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", ts.url("/hello"), nil)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "hello" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if resp.Header.Get("Server") != "covetpy" || resp.Header.Get("Date") == "" || resp.Header.Get("Content-Length") != "5" {
			t.Fatalf("headers: %v", resp.Header)
		}
	}
	if reused != 4 || ts.ln.n.Load() != 1 {
		t.Fatalf("reused %d of 5, %d connections accepted; want 4 and 1", reused, ts.ln.n.Load())
	}
}

func TestPipelinedInOrder(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	delays := []string{"150", "1", "60"}
	var all string
	for _, d := range delays {
		all += get("x", "/delay/"+d)
	}
	rc.send(all) // one write: three pipelined requests
	for _, d := range delays {
		resp, body := rc.read("GET")
		if resp.StatusCode != 200 || body != "delay "+d {
			t.Fatalf("got %d %q, want delay %s", resp.StatusCode, body, d)
		}
	}
	// Mixed with gateway answers and a 405, still in order.
	rc.send(get("x", "/delay/40") + get("x", "/nope") + "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + get("x", "/hello"))
	for _, want := range []int{200, 404, 405, 200} {
		if resp, body := rc.read("GET"); resp.StatusCode != want {
			t.Fatalf("got %d %q, want %d", resp.StatusCode, body, want)
		}
	}
}

func TestRequestBodies(t *testing.T) {
	b, rec, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	cl := ts.client(t)
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(rand.IntN(256))
	}
	for _, tc := range []struct {
		name    string
		body    []byte
		chunked bool
	}{
		{"content-length small", []byte("hello body"), false},
		{"content-length large", big, false},
		{"chunked", big[:70000], true},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(bytes.NewReader(tc.body[:1000]), bytes.NewReader(tc.body[1000:])) // unknown length
			}
			req, _ := http.NewRequest("POST", ts.url("/echo"), body)
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || sha256.Sum256(got) != sha256.Sum256(tc.body) {
				t.Fatalf("status %d, body %d bytes, want %d", resp.StatusCode, len(got), len(tc.body))
			}
			h, _ := rec.last(t)
			want := int64(len(tc.body))
			if tc.chunked {
				want = -1 // a body of unknown length streams (PROTOCOL.md 3.1)
			}
			if h.Body != want {
				t.Fatalf("Head.Body = %d, want %d", h.Body, want)
			}
		})
	}
	// A raw chunked body with extensions and trailers.
	rc := ts.dial(t)
	rc.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
	if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != "hello world" {
		t.Fatalf("chunked raw: %d %q", resp.StatusCode, body)
	}
}

// A Content-Length body whose rest arrives after the read buffer ran dry is
// read straight into the body (bodyDst), never past its end: the request
// pipelined behind it in the same packet is still parsed and answered.
func TestDirectBodyReadStopsAtTheBodyEnd(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	body := make([]byte, 100<<10+3)
	for i := range body {
		body[i] = byte(rand.IntN(256))
	}
	rc := ts.dial(t)
	rc.send(fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body)) + string(body[:10]))
	time.Sleep(50 * time.Millisecond) // the reader takes them in and waits for the rest
	rc.send(string(body[10:]) + get("x", "/hello"))
	if resp, got := rc.read("POST"); resp.StatusCode != 200 || got != string(body) {
		t.Fatalf("echo: %d, %d bytes, want %d", resp.StatusCode, len(got), len(body))
	}
	if resp, got := rc.read("GET"); resp.StatusCode != 200 || got != "hello" {
		t.Fatalf("pipelined request after the body: %d %q", resp.StatusCode, got)
	}
}

func TestStreamedResponse(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	want := strings.Join(streamPieces, "")

	resp, err := ts.client(t).Get(ts.url("/stream"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != want {
		t.Fatalf("net/http: %v, body %q", err, got)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.ContentLength != -1 {
		t.Fatalf("not chunked: TE %v CL %d", resp.TransferEncoding, resp.ContentLength)
	}

	// HTTP/1.0: close-delimited.
	rc := ts.dial(t)
	rc.send("GET /stream HTTP/1.0\r\n\r\n")
	r10, body := rc.read("GET")
	if body != want || r10.ContentLength != -1 || len(r10.TransferEncoding) != 0 || !r10.Close {
		t.Fatalf("HTTP/1.0 stream: CL %d TE %v close %v body %q", r10.ContentLength, r10.TransferEncoding, r10.Close, body)
	}

	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed; net/http checks passed")
	}
	for _, args := range [][]string{{"-sS", "--http1.1"}, {"-sS", "--http1.0"}} {
		out, err := exec.Command(curl, append(args, "--max-time", "10", ts.url("/stream"))...).Output()
		if err != nil || string(out) != want {
			t.Fatalf("curl %v: %v, body %q", args, err, out)
		}
	}
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "-i", ts.url("/stream")).Output()
	if err != nil || !strings.Contains(strings.ToLower(string(out)), "transfer-encoding: chunked") {
		t.Fatalf("curl -i: %v, %q", err, out)
	}
}

// sizedByte is byte i of a /sized body.
func sizedByte(i int) byte { return 'a' + byte(i%26) }

// TestKnownLengthBodies: bodies of declared length around the write buffer's
// thresholds (smallChunk, flushAt), whole or in pieces, arrive exact and in order
// on one keep-alive connection, pipelined, although the backend reuses each
// piece's memory as soon as WriteBody returns.
func TestKnownLengthBodies(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	type req struct{ n, pieces int }
	var reqs []req
	for _, n := range []int{0, 1, smallChunk, smallChunk + 1, 10 << 10, flushAt - 100, flushAt, flushAt + 1, 100_000} {
		for _, pieces := range []int{1, 3} {
			if n >= pieces {
				reqs = append(reqs, req{n, pieces})
			}
		}
	}
	rc := ts.dial(t)
	var batch strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&batch, "GET /sized/%d/%d HTTP/1.1\r\nHost: x\r\n\r\n", r.n, r.pieces)
	}
	rc.send(batch.String())
	for _, r := range reqs {
		resp, body := rc.read("GET")
		if resp.StatusCode != 200 || resp.ContentLength != int64(r.n) || len(body) != r.n {
			t.Fatalf("%d bytes in %d pieces: status %d, Content-Length %d, %d bytes of body",
				r.n, r.pieces, resp.StatusCode, resp.ContentLength, len(body))
		}
		for i := range r.n {
			if body[i] != sizedByte(i) {
				t.Fatalf("%d bytes in %d pieces: byte %d is %q, want %q", r.n, r.pieces, i, body[i], sizedByte(i))
			}
		}
	}
}

// TestWriteBodyv: several pieces handed over at once arrive whole and in order, as
// one chunk per call when the body is chunked.
func TestWriteBodyv(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	var want string
	for _, ps := range vecPieces {
		want += strings.Join(ps, "")
	}
	for _, framing := range []string{"length", "chunked"} {
		rc := ts.dial(t)
		rc.send("GET /vec/" + framing + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		raw, err := io.ReadAll(rc.br)
		if err != nil {
			t.Fatal(err)
		}
		head, body, ok := strings.Cut(string(raw), "\r\n\r\n")
		if !ok {
			t.Fatalf("%s: no head in %q", framing, raw)
		}
		if framing == "length" {
			if !strings.Contains(head, fmt.Sprintf("Content-Length: %d", len(want))) || body != want {
				t.Fatalf("length: head %q, body %d bytes, want %d", head, len(body), len(want))
			}
			continue
		}
		var chunks []string
		for {
			size, rest, _ := strings.Cut(body, "\r\n")
			n, err := strconv.ParseInt(size, 16, 64)
			if err != nil {
				t.Fatalf("chunked: bad chunk size %q", size)
			}
			if n == 0 {
				break
			}
			chunks = append(chunks, rest[:n])
			body = strings.TrimPrefix(rest[n:], "\r\n")
		}
		if len(chunks) != len(vecPieces) || strings.Join(chunks, "") != want {
			t.Fatalf("chunked: %d chunks (want one per call, %d), %d bytes", len(chunks), len(vecPieces), len(strings.Join(chunks, "")))
		}
	}
}

func TestHead(t *testing.T) {
	b, rec, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	rc.send("HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := rc.read("HEAD")
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Length") != "6" {
		t.Fatalf("HEAD: %d CL %q body %q", resp.StatusCode, resp.Header.Get("Content-Length"), body)
	}
	if h, _ := rec.last(t); h.Method != "HEAD" || h.Route != "/head" {
		t.Fatalf("worker saw method %q route %q", h.Method, h.Route)
	}
	rc.send("HEAD /headlen HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := rc.read("HEAD"); resp.Header.Get("Content-Length") != "1234" {
		t.Fatalf("HEAD keeps the worker's Content-Length: got %q", resp.Header.Get("Content-Length"))
	}
	rc.send("HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := rc.read("HEAD"); resp.Header.Get("Transfer-Encoding") != "" {
		t.Fatalf("HEAD of a stream: %v", resp.Header)
	}
	// No stray body bytes: the next response parses cleanly.
	rc.send(get("x", "/hello"))
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("after HEAD: %d %q", resp.StatusCode, body)
	}
}

func TestExpectContinue(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	rc.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	rc.expect100() // before the body
	rc.send("hello")
	if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("after 100: %d %q", resp.StatusCode, body)
	}

	// Rejected from its head: final status, no 100, connection closed.
	rc2 := ts.dial(t)
	rc2.send("POST /nope HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	resp, _ := rc2.read("POST")
	if resp.StatusCode != 404 || !resp.Close {
		t.Fatalf("rejected expect: %d close %v", resp.StatusCode, resp.Close)
	}
	rc2.expectEOF()

	// net/http's client waits for 100 Continue too.
	tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", ts.url("/echo"), strings.NewReader("via net/http"))
	req.Header.Set("Expect", "100-continue")
	r, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if string(got) != "via net/http" {
		t.Fatalf("net/http expect: %q", got)
	}
}

// A 100-continue request queued behind a slow one: its body timer starts
// when the 100 Continue goes out, not when its head arrived.
func TestExpectContinueBehindSlowRequest(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{BodyReadTimeout: 150 * time.Millisecond}, b)
	rc := ts.dial(t)
	rc.send(get("x", "/delay/400") + "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	if resp, body := rc.read("GET"); body != "delay 400" {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}
	rc.expect100()
	time.Sleep(50 * time.Millisecond) // within the grace, counted from the 100
	rc.send("body")
	if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != "body" {
		t.Fatalf("second: %d %q", resp.StatusCode, body)
	}
}

func TestHTTP10(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	rc.send("GET /hello HTTP/1.0\r\n\r\n")
	resp, body := rc.read("GET")
	if resp.StatusCode != 200 || body != "hello" || !resp.Close {
		t.Fatalf("HTTP/1.0: %d %q close %v", resp.StatusCode, body, resp.Close)
	}
	rc.expectEOF()

	// HTTP/1.0 keep-alive is honoured.
	rc = ts.dial(t)
	rc.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, _ = rc.read("GET")
	if resp.Close || resp.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("HTTP/1.0 keep-alive: close %v, Connection %q", resp.Close, resp.Header.Get("Connection"))
	}
	rc.send("GET /hello HTTP/1.0\r\n\r\n")
	rc.read("GET")
	rc.expectEOF()

	// HTTP/1.1 Connection: close.
	rc = ts.dial(t)
	rc.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, _ := rc.read("GET"); !resp.Close {
		t.Fatal("Connection: close not echoed")
	}
	rc.expectEOF()
}

func TestRouting(t *testing.T) {
	b, rec, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	for _, tc := range []struct {
		req, method string
		status      int
		allow, body string
	}{
		{get("x", "/nope"), "GET", 404, "", "Not Found\n"},
		{"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", "POST", 405, "GET, HEAD, OPTIONS", "Method Not Allowed\n"},
		{"OPTIONS /hello HTTP/1.1\r\nHost: x\r\n\r\n", "OPTIONS", 204, "GET, HEAD, OPTIONS", ""},
		{"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "OPTIONS", 204, "", ""},
		{"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD", 404, "", ""},
		{get("x", "/a/../hello"), "GET", 400, "", "Bad Request\n"},
		{get("x", "/files/./x"), "GET", 400, "", "Bad Request\n"},
		{get("x", "/files/%2e%2E/x"), "GET", 400, "", "Bad Request\n"},
		{get("x", "/files/x/.."), "GET", 400, "", "Bad Request\n"},
		{get("x", "/users/%zz"), "GET", 400, "", "Bad Request\n"},
		{get("x", "/users/%ff"), "GET", 400, "", "Bad Request\n"},
		{"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "GET", 501, "", "Not Implemented\n"},
		{get("x", "/files/.well-known/a..b"), "GET", 200, "", "file"},
		// Equivalent spellings (RFC 3986 6.2.2) reach the same route; an encoded
		// slash stays inside its segment.
		{get("x", "/caf%C3%A9/x"), "GET", 200, "", "cafe"},
		{get("x", "/caf%c3%a9/x"), "GET", 200, "", "cafe"},
		{get("x", "/%63af%C3%a9/x"), "GET", 200, "", "cafe"},
		{get("x", "/caf%C3%A9%2Fx"), "GET", 404, "", "Not Found\n"},
		{get("x", "/caf%C3%A"), "GET", 404, "", "Not Found\n"},
	} {
		rc.send(tc.req)
		resp, body := rc.read(tc.method)
		if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow || body != tc.body {
			t.Errorf("%q: got %d Allow %q body %q; want %d %q %q", tc.req, resp.StatusCode, resp.Header.Get("Allow"), body, tc.status, tc.allow, tc.body)
		}
		if resp.Close {
			t.Errorf("%q: connection closed", tc.req)
		}
		if resp.Header.Get("X-Request-ID") == "" {
			t.Errorf("%q: no X-Request-ID", tc.req)
		}
	}

	// What the worker sees.
	rc.send("GET /users/a%20b%2Fc?q=1&r=%20 HTTP/1.1\r\nHost: example.com\r\nX-Custom: v1\r\n\r\n")
	rc.read("GET")
	h, _ := rec.last(t)
	if h.Method != "GET" || h.Path != "/users/a%20b%2Fc" || h.Query != "q=1&r=%20" || h.Route != "/users/{id}" ||
		len(h.Params) != 1 || h.Params[0] != (workerproto.Param{Name: "id", Value: "a b/c"}) ||
		h.HTTPVersion != "1.1" || h.Scheme != "http" || h.Client != rc.nc.LocalAddr().String() ||
		h.TimeoutMS != 2500 || h.Body != 0 || len(h.Headers) != 2 ||
		string(h.Headers[1].Name) != "X-Custom" || string(h.Headers[1].Value) != "v1" {
		t.Fatalf("worker head: %+v", h)
	}
	// The worker gets the path as sent, parameters decoded.
	rc.send(get("x", "/caf%c3%a9/na%c3%afve%7e"))
	rc.read("GET")
	if h, _ := rec.last(t); h.Path != "/caf%c3%a9/na%c3%afve%7e" || h.Route != "/caf%C3%A9/{word}" ||
		len(h.Params) != 1 || h.Params[0].Value != "naïve~" {
		t.Fatalf("lower-case escapes: worker head %+v", h)
	}
	var hb []byte
	hb, err := h.Append(hb)
	if err != nil || len(hb) != h.Len() {
		t.Fatalf("head does not encode: %v", err)
	}
}

func TestStatusErrors(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	for _, tc := range []struct {
		kind       string
		status     int
		retryAfter string
	}{
		{"502", 502, ""},
		{"503", 503, "1"},
		{"504", 504, ""},
		{"badheader", 502, ""},
		{"unknown", 502, ""},
		{"none", 502, ""},
	} {
		rc.send(get("x", "/err/"+tc.kind))
		resp, body := rc.read("GET")
		if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retryAfter ||
			body != http1.StatusText(tc.status)+"\n" || resp.Close {
			t.Errorf("%s: %d Retry-After %q body %q close %v", tc.kind, resp.StatusCode, resp.Header.Get("Retry-After"), body, resp.Close)
		}
		if resp.Header.Get("X-Evil") != "" || resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s: injected header went out", tc.kind)
		}
	}
	// A panicking backend: 502 and the connection closes.
	rc.send(get("x", "/err/panic"))
	if resp, _ := rc.read("GET"); resp.StatusCode != 502 || !resp.Close {
		t.Fatalf("panic: %d close %v", resp.StatusCode, resp.Close)
	}
	rc.expectEOF()
}

func TestReservedWorkerHeaders(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	rc.send(get("x", "/reserved") + get("x", "/hello"))
	resp, body := rc.read("GET")
	if body != "ok" || resp.ContentLength != 2 || resp.Close || len(resp.TransferEncoding) != 0 ||
		resp.Header.Get("Server") != "worker/1" || resp.Header.Get("X-Request-ID") != "from-worker" {
		t.Fatalf("reserved: CL %d close %v TE %v hdr %v body %q", resp.ContentLength, resp.Close, resp.TransferEncoding, resp.Header, body)
	}
	if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
		t.Fatal("connection broken after reserved headers")
	}
}

func TestAborted(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	cl := ts.client(t)
	for _, path := range []string{"/err/aborted", "/err/aborted-chunked", "/err/short"} {
		resp, err := cl.Get(ts.url(path))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Errorf("%s: client saw a complete response", path)
		}
	}
	// The raw view of the chunked abort: head and data, no last chunk, EOF.
	rc := ts.dial(t)
	rc.send(get("x", "/err/aborted-chunked"))
	rc.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	all, err := io.ReadAll(rc.br)
	if err != nil || !bytes.Contains(all, []byte("Transfer-Encoding: chunked")) || bytes.HasSuffix(all, []byte("0\r\n\r\n")) {
		t.Fatalf("chunked abort: err %v, tail %q", err, all[max(0, len(all)-20):])
	}
}

func TestClientDisconnectCancels(t *testing.T) {
	b, _, pr := testBackend(t)
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	rc.send(get("x", "/block") + get("x", "/hello")) // the second is parsed ahead, then dropped
	select {
	case <-pr.started:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not started")
	}
	rc.nc.Close()
	select {
	case <-pr.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("handler context not cancelled after the client left")
	}
	waitFor(t, "connection cleanup", func() bool { return ts.srv.numConns() == 0 })
}

func TestMalformed(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{Limits: http1.Limits{MaxRequestLine: 256, MaxHeaderBytes: 1024, MaxBodyBytes: 1000}}, b)
	for _, tc := range []struct {
		name   string
		req    string
		status int
		close  bool
	}{
		{"bare LF", "GET /hello HTTP/1.1\nHost: x\n\n", 400, true},
		{"HTTP/2.0", "GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505, true},
		{"request line too long", "GET /" + strings.Repeat("a", 300) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, true},
		{"header too large", "GET /hello HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 1100) + "\r\n\r\n", 431, true},
		{"CL and TE", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, true},
		{"body too large", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413, true},
		{"chunked too large", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + strings.Repeat("a", 1001), 413, true},
		{"gzip before chunked", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, true},
		{"obs-fold", "GET /hello HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400, true},
		{"bad chunk size", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, true},
		{"missing Host", "GET /hello HTTP/1.1\r\n\r\n", 400, false},
		{"bad expectation", "GET /hello HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", 417, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := ts.dial(t)
			rc.send(tc.req)
			resp, _ := rc.read("GET")
			if resp.StatusCode != tc.status || resp.Close != tc.close {
				t.Fatalf("got %d close %v, want %d close %v", resp.StatusCode, resp.Close, tc.status, tc.close)
			}
			if tc.close {
				rc.expectEOF()
				return
			}
			rc.send(get("x", "/hello"))
			if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "hello" {
				t.Fatalf("connection not usable after %d: %d %q", tc.status, resp.StatusCode, body)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{IdleTimeout: 150 * time.Millisecond}, b)
	rc := ts.dial(t)
	rc.send(get("x", "/hello"))
	rc.read("GET")
	start := time.Now()
	rc.expectEOF()
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", el)
	}
	// A request that takes longer than the idle timeout is not cut off.
	rc = ts.dial(t)
	rc.send(get("x", "/delay/400"))
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "delay 400" {
		t.Fatalf("slow handler: %d %q", resp.StatusCode, body)
	}
}

func TestHeaderTimeout(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{ReadHeaderTimeout: 200 * time.Millisecond}, b)
	rc := ts.dial(t)
	start := time.Now()
	rc.send("GET /hello HTTP/1.1\r\nHost: x\r\n")
	// Slowloris: a header byte every 50ms never completes the head.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := rc.nc.Write([]byte("X")); err != nil {
					return
				}
			}
		}
	}()
	resp, _ := rc.read("GET")
	if resp.StatusCode != 408 || !resp.Close {
		t.Fatalf("got %d close %v, want 408 and close", resp.StatusCode, resp.Close)
	}
	if el := time.Since(start); el < 150*time.Millisecond || el > 4*time.Second {
		t.Fatalf("408 after %v", el)
	}
	rc.expectEOF()
}

func TestBodyTimeout(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{BodyReadTimeout: 200 * time.Millisecond}, b)
	rc := ts.dial(t)
	rc.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	resp, _ := rc.read("POST")
	if resp.StatusCode != 408 || !resp.Close {
		t.Fatalf("got %d close %v, want 408 and close", resp.StatusCode, resp.Close)
	}
	rc.expectEOF()
}

func TestRequestID(t *testing.T) {
	b, rec, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	isGenerated := func(id string) bool {
		if len(id) != 16 {
			return false
		}
		_, err := strconv.ParseUint(id, 16, 64)
		return err == nil
	}
	seen := map[string]bool{}
	for _, tc := range []struct {
		sent string
		keep bool
	}{
		{"abc-123_XYZ", true},
		{strings.Repeat("z", 128), true},
		{strings.Repeat("z", 129), false},
		{"has space", false},
		{"", false},
		{"caf\xc3\xa9", false},
	} {
		req := "GET /hello HTTP/1.1\r\nHost: x\r\n"
		if tc.sent != "" {
			req += "X-Request-ID: " + tc.sent + "\r\n"
		}
		rc.send(req + "\r\n")
		resp, _ := rc.read("GET")
		h, _ := rec.last(t)
		got := resp.Header.Get("X-Request-ID")
		if got != h.RequestID {
			t.Errorf("response id %q != worker id %q", got, h.RequestID)
		}
		if tc.keep && got != tc.sent {
			t.Errorf("sane id %q replaced by %q", tc.sent, got)
		}
		if !tc.keep {
			if !isGenerated(got) || seen[got] {
				t.Errorf("for %q: generated id %q (seen before: %v)", tc.sent, got, seen[got])
			}
			seen[got] = true
		}
	}
}

func TestShutdownDrains(t *testing.T) {
	b, _, pr := testBackend(t)
	ts := startServer(t, Config{}, b)

	idle := ts.dial(t)
	idle.send(get("x", "/hello"))
	idle.read("GET")

	busy := ts.dial(t)
	busy.send(get("x", "/slow"))
	select {
	case <-pr.started:
	case <-time.After(5 * time.Second):
		t.Fatal("slow handler not started")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(ctx) }()

	idle.expectEOF() // closed at once, long before /slow ends
	resp, body := busy.read("GET")
	if resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Fatalf("in-flight request: %d %q close %v", resp.StatusCode, body, resp.Close)
	}
	busy.expectEOF()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if ts.srv.numConns() != 0 {
		t.Fatalf("%d connections left", ts.srv.numConns())
	}
	select {
	case err := <-ts.served:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
		ts.served <- err // for the cleanup check
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestShutdownDeadline(t *testing.T) {
	b, _, pr := testBackend(t)
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	rc.send(get("x", "/block"))
	<-pr.started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want DeadlineExceeded", err)
	}
	select {
	case <-pr.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request not cancelled when Shutdown gave up")
	}
}

func TestConfigValidate(t *testing.T) {
	var zero Config
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	for _, tc := range []struct {
		field string
		cfg   Config
	}{
		{"ReadHeaderTimeout", Config{ReadHeaderTimeout: -1}},
		{"IdleTimeout", Config{IdleTimeout: -time.Second}},
		{"BodyReadTimeout", Config{BodyReadTimeout: -1}},
		{"WriteTimeout", Config{WriteTimeout: -1}},
		{"MinBodyRate", Config{MinBodyRate: -5}},
		{"MaxPipelined", Config{MaxPipelined: -1}},
		{"Limits", Config{Limits: http1.Limits{MaxHeaderBytes: -1}}},
	} {
		err := tc.cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
	s := &Server{Config: Config{IdleTimeout: -1}, Backend: newFakeBackend()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Serve with a bad config: %v", err)
	}
}

func TestBodyDeadline(t *testing.T) {
	c := Config{BodyReadTimeout: 2 * time.Second, MinBodyRate: 1000}
	start := time.Unix(1000, 0)
	for _, tc := range []struct {
		got  int64
		want time.Duration
	}{{0, 2 * time.Second}, {500, 2500 * time.Millisecond}, {3000, 5 * time.Second}} {
		if d := c.bodyDeadline(start, tc.got).Sub(start); d != tc.want {
			t.Errorf("%d bytes: %v, want %v", tc.got, d, tc.want)
		}
	}
}

// TestWriteDeadline: a write's deadline is its own bound (WriteTimeout
// after its start) unless the response's time blocked on the client runs
// out first: WriteTimeout plus a second per MinWriteRate bytes written.
func TestWriteDeadline(t *testing.T) {
	c := Config{WriteTimeout: 2 * time.Second, MinWriteRate: 1000}
	now := time.Unix(1000, 0)
	by := now.Add(c.WriteTimeout)
	for _, tc := range []struct {
		blocked time.Duration
		written int64
		want    time.Duration // from now
		rate    bool
	}{
		{0, 0, 2 * time.Second, false},
		{time.Second, 500, 1500 * time.Millisecond, true},
		{3 * time.Second, 500, -500 * time.Millisecond, true},
		{time.Second, 1000, 2 * time.Second, false},
		{time.Hour, 1 << 62, 2 * time.Second, false}, // credit past any bound
	} {
		dl, rate := c.writeDeadline(now, by, tc.blocked, tc.written)
		if d := dl.Sub(now); d != tc.want || rate != tc.rate {
			t.Errorf("blocked %v, %d bytes written: %v (rate %v), want %v (rate %v)", tc.blocked, tc.written, d, rate, tc.want, tc.rate)
		}
	}
}

func TestPathAndIDHelpers(t *testing.T) {
	for p, bad := range map[string]bool{
		"/": false, "/a/b": false, "/a.b/c..d": false, "/.well-known": false, "/a/%2e%2e%2e": false,
		"": true, "*": true, "/.": true, "/..": true, "/a/./b": true, "/a/../b": true, "/%2E": true, "/a/.%2e/": true,
	} {
		if badPath(p) != bad {
			t.Errorf("badPath(%q) = %v", p, !bad)
		}
	}
	var c conn
	var b1, b2 [16]byte
	if a, b := c.newRequestID(&b1), c.newRequestID(&b2); a == b || len(a) != 16 {
		t.Fatalf("ids %q %q", a, b)
	}
}

// Many clients at once, keep-alive and pipelined, mixed answers: every
// response is the right one and every connection is cleaned up.
func TestConcurrentClients(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{MaxPipelined: 4}, b)
	cl := ts.client(t)
	errs := make(chan error, 64)
	for g := 0; g < 16; g++ {
		go func() {
			for i := 0; i < 30; i++ {
				body := fmt.Sprintf("g%d-i%d", g, i)
				resp, err := cl.Post(ts.url("/echo"), "text/plain", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(got) != body {
					errs <- fmt.Errorf("echo %q, got %q", body, got)
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		go func() {
			nc, err := net.Dial("tcp", ts.addr)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			var req strings.Builder
			paths := []string{"/hello", "/nope", "/delay/2", "/stream", "/err/503"}
			for i := 0; i < 12; i++ {
				req.WriteString(get("x", paths[i%len(paths)]))
			}
			go io.WriteString(nc, req.String())
			br := bufio.NewReader(nc)
			for i := 0; i < 12; i++ {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				want := map[string]int{"/nope": 404, "/err/503": 503}[paths[i%len(paths)]]
				if want == 0 {
					want = 200
				}
				if resp.StatusCode != want {
					errs <- fmt.Errorf("pipelined %s: %d", paths[i%len(paths)], resp.StatusCode)
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < 24; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestClientGoneMidStreamIsNotABackendFailure: when the client leaves while a long
// response streams, the failed socket write is the client's doing and must not be
// logged as a backend failure.
func TestClientGoneMidStreamIsNotABackendFailure(t *testing.T) {
	var logs lockedBuffer
	b := newFakeBackend()
	writes := make(chan error, 1)
	b.handle(t, "GET", "/forever", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		if err := w.WriteHead(200, nil, -1); err != nil {
			return err
		}
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for i := 0; i < 10000; i++ {
			if err := w.WriteBody(chunk); err != nil {
				writes <- err
				return err // what the dispatcher returns when the writer fails
			}
		}
		writes <- nil
		return nil
	})
	ts := startServer(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, b)
	rc := ts.dial(t)
	rc.send(get("x", "/forever"))
	if _, err := rc.br.Peek(1); err != nil {
		t.Fatal(err)
	}
	rc.nc.Close()
	select {
	case err := <-writes:
		if err == nil {
			t.Fatal("640 MiB written to a closed connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream never failed after the client left")
	}
	waitFor(t, "connection cleanup", func() bool { return ts.srv.numConns() == 0 })
	for _, l := range logs.lines() {
		if strings.Contains(l, "backend failed mid-response") {
			t.Errorf("client disconnect logged as a backend failure: %s", l)
		}
	}
}

// TestIdleTimeoutCountsFromTheLastResponse: the idle deadline armed before a
// request is left in place while it is served (armReadLocked); when it passes
// it must not close a connection whose real idle time, counted from its last
// response, has not run out.
func TestIdleTimeoutCountsFromTheLastResponse(t *testing.T) {
	const idle = time.Second
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{IdleTimeout: idle}, b)
	rc := ts.dial(t)
	rc.send(get("x", "/hello")) // the accept armed idle from t=0
	rc.read("GET")
	time.Sleep(600 * time.Millisecond)
	rc.send(get("x", "/hello"))
	rc.read("GET")
	answered := time.Now()
	time.Sleep(600 * time.Millisecond) // past the first deadline, not the second
	if el := time.Since(answered); el >= idle-150*time.Millisecond {
		t.Skipf("this machine slept %v instead of 600ms: too slow to tell the two deadlines apart", el)
	}
	rc.send(get("x", "/hello"))
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("third request: %d %q", resp.StatusCode, body)
	}
	start := time.Now()
	rc.expectEOF()
	if el := time.Since(start); el < idle-200*time.Millisecond {
		t.Fatalf("closed %v after the last response; the idle timeout is %v", el, idle)
	}
}

// TestWriteTimeout: a client that stops reading is cut off once a write has
// blocked for WriteTimeout; the backend's write fails, and the connection closes.
func TestWriteTimeout(t *testing.T) {
	const wt = 300 * time.Millisecond
	piece := make([]byte, 256<<10)
	werr := make(chan error, 1)
	b := newFakeBackend()
	b.handle(t, "GET", "/flood", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		if err := w.WriteHead(200, nil, -1); err != nil {
			werr <- err
			return err
		}
		for i := 0; i < 1024; i++ { // 256 MiB: far more than socket buffers hold
			if err := w.WriteBody(piece); err != nil {
				werr <- err
				return err
			}
		}
		werr <- nil
		return nil
	})
	ts := startServer(t, Config{WriteTimeout: wt}, b)
	rc := ts.dial(t)
	rc.send(get("x", "/flood"))
	start := time.Now()
	select {
	case err := <-werr:
		if err == nil {
			t.Fatal("256 MiB went to a client that reads nothing")
		}
		if el := time.Since(start); el < wt {
			t.Fatalf("the write failed after %v, before WriteTimeout (%v): %v", el, wt, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write to a client that reads nothing never timed out")
	}
	rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, rc.nc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading what was sent: %v", err)
	}
}

// staleWriteConn makes its first Write stop halfway with the deadline error,
// as a write deadline armed for an earlier write and passing during this one
// does (bounded leaves such a deadline in place).
type staleWriteConn struct {
	net.Conn
	tripped   atomic.Bool
	deadlines atomic.Int32 // SetWriteDeadline calls
}

func (c *staleWriteConn) Write(b []byte) (int, error) {
	if len(b) > 1 && c.tripped.CompareAndSwap(false, true) {
		n, err := c.Conn.Write(b[:len(b)/2])
		if err != nil {
			return n, err
		}
		return n, os.ErrDeadlineExceeded
	}
	return c.Conn.Write(b)
}

func (c *staleWriteConn) SetWriteDeadline(t time.Time) error {
	c.deadlines.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

type staleWriteListener struct {
	net.Listener
	conns chan *staleWriteConn
}

func (l *staleWriteListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &staleWriteConn{Conn: nc}
	l.conns <- c
	return c, nil
}

// TestStaleWriteDeadlineDoesNotCutAWrite: a write that fails on the deadline
// before its own WriteTimeout has run out goes on, with the deadline re-armed,
// and the response arrives whole: for a one-write response and for a writev.
func TestStaleWriteDeadlineDoesNotCutAWrite(t *testing.T) {
	vec := strings.Join(vecPieces[0], "") + strings.Join(vecPieces[1], "")
	for path, want := range map[string]string{"/hello": "hello", "/vec/length": vec} {
		t.Run(path, func(t *testing.T) {
			b, _, _ := testBackend(t)
			sl := &staleWriteListener{conns: make(chan *staleWriteConn, 1)}
			ts := startServerOn(t, Config{}, b, func(l net.Listener) net.Listener { sl.Listener = l; return sl })
			rc := ts.dial(t)
			sc := <-sl.conns

			rc.send(get("x", path))
			if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != want {
				t.Fatalf("after a stale deadline: %d, %d body bytes, want 200 and %d", resp.StatusCode, len(body), len(want))
			}
			if !sc.tripped.Load() {
				t.Fatal("the stale deadline was never simulated")
			}
			if n := sc.deadlines.Load(); n != 2 {
				t.Fatalf("%d SetWriteDeadline calls, want 2 (armed once, re-armed once)", n)
			}
			rc.send(get("x", path)) // the connection is still good, and costs no re-arm
			if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != want {
				t.Fatalf("next request: %d, %d body bytes", resp.StatusCode, len(body))
			}
			if n := sc.deadlines.Load(); n != 2 {
				t.Fatalf("%d SetWriteDeadline calls after a second response, want still 2", n)
			}
		})
	}
}

// TestPipelinedPastMaxPipelined: pipelined requests well past MaxPipelined in
// one write, a large body among them, are all answered in order (the reader
// stops at a full queue and goes on as it drains); then a request after a
// pause, and the idle close.
func TestPipelinedPastMaxPipelined(t *testing.T) {
	b, _, _ := testBackend(t)
	ts := startServer(t, Config{MaxPipelined: 2, IdleTimeout: 300 * time.Millisecond}, b)
	rc := ts.dial(t)
	body := strings.Repeat("0123456789abcdef", 200<<10/16)
	var all string
	var want []string
	for i := range 12 {
		switch i {
		case 0:
			all += get("x", "/delay/30") // holds the queue while the rest arrive
			want = append(want, "delay 30")
		case 6:
			all += fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			want = append(want, body)
		default:
			all += get("x", fmt.Sprintf("/users/%d", i))
			want = append(want, "user")
		}
	}
	rc.send(all)
	for i, w := range want {
		method := "GET"
		if i == 6 {
			method = "POST"
		}
		if resp, got := rc.read(method); resp.StatusCode != 200 || got != w {
			t.Fatalf("response %d: %d, %d bytes, want 200 and %d", i, resp.StatusCode, len(got), len(w))
		}
	}
	time.Sleep(50 * time.Millisecond) // the reader is waiting for input
	rc.send(get("x", "/hello"))
	if resp, got := rc.read("GET"); resp.StatusCode != 200 || got != "hello" {
		t.Fatalf("after a pause: %d %q", resp.StatusCode, got)
	}
	rc.expectEOF() // idle timeout
}
