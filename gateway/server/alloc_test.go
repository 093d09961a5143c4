package server

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/covetpy/covetpy/gateway/dispatch"
)

// keepAliveLoop sends one request at a time on one keep-alive connection
// and reads each fixed-size response.
func keepAliveLoop(tb testing.TB) (step func(), stop func()) {
	return keepAliveLoopConfig(tb, Config{})
}

func keepAliveLoopConfig(tb testing.TB, cfg Config) (step func(), stop func()) {
	req := []byte("GET /users/bob/posts/42?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	return requestLoop(tb, cfg, req, []byte("hello, world"))
}

// requestLoop is keepAliveLoop with any request to /users/{id}/posts/{post}
// (GET or POST, the request body is dropped) answered with body.
func requestLoop(tb testing.TB, cfg Config, req, body []byte) (step func(), stop func()) {
	b := newFakeBackend()
	h := func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		if err := w.WriteHead(200, nil, int64(len(body))); err != nil {
			return err
		}
		return w.WriteBody(body)
	}
	b.handle(tb, "GET", "/users/{id}/posts/{post:int}", 0, h)
	b.handle(tb, "POST", "/users/{id}/posts/{post:int}", 0, h)
	ts := startServer(tb, cfg, b)
	nc := ts.dial(tb).nc
	if _, err := nc.Write(req); err != nil {
		tb.Fatal(err)
	}
	// Learn the response size from the first one (it is constant: fixed
	// Date width, 16-digit request ids): its head, then the body's length.
	var first []byte
	buf := make([]byte, 4096)
	end := -1 // of the head, at its blank line
	for end < 0 {
		n, err := nc.Read(buf)
		if err != nil {
			tb.Fatal(err)
		}
		first = append(first, buf[:n]...)
		end = bytes.Index(first, []byte("\r\n\r\n"))
	}
	resp := make([]byte, end+4+len(body))
	if _, err := io.ReadFull(nc, resp[copy(resp, first):]); err != nil {
		tb.Fatal(err)
	}
	step = func() {
		if _, err := nc.Write(req); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(nc, resp); err != nil {
			tb.Fatal(err)
		}
	}
	return step, func() { nc.Close() }
}

// TestSteadyStateAllocs: a routed keep-alive request with path parameters
// costs the front end no allocation once the connection is warm.
func TestSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: allocation count skipped")
	}
	step, stop := keepAliveLoop(t)
	defer stop()
	expectNoAllocs(t, "keep-alive request", 500, step)
}

// expectNoAllocs runs step 100 times to warm up, then fails the test if
// it allocates in runs more (client and server together); under the race
// detector it only reports the count.
func expectNoAllocs(t *testing.T, what string, runs int, step func()) {
	t.Helper()
	for i := 0; i < 100; i++ {
		step()
	}
	allocs := testing.AllocsPerRun(runs, step)
	t.Logf("%.2f allocations per %s (client and server)", allocs, what)
	if raceEnabled {
		// Read buffers and exchanges come from sync.Pools, which drop
		// items at random under the race detector.
		t.Logf("race detector: the allocation count is not checked")
		return
	}
	if allocs > 0.1 {
		t.Fatalf("%.2f allocations per %s, want 0", allocs, what)
	}
}

// TestSteadyStateAllocsPostBody: a 64 KiB request body, most of it read
// straight into the exchange's kept body buffer, costs no allocation either.
func TestSteadyStateAllocsPostBody(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: allocation count skipped")
	}
	req := append([]byte("POST /users/bob/posts/42 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 65536\r\n\r\n"),
		make([]byte, 65536)...)
	step, stop := requestLoop(t, Config{}, req, []byte("hello, world"))
	defer stop()
	expectNoAllocs(t, "64 KiB POST", 300, step)
}

// TestSteadyStateAllocsMidBody: a 10 KiB response body, over smallChunk, goes
// out from the backend's memory behind the buffered head in one vectored
// write, at no allocation.
func TestSteadyStateAllocsMidBody(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: allocation count skipped")
	}
	req := []byte("GET /users/bob/posts/42 HTTP/1.1\r\nHost: example.com\r\n\r\n")
	step, stop := requestLoop(t, Config{}, req, bytes.Repeat([]byte("x"), 10<<10))
	defer stop()
	expectNoAllocs(t, "10 KiB response", 300, step)
}

func BenchmarkKeepAlive(b *testing.B) {
	step, stop := keepAliveLoop(b)
	defer stop()
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
}
