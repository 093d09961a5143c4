package engine

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawMax is the most one raw read or write moves. A raw system call keeps its
// Go processor (P) for its whole length, so only short calls take that path:
// longer ones go through the runtime, which can hand the P to other
// goroutines while the kernel copies.
const rawMax = 64 << 10

// maxIov is the most buffers one writev takes (Linux's IOV_MAX).
const maxIov = 1024

// sockConn is a TCP connection whose short reads and writes are made with raw
// system calls. The socket is non-blocking (Go's netpoller owns it), so such a
// call never sleeps in the kernel; skipping the runtime's syscall entry and
// exit saves their bookkeeping and, above all, the wakeups of the runtime's
// monitor thread (sysmon) that each entry makes while the gateway's
// processors are idle between bursts. Waiting for readiness, deadlines and
// closing still go through the netpoller (syscall.RawConn).
//
// At most one goroutine reads and one writes at a time (the reader and the
// writer of a conn); the state for each direction lives here so that the
// callbacks are allocated once.
type sockConn struct {
	*net.TCPConn
	rc syscall.RawConn

	rbuf  []byte
	rn    int
	rerr  syscall.Errno
	rfunc func(uintptr) bool
	// ReadIdle's: where the callback takes a buffer and gives it back.
	rget  func() []byte
	rput  func([]byte)
	ifunc func(uintptr) bool

	wbufs [][]byte // what is left to write, from woff in wbufs[0]
	woff  int
	wn    int64
	one   [1][]byte // Write's argument as a list
	werr  syscall.Errno
	iov   []unix.Iovec
	wfunc func(uintptr) bool
}

// Wrap returns nc as a Conn: a connection that already is one as it is, a
// TCP connection with raw short I/O (sockConn), anything else (a Unix socket,
// a pipe in tests) through plainConn.
func Wrap(nc net.Conn) Conn {
	if c, ok := nc.(Conn); ok {
		return c
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return plainConn{nc}
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return plainConn{nc}
	}
	r := &sockConn{TCPConn: tc, rc: rc, iov: make([]unix.Iovec, 0, 8)}
	r.rfunc = r.readRaw
	r.ifunc = r.readIdleRaw
	r.wfunc = r.writeRaw
	return r
}

func (r *sockConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > rawMax {
		p = p[:rawMax] // a short read is a read
	}
	r.rbuf, r.rn, r.rerr = p, 0, 0
	err := r.rc.Read(r.rfunc)
	r.rbuf = nil
	switch {
	case err != nil: // deadline, closed: already a *net.OpError
		return 0, err
	case r.rerr != 0:
		return 0, r.opError("read", r.rerr)
	case r.rn == 0:
		return 0, io.EOF
	}
	return r.rn, nil
}

func (r *sockConn) readRaw(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rbuf[0])), uintptr(len(r.rbuf)))
		switch e {
		case 0:
			r.rn = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait for readiness
		}
		r.rerr = e
		return true
	}
}

// ReadIdle reads into a buffer it takes from get only once the socket has
// bytes: inside the readiness callback it reads into get's buffer and, when
// there is nothing to read, gives it back to put before waiting, so that a
// connection waiting for its next request holds no read buffer. It returns
// the buffer read into, now the caller's, and the count (n > 0), or a nil
// buffer and an error; deadlines, EOF and errors are as for Read. At most
// rawMax bytes are read.
func (r *sockConn) ReadIdle(get func() []byte, put func([]byte)) ([]byte, int, error) {
	r.rget, r.rput = get, put
	r.rbuf, r.rn, r.rerr = nil, 0, 0
	err := r.rc.Read(r.ifunc)
	buf, n := r.rbuf, r.rn
	r.rbuf, r.rget, r.rput = nil, nil, nil
	if buf != nil && (err != nil || r.rerr != 0 || n == 0) {
		put(buf)
		buf = nil
	}
	switch {
	case err != nil: // deadline, closed: already a *net.OpError
		return nil, 0, err
	case r.rerr != 0:
		return nil, 0, r.opError("read", r.rerr)
	case n == 0:
		return nil, 0, io.EOF
	}
	return buf, n, nil
}

func (r *sockConn) readIdleRaw(fd uintptr) bool {
	buf := r.rget()
	p := buf
	if len(p) > rawMax {
		p = p[:rawMax]
	}
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			r.rbuf, r.rn = buf, int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			r.rput(buf)
			return false // wait for readiness, holding no buffer
		}
		r.rput(buf)
		r.rerr = e
		return true
	}
}

func (r *sockConn) Write(p []byte) (int, error) {
	if len(p) > rawMax {
		return r.TCPConn.Write(p)
	}
	r.one[0] = p
	n, err := r.writeBufs(r.one[:])
	r.one[0] = nil
	return int(n), err
}

// WriteBuffers writes all of *bufs in order with writev, consuming what it
// wrote, as net.Buffers.WriteTo does (which would write a sockConn one buffer at
// a time).
func (r *sockConn) WriteBuffers(bufs *net.Buffers) (int64, error) {
	total := 0
	for _, b := range *bufs {
		total += len(b)
	}
	if total > rawMax {
		return bufs.WriteTo(r.TCPConn)
	}
	n, err := r.writeBufs(*bufs)
	consume(bufs, n)
	return n, err
}

// consume drops the first n bytes of *bufs, as net.Buffers.WriteTo does
// with what it wrote.
func consume(bufs *net.Buffers, n int64) {
	left, off := advance(*bufs, 0, int(n))
	if len(left) > 0 {
		left[0] = left[0][off:]
	}
	*bufs = left
}

// iovecs fills iov (from empty) with bufs, the first from off, skipping
// empty ones, at most maxIov of them; it also returns their total length.
func iovecs(iov []unix.Iovec, bufs [][]byte, off int) ([]unix.Iovec, int) {
	total := 0
	for i, b := range bufs {
		if i == 0 {
			b = b[off:]
		}
		if len(b) == 0 {
			continue
		}
		if len(iov) == maxIov {
			break
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
		total += len(b)
	}
	return iov, total
}

func (r *sockConn) writeBufs(bufs [][]byte) (int64, error) {
	r.wn, r.werr = 0, 0
	r.wbufs, r.woff = advance(bufs, 0, 0) // skip empty buffers
	err := r.rc.Write(r.wfunc)
	r.wbufs = nil
	switch {
	case err != nil:
		return r.wn, err
	case r.werr != 0:
		return r.wn, r.opError("write", r.werr)
	}
	return r.wn, nil
}

func (r *sockConn) writeRaw(fd uintptr) bool {
	for len(r.wbufs) > 0 {
		iov, _ := iovecs(r.iov[:0], r.wbufs, r.woff)
		r.iov = iov // keeps the capacity it grew to
		n, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		clear(iov) // hold no buffer past this call
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait for room
		default:
			r.werr = e
			return true
		}
		r.wn += int64(n)
		r.wbufs, r.woff = advance(r.wbufs, r.woff, int(n))
	}
	return true
}

// advance skips n written bytes of bufs, whose first off bytes were written
// before: it returns what is left, as buffers (the first not empty) and an
// offset into the first.
func advance(bufs [][]byte, off, n int) ([][]byte, int) {
	for len(bufs) > 0 {
		l := len(bufs[0]) - off
		if l > n {
			return bufs, off + n
		}
		n -= l
		bufs, off = bufs[1:], 0
	}
	return bufs, 0
}

func (r *sockConn) opError(op string, e syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: os.NewSyscallError(op, e)}
}
