package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCloseWakesBlockedCalls: Close ends a Read waiting for input, and a
// Write waiting for room, with net.ErrClosed.
func TestCloseWakesBlockedCalls(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		s, _ := connPair(t, e)
		rerr := make(chan error, 1)
		go func() {
			_, err := s.Read(make([]byte, 10))
			rerr <- err
		}()
		time.Sleep(20 * time.Millisecond) // let it block
		s.Close()
		select {
		case err := <-rerr:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("blocked Read after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("blocked Read not woken by Close")
		}

		s, _ = connPair(t, e) // the peer never reads: the write blocks
		werr := make(chan error, 1)
		go func() {
			var err error
			for err == nil {
				_, err = s.Write(make([]byte, 256<<10))
			}
			werr <- err
		}()
		time.Sleep(50 * time.Millisecond)
		s.Close()
		select {
		case err := <-werr:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("blocked Write after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("blocked Write not woken by Close")
		}
	})
}

// TestInputBackpressure: a peer that sends far more than the engine buffers
// for an unread connection loses nothing once the reader catches up (the
// io_uring engine stops receiving at 32 KiB unread and resumes as the
// reader takes it).
func TestInputBackpressure(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		s, c := connPair(t, e)
		want := pattern(3<<20+77, 9)
		go func() {
			c.Write(want)
			c.CloseWrite()
		}()
		time.Sleep(50 * time.Millisecond) // the socket buffers fill
		var got bytes.Buffer
		buf := make([]byte, 1000) // small reads: the input buffer drains slowly
		for {
			n, err := s.Read(buf)
			got.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("read %d bytes, want %d (or they differ)", got.Len(), len(want))
		}
	})
}

// TestListenerClose: after the engine's listener is closed, Accept fails
// with net.ErrClosed and the port no longer takes connections.
func TestListenerClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		el := e.Listen(ln)
		aerr := make(chan error, 1)
		go func() {
			_, err := el.Accept()
			aerr <- err
		}()
		time.Sleep(20 * time.Millisecond)
		if err := el.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-aerr:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Accept after Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Accept not woken by Close")
		}
		// The kernel drops the listening socket once the cancelled accept
		// lets go of it.
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatal("the port still accepts connections after Close")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestManyConnections: connections opened and closed in turn, several at
// once, each echoing its own bytes, never see another's: the io_uring
// engine reuses connection slots, and a late completion for a closed one
// must not reach the next.
func TestManyConnections(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		el := e.Listen(ln)
		defer el.Close()
		go func() {
			for {
				nc, err := el.Accept()
				if err != nil {
					return
				}
				go func(c Conn) { // echo until EOF, then close
					defer c.Close()
					buf := make([]byte, 4096)
					for {
						n, err := c.Read(buf)
						if n > 0 {
							if _, err := c.Write(buf[:n]); err != nil {
								return
							}
						}
						if err != nil {
							return
						}
					}
				}(nc.(Conn))
			}
		}()
		const workers, each = 8, 150
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					msg := fmt.Sprintf("conn %d/%d %s", w, i, strings.Repeat("x", i))
					if err := echoOnce(ln.Addr().String(), msg, i%3 == 0); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}

// echoOnce sends msg, expects it back and closes (with a reset when abort).
func echoOnce(addr, msg string, abort bool) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("%q: %w", msg, err)
	}
	if string(got) != msg {
		return fmt.Errorf("sent %q, got %q", msg, got)
	}
	if abort {
		c.(*net.TCPConn).SetLinger(0)
	}
	return nil
}

// TestEngineCloseEndsConns: closing the io_uring engine under live
// connections fails their calls with net.ErrClosed instead of leaving them
// blocked.
func TestEngineCloseEndsConns(t *testing.T) {
	e, _, err := New(Uring)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := connPair(t, e)
	rerr := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 10))
		rerr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	e.Close()
	select {
	case err := <-rerr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after engine Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read not woken by engine Close")
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after engine Close: %v", err)
	}
}

