package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
)

// TestContentLengthNotPlainDecimal: a Content-Length that is not one plain
// decimal on one line is answered 400, the connection closed, and nothing
// reaches the backend, not even for a list of equal values, which RFC 9110
// would let a server fold (issue 18).
func TestContentLengthNotPlainDecimal(t *testing.T) {
	b, rec, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	for _, cl := range []string{
		"Content-Length: 5, 5",
		"Content-Length: 5,5",
		"Content-Length: 3, 5",
		"Content-Length: 5 5",
		"Content-Length: +5",
		"Content-Length: -5",
		"Content-Length: 5\r\nContent-Length: 5",
		"Content-Length: 5\r\nX-Other: y\r\ncontent-length: 5",
	} {
		t.Run(cl, func(t *testing.T) {
			rc := ts.dial(t)
			rc.send("POST /echo HTTP/1.1\r\nHost: x\r\n" + cl + "\r\n\r\nhello" + get("x", "/hello"))
			resp, _ := rc.read("POST")
			if resp.StatusCode != 400 || !resp.Close {
				t.Fatalf("got %d close %v, want 400 close", resp.StatusCode, resp.Close)
			}
			rc.expectEOF()
		})
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.heads) != 0 {
		t.Fatalf("the backend saw %d requests, want 0", len(rec.heads))
	}
}

// pipeListener hands the Server the server ends of net.Pipe connections. A
// pipe delivers each Write to the reader as it was written, so a client
// writing one byte at a time makes every server read return one byte,
// whatever the scheduling: a trickle without wall-clock timing. Its
// connections are not sockets, so every engine serves them as netpoll does
// (engine.Engine.Listen): the tests on it check the server above the engine,
// the same under either COVET_TEST_ENGINE.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// dial returns the client end of a new connection to the server.
func (l *pipeListener) dial() net.Conn {
	cli, srv := net.Pipe()
	l.conns <- srv
	return cli
}

