package engine

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// connPair is a loopback TCP connection accepted through e: the server
// side as a Conn (with a small send buffer, so writes fill it) and the plain
// client side (with a small receive buffer).
func connPair(t *testing.T, e Engine) (Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := e.Listen(ln)
	defer el.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc.(*net.TCPConn).SetReadBuffer(16 << 10)
	nc, err := el.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s, ok := nc.(Conn)
	if !ok {
		t.Fatalf("%s accepted a %T, not a Conn", e.Name(), nc)
	}
	switch c := s.(type) {
	case *sockConn:
		c.SetWriteBuffer(16 << 10)
	case *uconn:
		unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 16<<10)
	default:
		t.Fatalf("%s accepted a %T", e.Name(), nc)
	}
	if got := s.RemoteAddr().String(); got != cc.LocalAddr().String() {
		t.Fatalf("RemoteAddr = %s, want %s", got, cc.LocalAddr())
	}
	t.Cleanup(func() { s.Close(); cc.Close() })
	return s, cc.(*net.TCPConn)
}

// forEachEngine runs f as a subtest per engine. The uring engine must work
// on the machine that runs the tests: a failure to set it up fails them.
func forEachEngine(t *testing.T, f func(t *testing.T, e Engine)) {
	for _, name := range []string{Netpoll, Uring} {
		t.Run(name, func(t *testing.T) {
			e, _, err := New(name)
			if err != nil {
				t.Fatalf("engine %s: %v", name, err)
			}
			t.Cleanup(func() { e.Close() })
			f(t, e)
		})
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// readAllAsync reads everything until EOF on another goroutine, slowly at
// first, so that the writer meets full socket buffers.
func readAllAsync(c net.Conn) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		b, _ := io.ReadAll(c)
		got <- b
	}()
	return got
}

func TestConnReadWrite(t *testing.T) { forEachEngine(t, testConnReadWrite) }

func testConnReadWrite(t *testing.T, e Engine) {
	s, c := connPair(t, e)
	// Read: what the peer sent, a short read for a larger buffer, EOF.
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2*rawMax)
	n, err := s.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if n, err := s.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
	// Write and writeBuffers: a small write, then more than the socket
	// buffers hold (the raw writev meets EAGAIN and waits for room), many
	// small buffers (more than one writev takes), empty ones, and a write
	// over rawMax (the runtime's path).
	want := new(bytes.Buffer)
	got := readAllAsync(c)
	w := func(p []byte) {
		t.Helper()
		if n, err := s.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
		}
		want.Write(p)
	}
	wv := func(ps ...[]byte) {
		t.Helper()
		bufs := net.Buffers(ps)
		total := int64(0)
		for _, p := range ps {
			total += int64(len(p))
			want.Write(p)
		}
		if n, err := s.WriteBuffers(&bufs); n != total || err != nil || len(bufs) != 0 {
			t.Fatalf("WriteBuffers(%d bytes) = %d, %v, %d buffers left", total, n, err, len(bufs))
		}
	}
	w([]byte("HTTP/1.1 200 OK\r\n\r\n"))
	for i := range 4 { // the buffers hold about 64 KiB: these wait for the reader
		wv(pattern(20<<10, byte(i)), nil, pattern(30<<10, 2), pattern(5, 3))
		wv(pattern(rawMax-8, byte(i))) // written in pieces: partial writes within one buffer
	}
	many := make([][]byte, 3*maxIov)
	for i := range many {
		many[i] = pattern(9, byte(i))
	}
	wv(many...)
	w(pattern(rawMax+1, 4))
	wv(pattern(rawMax, 5), pattern(1, 6))
	s.CloseWrite()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer read %d bytes, want %d (or they differ)", len(b), want.Len())
	}
	// EOF once the peer closes.
	c.Close()
	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after peer close = %d, %v; want io.EOF", n, err)
	}
}

func TestConnDeadlinesAndErrors(t *testing.T) { forEachEngine(t, testConnDeadlinesAndErrors) }

