package shmring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Doorbell is an eventfd one side waits on and the other rings (PROTOCOL.md §2.5).
// Waiting goes through Go's netpoller, so a sleeping waiter holds no OS thread.
// Ring is safe for concurrent use; Wait is meant for one goroutine at a time (a
// second concurrent waiter may have its wakeup taken by the first): fan out with a
// Signal.
//
// Each Ring learns its own write's outcome: ringMu serialises the Ring calls (the
// descriptor's own write lock already does, for the write itself), so one caller's
// errno is never taken, or lost, by another.
//
// Ring and Wait make their read and write with raw system calls: the eventfd is
// non-blocking, so they never sleep in the kernel, and skipping the runtime's
// syscall entry spares the wakeup of its monitor thread that each entry makes
// while the gateway's processors are idle between bursts. Waiting for
// readiness, deadlines and Close still go through the netpoller.
type Doorbell struct {
	f  *os.File
	rc syscall.RawConn
	// The callbacks given to rc, made once so that Ring and Wait allocate
	// nothing, and where they leave an unexpected errno.
	ringFn, waitFn func(uintptr) bool
	ringMu         sync.Mutex    // held by one Ring from its write until it has read ringErr
	ringErr        syscall.Errno // guarded by ringMu
	waitErr        syscall.Errno // the one waiter
	waitBuf        [8]byte
}

func newDoorbell(fd int) (*Doorbell, error) {
	f := os.NewFile(uintptr(fd), "covetpy-doorbell")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("shmring: doorbell: %w", err)
	}
	d := &Doorbell{f: f, rc: rc}
	d.ringFn, d.waitFn = d.ringRaw, d.waitRaw
	return d, nil
}

// NewDoorbell creates an eventfd (EFD_CLOEXEC|EFD_NONBLOCK).
func NewDoorbell() (*Doorbell, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("shmring: eventfd: %w", err)
	}
	return newDoorbell(fd)
}

// OpenDoorbell wraps an eventfd received from the other side. It duplicates fd
// (the caller keeps ownership of fd) and makes the copy non-blocking.
func OpenDoorbell(fd int) (*Doorbell, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("shmring: dup doorbell fd: %w", err)
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("shmring: doorbell fd: %w", err)
	}
	return newDoorbell(nfd)
}

// Fd is the eventfd to pass to the other side. It belongs to the Doorbell.
func (d *Doorbell) Fd() int {
	fd := -1
	d.rc.Control(func(u uintptr) { fd = int(u) })
	return fd
}

var one = [8]byte{1} // little-endian uint64(1)

// Ring adds 1 to the eventfd counter, waking the waiter.
func (d *Doorbell) Ring() error {
	d.ringMu.Lock()
	d.ringErr = 0
	err := d.rc.Write(d.ringFn)
	if e := d.ringErr; err == nil && e != 0 {
		err = os.NewSyscallError("write", e)
	}
	d.ringMu.Unlock()
	return err
}

func (d *Doorbell) ringRaw(fd uintptr) bool {
	switch e := eventfdRaw(unix.SYS_WRITE, fd, &one); e {
	case 0:
	case unix.EAGAIN:
		return false // the counter is full: wait until it is read
	default:
		d.ringErr = e
	}
	return true
}

func (d *Doorbell) waitRaw(fd uintptr) bool {
	d.waitErr = eventfdRaw(unix.SYS_READ, fd, &d.waitBuf)
	return d.waitErr != unix.EAGAIN // not rung yet: wait for it
}

// eventfdRaw reads or writes the 8-byte counter of the eventfd fd.
func eventfdRaw(op uintptr, fd uintptr, buf *[8]byte) syscall.Errno {
	for {
		_, _, e := unix.RawSyscall(op, fd, uintptr(unsafe.Pointer(buf)), 8)
		if e != unix.EINTR {
			return e
		}
	}
}

// Wait implements Waiter: it calls recheck (if any), then blocks until the doorbell
// is rung, timeout passes, or ctx's deadline passes, and resets the counter. A ring
// that came before Wait is not lost: the counter keeps it. Cancelling ctx without a
// deadline is noticed only when Wait returns (at most timeout later), or at once
// if the Doorbell is closed.
func (d *Doorbell) Wait(ctx context.Context, timeout time.Duration, recheck func() bool) error {
	if recheck != nil && recheck() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline, ctxDeadline := time.Now().Add(timeout), false
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline, ctxDeadline = dl, true
	}
	if err := d.f.SetReadDeadline(deadline); err != nil {
		return err
	}
	d.waitErr = 0
	err := d.rc.Read(d.waitFn)
	if err == nil && d.waitErr != 0 {
		err = os.NewSyscallError("read", d.waitErr)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if err := ctx.Err(); err != nil || !ctxDeadline {
			return err
		}
		return context.DeadlineExceeded // ctx's own timer may not have fired yet
	}
	return err
}

// Close closes the eventfd; a blocked Wait returns an error. Idempotent.
func (d *Doorbell) Close() error {
	if err := d.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}
