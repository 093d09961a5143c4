package workerproto

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	// Warm up the runtime's poller, which opens descriptors of its own on first use.
	gw, child, err := SpawnSocketpair()
	if err == nil {
		gw.Close()
		child.Close()
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(ents)
}

// pair returns a connected gateway and worker control connection.
func pair(t *testing.T) (gw, wk *net.UnixConn) {
	t.Helper()
	gw, child, err := SpawnSocketpair()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.FileConn(child)
	child.Close()
	if err != nil {
		t.Fatal(err)
	}
	wk = c.(*net.UnixConn)
	t.Cleanup(func() { gw.Close(); wk.Close() })
	deadline := time.Now().Add(10 * time.Second)
	gw.SetDeadline(deadline)
	wk.SetDeadline(deadline)
	return gw, wk
}

// segmentFDs creates a sealed memfd and two eventfds, as the gateway does.
func segmentFDs(t *testing.T, size int64) []int {
	t.Helper()
	mfd, err := unix.MemfdCreate("covet-test-segment", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Skipf("memfd_create: %v", err)
	}
	if err := unix.Ftruncate(mfd, size); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(mfd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		t.Fatal(err)
	}
	fds := []int{mfd}
	for i := 0; i < 2; i++ {
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, efd)
	}
	return fds
}

func inode(t *testing.T, fd int) [2]uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat %d: %v", fd, err)
	}
	return [2]uint64{st.Dev, st.Ino}
}

func testWelcome() Welcome { return goldenVectors()[1].msg.(Welcome) }