// TestBodyTrickleAllocs: a Content-Length body that arrives one byte per
// read costs the reader no allocation per byte. Before issue 18 every such
// read, while more than 64 KiB was still to come, made a fresh 64 KiB body
// buffer (bodyDst): 64 KiB allocated per body byte.
func TestBodyTrickleAllocs(t *testing.T) {
	b, _, _ := testBackend(t)
	l := newPipeListener()
	srv := &Server{Backend: b}
	go srv.Serve(l)
	defer srv.Close()

	const size, trickle = 200 << 10, 20000
	body := make([]byte, size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	nc := l.dial()
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(nc, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size); err != nil {
		t.Fatal(err)
	}
	// The first byte lets the reader take the head and settle into the body.
	if _, err := nc.Write(body[:1]); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 1; i <= trickle; i++ {
		if _, err := nc.Write(body[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	perByte := float64(after.TotalAlloc-before.TotalAlloc) / trickle
	t.Logf("%.1f bytes allocated per trickled body byte", perByte)
	if perByte > 64 {
		t.Errorf("%.1f bytes allocated per body byte read one at a time, want at most 64", perByte)
	}
	if _, err := nc.Write(body[trickle+1:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("echo: %d, %d bytes, want 200 and the %d bytes sent", resp.StatusCode, len(got), size)
	}
}

// startWithHeld serves b with cfg on a pipeListener, the response bytes held
// read from held (what dispatch.HeldResponseBytes counts for a real backend).
func startWithHeld(t *testing.T, cfg Config, b Backend, held *atomic.Int64, tune func(*Server)) (*Server, *pipeListener) {
	t.Helper()
	l := newPipeListener()
	srv := &Server{Config: cfg, Backend: b, held: held.Load}
	if tune != nil {
		tune(srv)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
		waitFor(t, "connections to close", func() bool { return srv.numConns() == 0 })
	})
	return srv, l
}

// TestResponseBudgetShedsSlowReaders: when the response bytes held pass
// MaxBufferedResponseBytes, the connections whose writes have been blocked
// longest are closed until enough is freed, and no more; each is counted.
func TestResponseBudgetShedsSlowReaders(t *testing.T) {
	var held atomic.Int64
	b := newFakeBackend()
	piece := make([]byte, 64<<10)
	b.handle(t, "GET", "/hold", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		// What a worker's response does: hold a window while the client
		// takes its body.
		held.Add(dispatch.MaxResponseHeld)
		defer held.Add(-dispatch.MaxResponseHeld)
		if err := w.WriteHead(200, nil, -1); err != nil {
			return err
		}
		for range 512 { // 32 MiB: more than a client that reads nothing takes
			if err := w.WriteBody(piece); err != nil {
				return err
			}
		}
		return nil
	})
	m, reg := newMetrics(t)
	// Two windows do not fit; shedding the older one is enough.
	srv, l := startWithHeld(t, Config{MaxBufferedResponseBytes: dispatch.MaxResponseHeld * 3 / 2, Metrics: m}, b, &held, nil)
	stuck := func(n int) func() bool {
		return func() bool {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			k := 0
			for c := range srv.conns {
				if c.writeStart.Load() != 0 {
					k++
				}
			}
			return k == n
		}
	}
	var readers []*bufio.Reader
	for i := range 2 {
		nc := l.dial()
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		go io.WriteString(nc, get("x", "/hold")) // a pipe write waits for the server to read it
		readers = append(readers, bufio.NewReaderSize(nc, 16))
		if _, err := readers[i].Peek(1); err != nil {
			t.Fatalf("client %d: no response: %v", i, err)
		}
		waitFor(t, "the client's write to block", stuck(i+1)) // neither reads its body
	}
	waitFor(t, "the older slow reader to be shed", func() bool {
		return metricValue(t, reg, "covet_slow_readers_shed_total", nil) == 1
	})
	if n, _ := io.Copy(io.Discard, readers[0]); n >= 32<<20 {
		t.Errorf("the shed client got the whole body")
	}
	waitFor(t, "its response to let go", func() bool { return held.Load() == dispatch.MaxResponseHeld })
	time.Sleep(200 * time.Millisecond) // twenty readings of the bytes held
	if v := metricValue(t, reg, "covet_slow_readers_shed_total", nil); v != 1 {
		t.Errorf("%v slow readers shed, want 1: the bytes held are within the budget again", v)
	}
	if !stuck(1)() {
		t.Error("the younger slow reader's write is no longer blocked")
	}
}

// TestResponseBudgetWait: while the response bytes held are over the
// budget, a new request waits; it is served when they fall back within it,
// and answered 503 with Retry-After, before reaching the backend, when they
// do not within ResponseBudgetWait.
func TestResponseBudgetWait(t *testing.T) {
	for _, tc := range []struct {
		name string
		wait time.Duration
	}{{"shed", 100 * time.Millisecond}, {"served", time.Minute}} {
		t.Run(tc.name, func(t *testing.T) {
			var held atomic.Int64
			held.Store(dispatch.MaxResponseHeld + 1)
			b, rec, _ := testBackend(t)
			m, reg := newMetrics(t)
			_, l := startWithHeld(t, Config{MaxBufferedResponseBytes: dispatch.MaxResponseHeld, ResponseBudgetWait: tc.wait, Metrics: m}, b, &held, nil)
			nc := l.dial()
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			go io.WriteString(nc, get("x", "/hello"))
			waitFor(t, "the request to wait", func() bool {
				return metricValue(t, reg, "covet_response_budget_waits_total", nil) == 1
			})
			if tc.wait == time.Minute {
				held.Store(0)
			}
			resp, err := http.ReadResponse(bufio.NewReader(nc), &http.Request{Method: "GET"})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if tc.wait == time.Minute {
				if resp.StatusCode != 200 || string(body) != "hello" {
					t.Fatalf("once the bytes held fell: %d %q, want 200 hello", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("got %d Retry-After %q, want 503 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			if got := metricValue(t, reg, "covet_response_budget_shed_total", nil); got != 1 {
				t.Errorf("covet_response_budget_shed_total = %v, want 1", got)
			}
			rec.mu.Lock()
			n := len(rec.heads)
			rec.mu.Unlock()
			if n != 0 {
				t.Errorf("the backend saw %d requests, want 0", n)
			}
		})
	}
}

// TestMinWriteRate: a client that reads a response a little at a time, so
// that no single write ever waits WriteTimeout, is cut once it falls behind
// MinWriteRate after WriteTimeout of grace; a response that the backend
// produces slowly, to a client that reads at once, is not, however long it
// takes. net.Pipe has no socket buffers: every write waits for the client.
func TestMinWriteRate(t *testing.T) {
	const pieces, size = 64, 4 << 10
	b := newFakeBackend()
	stream := func(pause time.Duration, n, size int) handlerFunc {
		return func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
			if err := w.WriteHead(200, nil, -1); err != nil {
				return err
			}
			for range n {
				time.Sleep(pause)
				if err := w.WriteBody(bytes.Repeat([]byte("x"), size)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	b.handle(t, "GET", "/big", 0, stream(0, pieces, size))
	b.handle(t, "GET", "/trickle", 0, stream(80*time.Millisecond, 5, 200))
	m, reg := newMetrics(t)
	l := newPipeListener()
	srv := &Server{Config: Config{WriteTimeout: 300 * time.Millisecond, MinWriteRate: 200 << 10, Metrics: m}, Backend: b}
	go srv.Serve(l)
	defer srv.Close()

	// The creeping reader: 1 KiB every 20 ms, about 50 KiB/s.
	nc := l.dial()
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(nc, get("x", "/big"))
	got := 0
	buf := make([]byte, 1<<10)
	for {
		n, err := nc.Read(buf)
		got += n
		if err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got >= pieces*size {
		t.Fatalf("the creeping client read %d bytes, the whole response: not cut", got)
	}
	if v := metricValue(t, reg, "covet_slow_writes_total", nil); v != 1 {
		t.Errorf("covet_slow_writes_total = %v, want 1", v)
	}

	// The slow backend: 5 pieces 80 ms apart, past the 300 ms of grace.
	nc = l.dial()
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(nc, get("x", "/trickle"))
	resp, err := http.ReadResponse(bufio.NewReader(nc), &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || len(body) != 1000 {
		t.Fatalf("slow stream: %d bytes, %v; want 1000", len(body), err)
	}
}

// TestMemoryReleasedAfterBurst: once a burst that held response memory
// has ended, the server returns freed memory to the system once, and not
// again until another burst; not while the burst lasts, and not without
// one.
func TestMemoryReleasedAfterBurst(t *testing.T) {
	var held atomic.Int64
	b, _, _ := testBackend(t)
	m, reg := newMetrics(t)
	srv, _ := startWithHeld(t, Config{Metrics: m}, b, &held, func(s *Server) {
		s.releaseEvery, s.releaseMin = 10*time.Millisecond, 1<<20
	})
	releases := func() float64 { return metricValue(t, reg, "covet_memory_releases_total", nil) }
	ticks := func() { time.Sleep(100 * time.Millisecond) } // ten periods

	ticks()
	if n := releases(); n != 0 {
		t.Fatalf("%v releases with no burst", n)
	}
	held.Store(4 << 20)
	waitFor(t, "the burst to be seen", func() bool { return srv.heldPeak.Load() == 4<<20 })
	ticks()
	if n := releases(); n != 0 {
		t.Fatalf("%v releases while the burst lasts", n)
	}
	held.Store(0)
	waitFor(t, "a release after the burst", func() bool { return releases() == 1 })
	ticks()
	if n := releases(); n != 1 {
		t.Fatalf("%v releases after one burst, want 1", n)
	}
}

// TestMaxConnections: at MaxConnections, a new connection is served and
// the longest-idle keep-alive connection is closed for it; when every
// connection is busy, a new one is closed at once. Each is counted.
func TestMaxConnections(t *testing.T) {
	const max = 8
	b, _, pr := testBackend(t)
	m, reg := newMetrics(t)
	ts := startServer(t, Config{MaxConnections: max, Metrics: m}, b)
	allIdle := func(n int) func() bool {
		return func() bool {
			ts.srv.mu.Lock()
			defer ts.srv.mu.Unlock()
			idle := 0
			for c := range ts.srv.conns {
				if _, ok := c.idleSince(); ok {
					idle++
				}
			}
			return idle == n
		}
	}
	var rcs []*rawConn
	for range max {
		rc := ts.dial(t)
		rc.send(get("x", "/hello"))
		rc.read("GET")
		rcs = append(rcs, rc)
	}
	waitFor(t, "every connection to be idle", allIdle(max))

	rc := ts.dial(t)
	rc.send(get("x", "/hello"))
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("new connection at the limit: %d %q", resp.StatusCode, body)
	}
	rcs[0].expectEOF() // the longest idle
	rcs = append(rcs[1:], rc)
	for i, rc := range rcs[:len(rcs)-1] {
		rc.send(get("x", "/hello"))
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "hello" {
			t.Fatalf("idle connection %d after the shed: %d %q", i+1, resp.StatusCode, body)
		}
	}
	if v := metricValue(t, reg, "covet_connections_shed_total", map[string]string{"reason": "idle"}); v != 1 {
		t.Errorf("idle sheds = %v, want 1", v)
	}

	// Every connection busy: a new one is refused.
	for _, rc := range rcs {
		rc.send(get("x", "/block"))
		<-pr.started
	}
	extra := ts.dial(t)
	extra.send(get("x", "/hello"))
	extra.expectEOF()
	if v := metricValue(t, reg, "covet_connections_shed_total", map[string]string{"reason": "refused"}); v != 1 {
		t.Errorf("refused = %v, want 1", v)
	}
}

// TestLongestIdleSample: at MaxConnections, admit's scan (longestIdle), which
// holds s.mu, finds the longest-idle connection exactly among a few idle ones,
// and among many stops after idleSample idle ones, or after maxScan busy ones,
// so that an accept at the limit costs no more with 500,000 connections than
// with 5,000 (a full scan took 190 ms per accept at 500,000).
func TestLongestIdleSample(t *testing.T) {
	now := time.Now()
	conns := func(n int, idle bool) []*conn { // the later, the longer idle
		cs := make([]*conn, n)
		for i := range cs {
			cs[i] = &conn{readerIdle: idle, idleAt: now.Add(-time.Duration(i) * time.Second)}
		}
		return cs
	}
	scan := func(cs []*conn) (victim *conn, seen int) {
		victim = longestIdle(func(yield func(*conn) bool) {
			for _, c := range cs {
				seen++
				if !yield(c) {
					return
				}
			}
		})
		return victim, seen
	}
	few := append(conns(100, false), conns(3, true)...)
	if v, seen := scan(few); v != few[102] || seen != len(few) {
		t.Errorf("3 idle behind 100 busy: got %p after %d, want the longest idle %p after all %d", v, seen, few[102], len(few))
	}
	many := conns(4*idleSample, true)
	if v, seen := scan(many); v != many[idleSample-1] || seen != idleSample {
		t.Errorf("%d idle: got %p after %d, want the longest idle of the first %d after %d", len(many), v, seen, idleSample, idleSample)
	}
	busy := append(conns(2*maxScan, false), conns(1, true)...)
	if v, seen := scan(busy); v != nil || seen != maxScan {
		t.Errorf("%d busy, then one idle: got %p after %d, want none after %d", 2*maxScan, v, seen, maxScan)
	}
}