// TestAutoFallsBack: when io_uring_setup is refused (the hook stands in for
// a seccomp filter; integration/ has the real one), auto gives netpoll with
// the reason, and uring fails naming it.
func TestAutoFallsBack(t *testing.T) {
	setupHook = func() error { return unix.EPERM }
	defer func() { setupHook = nil }()
	e, why, err := New(Auto)
	if err != nil || e.Name() != Netpoll {
		t.Fatalf("New(auto) = %v, %v; want netpoll", e, err)
	}
	if !strings.Contains(why, "io_uring_setup: operation not permitted") || !strings.Contains(why, "seccomp") {
		t.Fatalf("fallback reason %q", why)
	}
	if _, _, err := New(Uring); err == nil || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("New(uring) with io_uring refused: %v", err)
	}
	if _, _, err := New("epoll"); err == nil || !strings.Contains(err.Error(), `unknown engine "epoll"`) {
		t.Fatalf("New(epoll): %v", err)
	}
	if e, why, err := New(""); err != nil || e.Name() != Netpoll || why != "" {
		t.Fatalf("New(\"\") = %v, %q, %v; want netpoll, the default, with no fallback", e, why, err)
	}
	for name, ok := range map[string]bool{"": true, Auto: true, Uring: true, Netpoll: true, "Uring": false, "io_uring": false} {
		if Valid(name) != ok {
			t.Errorf("Valid(%q) = %v", name, !ok)
		}
	}
}

// TestAutoPicksUring: where io_uring works (this kernel; the suite's
// machines), auto runs on it.
func TestAutoPicksUring(t *testing.T) {
	e, why, err := New(Auto)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Name() != Uring {
		t.Fatalf("auto gave %s: %s", e.Name(), why)
	}
}

// TestAcceptOutOfDescriptors: when accept fails for want of descriptors
// (EMFILE), the io_uring listener's Accept returns a temporary error (the
// server backs off and calls again) and, called again once descriptors are
// free, re-arms the accept and takes the connections that waited.
//
// It runs in a process of its own (the test binary again): descriptors that
// earlier tests' engines close as they wind down would otherwise free slots
// under it.
func TestAcceptOutOfDescriptors(t *testing.T) {
	if os.Getenv("COVET_TEST_EMFILE_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptOutOfDescriptors$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "COVET_TEST_EMFILE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestAcceptOutOfDescriptors") {
			t.Fatalf("in its own process: %v\n%s", err, out)
		}
		return
	}
	// A low limit first: the kernel takes it when the accept is prepared.
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(len(open) + 256)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &old)

	e, _, err := New(Uring)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := e.Listen(ln)
	defer el.Close()
	sa := &unix.SockaddrInet4{Port: ln.Addr().(*net.TCPAddr).Port, Addr: [4]byte{127, 0, 0, 1}}
	const clients = 3
	var fds []int
	for range clients { // made now: connecting them later needs no descriptor
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		defer unix.Close(fd)
	}
	// Take every descriptor left, and again after a pause: one that a
	// goroutine of the runtime or the engine closes late (seen on a loaded
	// machine) must not be free when the accept runs.
	var fill []int
	for range 3 {
		for {
			fd, err := unix.Dup(fds[0])
			if err != nil {
				break
			}
			fill = append(fill, fd)
		}
		time.Sleep(20 * time.Millisecond)
	}
	release := func() {
		for _, fd := range fill {
			unix.Close(fd)
		}
		fill = nil
	}
	defer release()
	for _, fd := range fds {
		if err := unix.Connect(fd, sa); err != nil {
			release()
			t.Fatal(err)
		}
	}
	_, aerr := el.Accept()
	release()
	var te interface{ Temporary() bool }
	if aerr == nil || !errors.As(aerr, &te) || !te.Temporary() || !errors.Is(aerr, unix.EMFILE) {
		t.Fatalf("Accept out of descriptors: %v, want a temporary EMFILE error", aerr)
	}
	for i := range clients {
		done := make(chan error, 1)
		go func() {
			nc, err := el.Accept()
			if err == nil {
				nc.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Accept %d after descriptors came back: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("connection %d not accepted after descriptors came back", i)
		}
	}
}
