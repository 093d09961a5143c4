package server

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"golang.org/x/sys/unix"
)

// idleCost is what idle keep-alive connections cost the server's process.
type idleCost struct {
	bytes      float64 // heap and stack bytes in use, per connection
	goroutines float64 // goroutines, per connection
	// parks: the engine's Conn has ParkRead (io_uring), so an idle
	// connection keeps no goroutine at all.
	parks bool
}

// measureIdle opens n keep-alive connections to an in-process Server, makes
// one request on each, waits until every one is idle (answered, waiting for
// the next request, its writer stopped after writerLinger) and returns what they cost: HeapInuse+StackInuse and
// goroutines over a baseline taken before they were opened, after two
// collections each time. The client side is raw blocking sockets, which cost
// the Go heap nothing.
func measureIdle(tb testing.TB, n int) idleCost {
	b := newFakeBackend()
	b.handle(tb, "GET", "/hello", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 200, "hello")
	})
	ts := startServer(tb, Config{}, b)
	ap, err := net.ResolveTCPAddr("tcp", ts.addr)
	if err != nil {
		tb.Fatal(err)
	}
	sa := &unix.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	req := []byte(get("x", "/hello"))
	resp := make([]byte, 512)
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	dial := func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			tb.Fatal(err)
		}
		fds = append(fds, fd)
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
		if err := unix.Connect(fd, sa); err != nil {
			tb.Fatal(err)
		}
		if _, err := unix.Write(fd, req); err != nil {
			tb.Fatal(err)
		}
		got := 0
		for !bytes.HasSuffix(resp[:got], []byte("\r\n\r\nhello")) {
			k, err := unix.Read(fd, resp[got:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil || k == 0 {
				tb.Fatalf("read response: %d %v", k, err)
			}
			got += k
		}
	}
	allIdle := func() bool {
		ts.srv.mu.Lock()
		defer ts.srv.mu.Unlock()
		idle := 0
		for c := range ts.srv.conns {
			_, ok := c.idleSince()
			c.mu.Lock()
			writing := c.writing
			c.mu.Unlock()
			if ok && !writing {
				idle++
			}
		}
		return idle == len(fds)
	}
	settle := func() (runtime.MemStats, int) {
		time.Sleep(writerLinger)
		waitFor(tb, "every connection to be idle", allIdle)
		// A stopped writer, or a reader that has moved to a new goroutine,
		// may take a moment to return: wait until the goroutine count has
		// stayed put for 100 ms (at most 5 s).
		g, same := runtime.NumGoroutine(), 0
		for end := time.Now().Add(5 * time.Second); same < 5 && time.Now().Before(end); {
			time.Sleep(20 * time.Millisecond)
			if n := runtime.NumGoroutine(); n == g {
				same++
			} else {
				g, same = n, 0
			}
		}
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms, runtime.NumGoroutine()
	}

	dial() // warm: the first connection's one-off costs go in the baseline
	ms0, g0 := settle()
	for range n {
		dial()
	}
	ms1, g1 := settle()
	parks, readsIdle := false, true
	ts.srv.mu.Lock()
	for c := range ts.srv.conns {
		parks, readsIdle = c.pr != nil, readsIdle && c.ri != nil
	}
	ts.srv.mu.Unlock()
	if !readsIdle { // both engines' sockets wait for bytes holding no read buffer
		tb.Fatalf("a %s connection has no ReadIdle", ts.srv.EngineName())
	}
	tb.Logf("%d idle connections: heap %+d B, stacks %+d B each", n,
		(int64(ms1.HeapInuse)-int64(ms0.HeapInuse))/int64(n), (int64(ms1.StackInuse)-int64(ms0.StackInuse))/int64(n))
	runtime.KeepAlive(fds)
	used := func(ms *runtime.MemStats) float64 { return float64(ms.HeapInuse + ms.StackInuse) }
	return idleCost{
		bytes:      (used(&ms1) - used(&ms0)) / float64(n),
		goroutines: float64(g1-g0) / float64(n),
		parks:      parks,
	}
}