func TestSocketpairHandshake(t *testing.T) {
	before := openFDs(t)
	func() {
		gw, wk := pair(t)
		defer gw.Close()
		defer wk.Close()
		hello := goldenVectors()[0].msg.(Hello)
		hello.PID = int64(os.Getpid())
		done := make(chan error, 1)
		var got Welcome
		var gotFDs []int
		go func() {
			if err := WriteMessage(wk, hello); err != nil {
				done <- err
				return
			}
			var err error
			got, gotFDs, err = RecvWelcome(wk)
			done <- err
		}()
		h, err := RecvHello(gw, "s3cret")
		if err != nil {
			t.Fatal(err)
		}
		if h.App != "shop-api" || len(h.Routes) != 3 || h.PID != int64(os.Getpid()) {
			t.Fatalf("hello: %+v", h)
		}
		fds := segmentFDs(t, testWelcome().SegmentSize)
		defer closeFDs(fds)
		if err := SendWelcome(gw, testWelcome(), fds); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		defer closeFDs(gotFDs)
		if got != testWelcome() {
			t.Fatalf("welcome: %+v", got)
		}
		for i := range fds {
			if gotFDs[i] == fds[i] || inode(t, gotFDs[i]) != inode(t, fds[i]) {
				t.Fatalf("fd %d: received %d is not a new descriptor of the same file", i, gotFDs[i])
			}
			if flags, _ := unix.FcntlInt(uintptr(gotFDs[i]), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
				t.Fatalf("received fd %d lacks close-on-exec", i)
			}
		}
		// The doorbell works across the pair: write on the sent fd, read on the received.
		if _, err := unix.Write(fds[1], []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
		var v [8]byte
		if n, err := unix.Read(gotFDs[1], v[:]); err != nil || n != 8 || v[0] != 1 {
			t.Fatalf("eventfd read: %d %v %v", n, err, v)
		}
		// Liveness and goodbye.
		for _, m := range []Message{Ping{Seq: 1}, Drain{DeadlineMS: 5}} {
			if err := WriteMessage(gw, m); err != nil {
				t.Fatal(err)
			}
			if r, err := RecvMessage(wk); err != nil || r != m {
				t.Fatalf("got %v %v, want %v", r, err, m)
			}
		}
		WriteMessage(wk, Bye{Reason: "done"})
		if r, err := RecvMessage(gw); err != nil || r != (Bye{Reason: "done"}) {
			t.Fatal(r, err)
		}
		wk.Close()
		if _, err := RecvMessage(gw); !errors.Is(err, io.EOF) {
			t.Fatalf("after close: %v", err)
		}
	}()
	if after := openFDs(t); after != before {
		t.Fatalf("descriptors leaked: %d before, %d after", before, after)
	}
}

// sendRaw sends a frame with arbitrary descriptors attached.
func sendRaw(t *testing.T, c *net.UnixConn, m Message, fds []int) {
	t.Helper()
	b, err := AppendFrame(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix(b, oob, nil); err != nil {
		t.Fatal(err)
	}
}

func TestWrongDescriptors(t *testing.T) {
	before := openFDs(t)
	func() {
		gw, wk := pair(t)
		defer gw.Close()
		defer wk.Close()
		fds := append(segmentFDs(t, testWelcome().SegmentSize), segmentFDs(t, 8192)...)
		defer closeFDs(fds)
		for _, n := range []int{0, 1, 2, 4, 6} {
			sendRaw(t, gw, testWelcome(), fds[:n])
			if _, got, err := RecvWelcome(wk); !errors.Is(err, ErrFDCount) || got != nil {
				t.Fatalf("%d fds: got %v, %v", n, got, err)
			}
		}
		// More descriptors than the receive buffer holds.
		many := make([]int, 0, 20)
		for i := 0; i < 20; i++ {
			many = append(many, fds[i%len(fds)])
		}
		sendRaw(t, gw, testWelcome(), many)
		if _, _, err := RecvWelcome(wk); !errors.Is(err, ErrFDCount) {
			t.Fatalf("20 fds: %v", err)
		}
		// Descriptors with a frame other than welcome.
		sendRaw(t, gw, Ping{Seq: 3}, fds[:2])
		if _, err := RecvMessage(wk); !errors.Is(err, ErrUnexpectedFDs) {
			t.Fatalf("ping with fds: %v", err)
		}
		// A welcome that fails validation still closes its descriptors.
		bad := testWelcome()
		bad.SegmentSize++
		sendRaw(t, gw, bad, fds[:3])
		if _, _, err := RecvWelcome(wk); !errors.Is(err, ErrProtocol) {
			t.Fatalf("bad geometry: %v", err)
		}
		// An error frame where welcome was expected is returned as *Error.
		sendRaw(t, gw, &Error{Code: CodeConflict, Message: "GET /a vs GET /a"}, fds[:3])
		var pe *Error
		if _, _, err := RecvWelcome(wk); !errors.As(err, &pe) || pe.Code != CodeConflict {
			t.Fatalf("error frame: %v", err)
		}
		// Something else entirely.
		sendRaw(t, gw, Pong{Seq: 1}, nil)
		if _, _, err := RecvWelcome(wk); !errors.Is(err, ErrUnexpectedMessage) {
			t.Fatalf("pong: %v", err)
		}
		if err := SendWelcome(gw, testWelcome(), fds[:2]); !errors.Is(err, ErrFDCount) {
			t.Fatalf("SendWelcome with 2 fds: %v", err)
		}
	}()
	if after := openFDs(t); after != before {
		t.Fatalf("descriptors leaked: %d before, %d after", before, after)
	}
}

func TestRecvHelloRefusals(t *testing.T) {
	dup := validHello()
	dup.Routes = append(dup.Routes, Route{Method: "POST", Path: "/users", Kind: "http"})
	v2 := frameOf(mapBytes(t, "type", "hello", "version", 2))
	cases := []struct {
		name  string
		send  func(c *net.UnixConn)
		token string
		code  string
		text  string
	}{
		{"wrong token", func(c *net.UnixConn) { h := validHello(); h.Token = "nope"; WriteMessage(c, h) }, "sesame", CodeAuth, "token refused"},
		{"missing token", func(c *net.UnixConn) { WriteMessage(c, validHello()) }, "sesame", CodeAuth, "token refused"},
		{"manifest", func(c *net.UnixConn) { WriteMessage(c, dup) }, "", CodeManifest, "route 4 (POST /users): duplicate of route 1"},
		{"version", func(c *net.UnixConn) { c.Write(v2) }, "", CodeVersion, "version 2"},
		{"not hello", func(c *net.UnixConn) { WriteMessage(c, Ping{}) }, "", CodeProtocol, "ping where hello was expected"},
		{"garbage", func(c *net.UnixConn) { c.Write([]byte{3, 0, 0, 0, 0xc1, 0xc1, 0xc1}) }, "", CodeProtocol, "got invalid"},
		{"too large", func(c *net.UnixConn) { c.Write([]byte{0xff, 0xff, 0xff, 0xff}) }, "", CodeProtocol, "over 1 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gw, wk := pair(t)
			c.send(wk)
			_, err := RecvHello(gw, c.token)
			if ErrorCode(err) != c.code {
				t.Fatalf("got %v (code %q), want code %q", err, ErrorCode(err), c.code)
			}
			m, rerr := RecvMessage(wk)
			e, ok := m.(*Error)
			if rerr != nil || !ok || e.Code != c.code || !strings.Contains(e.Message, c.text) {
				t.Fatalf("peer got %#v, %v; want code %q with %q", m, rerr, c.code, c.text)
			}
			if _, err := RecvMessage(wk); !errors.Is(err, io.EOF) {
				t.Fatalf("gateway did not close after the error frame: %v", err)
			}
		})
	}
	// The right token passes.
	gw, wk := pair(t)
	h := validHello()
	h.Token = "sesame"
	WriteMessage(wk, h)
	if _, err := RecvHello(gw, "sesame"); err != nil {
		t.Fatal(err)
	}
}

// TestRecvHelloReturnsTheWorkersError: a worker that failed to start sends an error
// frame instead of hello; the gateway gets that error, with its text, and sends
// nothing back.
func TestRecvHelloReturnsTheWorkersError(t *testing.T) {
	gw, wk := pair(t)
	WriteMessage(wk, &Error{Code: CodeInternal, Message: "RuntimeError: db unreachable"})
	_, err := RecvHello(gw, "")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInternal || e.Message != "RuntimeError: db unreachable" {
		t.Fatalf("RecvHello: %v, want the worker's own error", err)
	}
	if m, err := RecvMessage(wk); !errors.Is(err, io.EOF) {
		t.Fatalf("worker got %#v, %v; want EOF and no error frame", m, err)
	}
}

func TestCheckToken(t *testing.T) {
	if !CheckToken("", "") || !CheckToken("x", "") || !CheckToken("abc", "abc") ||
		CheckToken("", "abc") || CheckToken("abd", "abc") || CheckToken("abcd", "abc") {
		t.Fatal("CheckToken")
	}
}

func TestListener(t *testing.T) {
	before := openFDs(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	func() {
		l, err := Listen(path, ListenConfig{Token: "sesame"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
			t.Fatalf("socket file: %v %v", fi.Mode(), err)
		}
		if l.Addr().String() != path || l.Path() != path {
			t.Fatal(l.Addr())
		}
		dial := func() *net.UnixConn {
			c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			return c
		}

		// Accepted: credentials are the peer's (this process).
		wk := dial()
		conn, cred, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if int(cred.PID) != os.Getpid() || int(cred.UID) != os.Getuid() || int(cred.GID) != os.Getgid() {
			t.Fatalf("credentials %+v", cred)
		}
		h := validHello()
		h.Token = "wrong"
		WriteMessage(wk, h)
		if _, err := l.RecvHello(conn); !errors.Is(err, ErrAuth) {
			t.Fatalf("wrong token: %v", err)
		}
		if m, _ := RecvMessage(wk); m == nil || m.(*Error).Code != CodeAuth {
			t.Fatalf("peer got %v", m)
		}
		wk.Close()

		// Bad manifest over the external socket.
		wk = dial()
		conn, _, err = l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		h = validHello()
		h.Token = "sesame"
		h.Routes[2].Path = "ws"
		WriteMessage(wk, h)
		if _, err := l.RecvHello(conn); !errors.Is(err, ErrManifest) {
			t.Fatalf("bad manifest: %v", err)
		}
		if m, _ := RecvMessage(wk); m == nil || m.(*Error).Code != CodeManifest ||
			!strings.Contains(m.(*Error).Message, "route 2 (* ws): path does not start with '/'") {
			t.Fatalf("peer got %#v", m)
		}
		wk.Close()

		// A peer uid that is not allowed is refused at accept.
		l.uid = uint32(os.Getuid()) + 1
		wk = dial()
		if c, cred, err := l.Accept(); !errors.Is(err, ErrAuth) || c != nil || int(cred.UID) != os.Getuid() {
			t.Fatalf("foreign uid: %v %v", c, err)
		}
		if m, _ := RecvMessage(wk); m == nil || m.(*Error).Code != CodeAuth || !strings.Contains(m.(*Error).Message, "not allowed") {
			t.Fatalf("peer got %#v", m)
		}
		wk.Close()
		// ... unless listed.
		l.cfg.AllowedUIDs = []uint32{7, uint32(os.Getuid())}
		wk = dial()
		conn, _, err = l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		wk.Close()

		// A second listener on a live socket is refused.
		if _, err := Listen(path, ListenConfig{}); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Fatalf("live socket: %v", err)
		}
	}()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the socket file: %v", err)
	}
	if after := openFDs(t); after != before {
		t.Fatalf("descriptors leaked: %d before, %d after", before, after)
	}
}

func TestListenStaleAndNonSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close() // leaves a stale socket file
	l, err := Listen(path, ListenConfig{Mode: 0o600})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if fi, _ := os.Lstat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	plain := filepath.Join(dir, "file")
	os.WriteFile(plain, nil, 0o644)
	if _, err := Listen(plain, ListenConfig{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
	if _, err := os.Stat(plain); err != nil {
		t.Fatal("Listen removed a regular file")
	}
}