func testConnDeadlinesAndErrors(t *testing.T, e Engine) {
	s, c := connPair(t, e)
	// A read deadline ends a read that has nothing to read.
	s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	buf := make([]byte, 64)
	if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	// A write deadline ends a write the peer does not read; what was
	// written is counted and consumed, the rest is left.
	s.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	var bufs net.Buffers
	var n int64
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		bufs = net.Buffers{pattern(rawMax/2, 1), pattern(rawMax/2, 2)}
		n, err = s.WriteBuffers(&bufs)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writeBuffers past deadline: %d, %v", n, err)
	}
	left := int64(0)
	for _, b := range bufs {
		left += int64(len(b))
	}
	if n+left != rawMax {
		t.Fatalf("wrote %d and left %d of %d", n, left, rawMax)
	}
	// A reset from the peer is a read error naming the errno.
	c.SetLinger(0)
	c.Close()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, err = s.Read(buf)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after reset: %v, want ECONNRESET", err)
	}
	// After Close, reads and writes fail with net.ErrClosed.
	s.Close()
	if _, err := s.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestAdvance(t *testing.T) {
	b := func(n int) []byte { return make([]byte, n) }
	bufs := [][]byte{b(3), b(0), b(5), b(2)}
	for _, tc := range []struct {
		off, n   int
		wantLeft int // buffers left
		wantOff  int
	}{
		{0, 0, 4, 0},
		{3, 0, 2, 0}, // nothing written: a written or empty first buffer is skipped
		{0, 2, 4, 2},
		{1, 1, 4, 2}, // a second partial write within the first buffer
		{2, 1, 2, 0}, // the first buffer done, the empty one skipped
		{0, 3, 2, 0},
		{0, 4, 2, 1},
		{1, 6, 2, 4},
		{0, 10, 0, 0},
	} {
		left, off := advance(bufs, tc.off, tc.n)
		if len(left) != tc.wantLeft || off != tc.wantOff {
			t.Errorf("advance(off %d, n %d) = %d buffers, off %d; want %d, %d", tc.off, tc.n, len(left), off, tc.wantLeft, tc.wantOff)
		}
	}
}

func TestWrapConnLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got, ok := Wrap(a).(plainConn); !ok || got.Conn != a {
		t.Fatalf("Wrap(net.Pipe) = %T, want the pipe in a plainConn", got)
	}
}

// TestConnReadIdle: ReadIdle takes a buffer only to read into, gives it
// back before it waits for bytes, returns the one it read into, and reports
// deadlines, EOF and a closed connection like Read, holding no buffer.
func TestConnReadIdle(t *testing.T) { forEachEngine(t, testConnReadIdle) }

func testConnReadIdle(t *testing.T, e Engine) {
	c, cc := connPair(t, e)
	s, ok := c.(interface {
		ReadIdle(get func() []byte, put func([]byte)) ([]byte, int, error)
	})
	if !ok {
		t.Fatalf("the %s engine's Conn has no ReadIdle: its idle connections would keep their read buffer", e.Name())
	}
	var held atomic.Int64 // buffers taken and not given back
	var last []byte
	get := func() []byte {
		held.Add(1)
		last = make([]byte, 16)
		return last
	}
	put := func(b []byte) {
		if &b[0] != &last[0] {
			t.Errorf("put a buffer get did not give")
		}
		held.Add(-1)
	}
	waiting := make(chan int64, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		waiting <- held.Load() // ReadIdle is waiting for bytes by now
		cc.Write([]byte("hello, world and more"))
	}()
	buf, n, err := s.ReadIdle(get, put)
	if h := <-waiting; h != 0 {
		t.Errorf("%d buffers held while waiting for bytes, want 0", h)
	}
	if err != nil || n != 16 || string(buf[:n]) != "hello, world and" || held.Load() != 1 {
		t.Fatalf("ReadIdle = %q, %d, %v with %d held; want the first 16 bytes in get's buffer", buf, n, err, held.Load())
	}
	held.Store(0)
	if buf, n, err = s.ReadIdle(get, put); err != nil || string(buf[:n]) != " more" {
		t.Fatalf("second ReadIdle = %q, %v", buf[:n], err)
	}

	held.Store(0)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	buf, n, err = s.ReadIdle(get, put)
	if !errors.Is(err, os.ErrDeadlineExceeded) || buf != nil || n != 0 || held.Load() != 0 {
		t.Fatalf("past the deadline: %q, %d, %v with %d held; want a deadline error holding none", buf, n, err, held.Load())
	}
	c.SetReadDeadline(time.Time{})

	cc.CloseWrite()
	buf, n, err = s.ReadIdle(get, put)
	if err != io.EOF || buf != nil || n != 0 || held.Load() != 0 {
		t.Fatalf("at EOF: %q, %d, %v with %d held; want io.EOF holding none", buf, n, err, held.Load())
	}
	c.Close()
	if buf, _, err = s.ReadIdle(get, put); !errors.Is(err, net.ErrClosed) || buf != nil || held.Load() != 0 {
		t.Fatalf("closed: %q, %v with %d held; want net.ErrClosed holding none", buf, err, held.Load())
	}
}
