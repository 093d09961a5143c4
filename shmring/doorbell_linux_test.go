package shmring

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newTestDoorbell(tb testing.TB) *Doorbell {
	tb.Helper()
	d, err := NewDoorbell()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

func TestDoorbell(t *testing.T) {
	d := newTestDoorbell(t)
	ctx := context.Background()

	// A ring before Wait is kept by the counter.
	if err := d.Ring(); err != nil {
		t.Fatal(err)
	}
	d.Ring()
	start := time.Now()
	if err := d.Wait(ctx, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Wait did not see an earlier Ring")
	}
	// The read reset the counter: the next Wait times out.
	start = time.Now()
	if err := d.Wait(ctx, 20*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 15*time.Millisecond {
		t.Fatalf("Wait returned after %v without a ring", el)
	}
	// recheck returning true skips the wait.
	start = time.Now()
	if err := d.Wait(ctx, 5*time.Second, func() bool { return true }); err != nil || time.Since(start) > time.Second {
		t.Fatalf("recheck ignored: %v", err)
	}
	// A ring from another goroutine wakes a blocked Wait.
	go func() { time.Sleep(10 * time.Millisecond); d.Ring() }()
	start = time.Now()
	if err := d.Wait(ctx, 5*time.Second, nil); err != nil || time.Since(start) > 2*time.Second {
		t.Fatalf("not woken: %v", err)
	}
	// A ctx deadline shorter than timeout ends the wait with ctx's error.
	dctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := d.Wait(dctx, 5*time.Second, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx deadline: %v", err)
	}
	// Close interrupts a blocked Wait.
	go func() { time.Sleep(10 * time.Millisecond); d.Close() }()
	start = time.Now()
	if err := d.Wait(ctx, 5*time.Second, nil); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Close did not interrupt Wait: %v", err)
	}
	// Ring after Close fails instead of writing to whatever now has that fd.
	if err := d.Ring(); err == nil {
		t.Fatal("Ring after Close succeeded")
	}
}

// TestDoorbellAllocs: ringing and taking a ring allocate nothing (they are on
// every request's path while the other side sleeps).
func TestDoorbellAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: allocation count skipped")
	}
	d := newTestDoorbell(t)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		if err := d.Ring(); err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(ctx, time.Second, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per Ring and Wait, want 0", allocs)
	}
}

func TestDoorbellFdIsNonblockingEventfd(t *testing.T) {
	d := newTestDoorbell(t)
	fd := d.Fd()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Fatalf("fd %d not non-blocking (%v)", fd, err)
	}
	// The other side writes the fd directly, as the Python worker does.
	if _, err := unix.Write(fd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	o, err := OpenDoorbell(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	start := time.Now()
	if err := o.Wait(context.Background(), 5*time.Second, nil); err != nil || time.Since(start) > time.Second {
		t.Fatalf("ring through the duplicated fd not seen: %v", err)
	}
}

func TestSignal(t *testing.T) {
	var s Signal
	ctx := context.Background()
	s.Broadcast() // nobody armed: no-op
	done := make(chan error, 3)
	armed := make(chan struct{}, 3)
	for range 3 {
		go func() {
			done <- s.Wait(ctx, 10*time.Second, func() bool { armed <- struct{}{}; return false })
		}()
	}
	for range 3 {
		<-armed
	}
	// Armed before recheck: a Broadcast any time after arming is not lost.
	s.Broadcast()
	for range 3 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Broadcast did not wake all waiters")
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Wait(cctx, time.Second, nil); err != context.Canceled {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

// BenchmarkDoorbellPingPong measures one Ring -> wakeup -> Ring back round trip
// through two doorbells (two goroutines). Compare BenchmarkEventfdPollPingPong,
// the alternative design (blocking poll(2) on an OS thread).
func BenchmarkDoorbellPingPong(b *testing.B) {
	a, c := newTestDoorbell(b), newTestDoorbell(b)
	ctx := context.Background()
	go func() {
		for {
			if a.Wait(ctx, time.Second, nil) != nil {
				return
			}
			c.Ring()
		}
	}()
	for b.Loop() {
		a.Ring()
		c.Wait(ctx, time.Second, nil)
	}
}

func BenchmarkEventfdPollPingPong(b *testing.B) {
	mk := func() int {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	a, c := mk(), mk()
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	wait := func(fd int) {
		var buf [8]byte
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Read(fd, buf[:]); err == nil {
				return
			}
			unix.Poll(pfd, 1000)
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			wait(a)
			unix.Write(c, one)
		}
	}()
	for b.Loop() {
		unix.Write(a, one)
		wait(c)
	}
	unix.Write(a, one) // let the helper see stop
}

// interleavedConn is a doorbell's RawConn whose first Write fails (its callback is
// given a descriptor open read-only) and, before that Write returns, lets another
// Ring run: the interleaving two producers ringing at once can have.
type interleavedConn struct {
	syscall.RawConn // the eventfd's own, for every other call
	badFD           uintptr
	first           atomic.Bool
	during          func()
}

func (c *interleavedConn) Write(f func(fd uintptr) bool) error {
	if c.first.CompareAndSwap(false, true) {
		f(c.badFD)
		c.during()
		return nil
	}
	return c.RawConn.Write(f)
}

// TestDoorbellRingErrorsStayWithTheirCaller: two Rings at once each get their own
// write's outcome. The one whose write failed reports it; the other, whose write
// succeeded, reports nothing.
func TestDoorbellRingErrorsStayWithTheirCaller(t *testing.T) {
	d := newTestDoorbell(t)
	ro, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	other := make(chan error, 1)
	ic := &interleavedConn{RawConn: d.rc, badFD: ro.Fd()}
	ic.during = func() {
		go func() { other <- d.Ring() }()
		// Give the other Ring the time to run to its end, if it can.
		time.Sleep(100 * time.Millisecond)
	}
	d.rc = ic
	errFailed := d.Ring()
	errOK := <-other
	if !errors.Is(errFailed, unix.EBADF) {
		t.Errorf("the Ring whose write failed returned %v, want EBADF", errFailed)
	}
	if errOK != nil {
		t.Errorf("the Ring whose write succeeded returned %v, want nil", errOK)
	}
}

// BenchmarkDoorbellRingParallel: producers ringing one doorbell at once (the request
// ring's many producers waking one sleeping worker).
func BenchmarkDoorbellRingParallel(b *testing.B) {
	d := newTestDoorbell(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := d.Ring(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