// TestIdleConnResumes: a connection idle past writerLinger (its writer
// stopped, its reader on a new goroutine or, on io_uring, parked with the
// engine) serves its next requests, pipelined ones too, and is still closed
// at IdleTimeout.
func TestIdleConnResumes(t *testing.T) {
	b := newFakeBackend()
	b.handle(t, "GET", "/hello", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 200, "hello")
	})
	ts := startServer(t, Config{IdleTimeout: writerLinger + 1500*time.Millisecond}, b)
	rc := ts.dial(t)
	for round := range 2 {
		rc.send(get("x", "/hello"))
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "hello" {
			t.Fatalf("round %d: %d %q", round, resp.StatusCode, body)
		}
		time.Sleep(writerLinger + 300*time.Millisecond) // the writer stops; the reader moves on
	}
	rc.send(get("x", "/hello") + get("x", "/hello"))
	for i := range 2 {
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "hello" {
			t.Fatalf("pipelined %d after idle: %d %q", i, resp.StatusCode, body)
		}
	}
	start := time.Now()
	rc.expectEOF()
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("closed after %v idle, want IdleTimeout (%v)", waited, writerLinger+1500*time.Millisecond)
	}
}

// idleConnsFor bounds n by the open-file limit: each connection takes two
// descriptors in this process, its client's and the server's.
func idleConnsFor(tb testing.TB, n int) int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		tb.Fatal(err)
	}
	if m := int(rl.Cur-256) / 2; n > m {
		n = m
	}
	if n < 100 {
		tb.Skipf("open-file limit %d is too low", rl.Cur)
	}
	return n
}

// BenchmarkIdleConns reports what an idle keep-alive connection costs the
// gateway: heap and stack bytes, and goroutines. Run it with -benchtime=1x.
func BenchmarkIdleConns(b *testing.B) {
	n := idleConnsFor(b, 5000)
	var c idleCost
	for b.Loop() {
		c = measureIdle(b, n)
	}
	b.ReportMetric(c.bytes, "B/idle-conn")
	b.ReportMetric(c.goroutines, "goroutines/idle-conn")
	b.ReportMetric(float64(n), "conns")
}

// TestIdleConnCost: an idle keep-alive connection keeps one goroutine, its
// reader (none on an engine that parks it: io_uring), and neither a read
// buffer nor an exchange: well under the 22 KiB it cost with its buffer and
// a parked writer.
func TestIdleConnCost(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: memory measurement skipped")
	}
	c := measureIdle(t, idleConnsFor(t, 500))
	want := 1.0 // the reader, waiting
	if c.parks {
		want = 0 // parked with the engine
	}
	if c.goroutines != want {
		t.Errorf("%.2f goroutines per idle connection, want %v", c.goroutines, want)
	}
	const wantBytes = 16 << 10
	if !raceEnabled && c.bytes > float64(wantBytes) { // the race detector's stacks are larger
		t.Errorf("%.0f bytes per idle connection, want under %d", c.bytes, wantBytes)
	}
}

// TestWriterStopsWhenIdle: the writer returns once it has had nothing to
// answer for writerLinger, and the next requests, one and then two
// pipelined, start another.
func TestWriterStopsWhenIdle(t *testing.T) {
	b := newFakeBackend()
	b.handle(t, "GET", "/hello", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 200, "hello")
	})
	ts := startServer(t, Config{}, b)
	writing := func() (n int) {
		ts.srv.mu.Lock()
		defer ts.srv.mu.Unlock()
		for c := range ts.srv.conns {
			c.mu.Lock()
			if c.writing {
				n++
			}
			c.mu.Unlock()
		}
		return n
	}
	rc := ts.dial(t)
	for round, reqs := range []int{1, 1, 2} {
		for range reqs {
			rc.send(get("x", "/hello"))
		}
		for range reqs {
			if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "hello" {
				t.Fatalf("round %d: %d %q", round, resp.StatusCode, body)
			}
		}
		if n := writing(); n != 1 {
			t.Fatalf("round %d: %d writers just after the answer, want 1 (it lingers)", round, n)
		}
		waitFor(t, "the idle writer to stop", func() bool { return writing() == 0 })
	}
}
