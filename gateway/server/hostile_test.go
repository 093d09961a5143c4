package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"
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
// whatever the scheduling: a trickle without wall-clock timing.
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
