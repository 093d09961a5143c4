package shmring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Doorbell is an eventfd one side waits on and the other rings (PROTOCOL.md §2.5).
// Waiting goes through Go's netpoller, so a sleeping waiter holds no OS thread.
// Ring is safe for concurrent use; Wait is meant for one goroutine at a time (a
// second concurrent waiter may have its wakeup taken by the first): fan out with a
// Signal.
type Doorbell struct {
	f *os.File
}

// NewDoorbell creates an eventfd (EFD_CLOEXEC|EFD_NONBLOCK).
func NewDoorbell() (*Doorbell, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("shmring: eventfd: %w", err)
	}
	return &Doorbell{f: os.NewFile(uintptr(fd), "covetpy-doorbell")}, nil
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
	return &Doorbell{f: os.NewFile(uintptr(nfd), "covetpy-doorbell")}, nil
}

// Fd is the eventfd to pass to the other side. It belongs to the Doorbell.
func (d *Doorbell) Fd() int {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	rc.Control(func(u uintptr) { fd = int(u) })
	return fd
}

var one = [8]byte{1} // little-endian uint64(1)

// Ring adds 1 to the eventfd counter, waking the waiter.
func (d *Doorbell) Ring() error {
	_, err := d.f.Write(one[:])
	return err
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
	var buf [8]byte
	_, err := d.f.Read(buf[:])
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
