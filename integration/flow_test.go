package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGatewayResponseWindow: a client that reads nothing of a 64 MiB streamed
// response holds up the worker's generator (PROTOCOL.md 2.7) instead of filling the
// gateway's memory; once the client reads, the whole body arrives intact.
func TestGatewayResponseWindow(t *testing.T) {
	g := startGateway(t, "gwapp", 1)
	const mb, chunk = 64, 64 << 10
	rss0 := vmRSS(t, g.cmd.Process.Pid)
	conn := dialSmallWindow(t, g.addr)
	if _, err := fmt.Fprintf(conn, "GET /flood?mb=%d HTTP/1.1\r\nHost: x\r\n\r\n", mb); err != nil {
		t.Fatal(err)
	}
	produced := waitStalled(t, g, mb<<20/chunk)
	// What is held: the kernel's socket buffers (loopback send buffers grow to 4 MiB),
	// the window of 2 MiB and a chunk or two. Without flow control all 64 MiB would
	// have been produced, most of it into the gateway's memory.
	held := produced * chunk
	grown := vmRSS(t, g.cmd.Process.Pid) - rss0
	t.Logf("stalled after %d KiB produced; gateway RSS grew by %d KiB", held>>10, grown>>10)
	if held > 12<<20 {
		t.Errorf("%d MiB produced for a client that reads nothing; want the window and socket buffers only", held>>20)
	}
	if grown > 24<<20 {
		t.Errorf("gateway RSS grew by %d MiB while holding a stalled response", grown>>20)
	}
	// Now read it all.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, chunk)
	for i := 0; i < mb<<20/chunk; i++ {
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if buf[0] != byte(i%251) || buf[chunk-1] != byte(i%251) {
			t.Fatalf("chunk %d holds %d..%d, want %d", i, buf[0], buf[chunk-1], i%251)
		}
	}
	if n, err := io.Copy(io.Discard, resp.Body); n != 0 || err != nil {
		t.Errorf("after %d MiB: %d more bytes, %v", mb, n, err)
	}
	if st, body, _ := g.get("/flood/progress"); st != 200 || body != strconv.Itoa(mb<<20/chunk) {
		t.Errorf("/flood/progress = %d %q after the whole body", st, body)
	}
}

// TestGatewayWindowOverrunEndsTheSession: a worker that sends more response body than
// its window allows loses its session; its client sees the response cut off, and the
// other worker keeps serving.
func TestGatewayWindowOverrunEndsTheSession(t *testing.T) {
	sock := t.TempDir() + "/control.sock"
	g := startGateway(t, "gwapp", 1, "--control-socket", sock)
	greedyDone := startShmWorker(t, g, "rude_shm.py", sock, 2, "window")
	// Requests go round the two workers; the greedy one answers its first with a
	// streamed body past its window. Its client stops reading at the head, so the
	// gateway's grants stop once the socket is full and the overrun is certain
	// (the worker tops its body up past every grant it sees).
	cut := 0
	for i := 0; i < 6; i++ {
		conn := dialSmallWindow(t, g.addr)
		if _, err := fmt.Fprint(conn, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.ContentLength < 0 { // the greedy worker's stream
			g.waitEvicted(greedyDone, "greedy", "overran its response window")
			if _, err := io.Copy(io.Discard, resp.Body); err == nil {
				t.Errorf("request %d: the overrun stream ended cleanly; want it cut", i)
			}
			cut++
			conn.Close()
			continue
		}
		b, err := io.ReadAll(resp.Body)
		conn.Close()
		if err != nil || resp.StatusCode != 200 || string(b) != "hello" {
			t.Errorf("request %d: %d %q %v", i, resp.StatusCode, b, err)
		}
	}
	if cut != 1 {
		t.Errorf("%d responses cut off; want exactly one (the greedy worker's)", cut)
	}
}

// TestGatewayStalledStreamEndsWithItsClient: a client that leaves while its stream
// waits for a grant gets the handler cancelled; the generator is closed where it
// stopped, and the worker serves on.
func TestGatewayStalledStreamEndsWithItsClient(t *testing.T) {
	g := startGateway(t, "gwapp", 1)
	conn := dialSmallWindow(t, g.addr)
	if _, err := fmt.Fprint(conn, "GET /flood?mb=64 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	produced := waitStalled(t, g, 1024)
	conn.Close()
	closed, ok := g.waitFile("flood-closed", 10*time.Second)
	if !ok {
		t.Fatalf("the generator was not closed after the client left; output:\n%s", g.out)
	}
	if closed != strconv.Itoa(produced) {
		t.Errorf("the generator closed after %s chunks; it had stopped at %d", closed, produced)
	}
	if st, body, _ := g.get("/hello"); st != 200 || body != "hello" {
		t.Errorf("after the client left: %d %q", st, body)
	}
}

// dialSmallWindow connects with a 64 KiB receive buffer, so that the kernel holds
// little of what the client does not read.
func dialSmallWindow(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10) })
		return serr
	}}
	conn, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	return conn
}

// waitStalled polls gwapp's /flood/progress until the generator has stopped: three
// equal non-zero readings 100 ms apart. It fails the test if all `total` chunks are
// produced. It returns the number produced.
func waitStalled(t *testing.T, g *gateway, total int) int {
	t.Helper()
	var produced []int
	for i := 0; ; i++ {
		st, body, _ := g.get("/flood/progress")
		if st != 200 {
			t.Fatalf("/flood/progress: %d %q; output:\n%s", st, body, g.out)
		}
		n, _ := strconv.Atoi(body)
		produced = append(produced, n)
		if k := len(produced); n > 0 && k >= 3 && produced[k-2] == n && produced[k-3] == n {
			return n
		}
		if n == total || i > 200 {
			t.Fatalf("the generator ran on with nobody reading (chunks produced: %v)", produced)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// vmRSS reads a process's resident set size in bytes.
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
