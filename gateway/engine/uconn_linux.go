package engine

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// uringListener accepts through its ring's multishot accept on a duplicate
// of the listener's descriptor.
type uringListener struct {
	net.Listener
	eng  *uringEngine
	ring *ring
	fd   int
	ch   chan accepted
	done chan struct{}

	closeOnce sync.Once

	// errPending: an accept error waits in ch; later ones are dropped
	// until Accept has taken it (one back-off per failure, not one per
	// connection the failure met).
	errPending atomic.Bool
	// rearm: the next Accept arms a new accept (after an error).
	rearm atomic.Bool

	// Owned by the ring's loop.
	slot     uint32
	gen      uint32 // of the accept armed last: an older one's completions are stale
	listed   bool   // has a slot in ring.listeners
	armed    bool   // the multishot accept is in the kernel
	stopping bool
}

type accepted struct {
	c   *uconn
	err error
}

func (l *uringListener) Accept() (net.Conn, error) {
	if l.rearm.CompareAndSwap(true, false) {
		l.ring.post(op{kind: opAccept, l: l})
	}
	select {
	case a := <-l.ch:
		if a.err != nil {
			// The accept stopped on this error; the caller backs off (it
			// is Temporary when the descriptors ran out) and calls again,
			// which arms a new one.
			l.errPending.Store(false)
			l.rearm.Store(true)
			return nil, a.err
		}
		return a.c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	}
}

func (l *uringListener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		err = l.Listener.Close()
		close(l.done)
		if !l.ring.post(op{kind: opStopAccept, l: l}) {
			unix.Close(l.fd) // the ring has stopped: no accept of l's is armed
			l.dropQueued()
		}
	})
	return err
}

// dropQueued closes the connections accepted but not taken by Accept.
func (l *uringListener) dropQueued() {
	for {
		select {
		case a := <-l.ch:
			if a.c != nil {
				a.c.Close()
			}
		default:
			return
		}
	}
}

func (r *ring) armAccept(l *uringListener) {
	if l.stopping || l.armed {
		return
	}
	if !l.listed {
		l.listed = true
		l.slot = uint32(len(r.listeners))
		r.listeners = append(r.listeners, l)
	}
	l.armed = true
	l.gen = (l.gen + 1) & 0xffffff
	e := r.sqe()
	e.PrepareMultishotAccept(l.fd, 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	e.UserData = userData(kAccept, l.slot, l.gen)
}

func (r *ring) stopAccept(l *uringListener) {
	if l.stopping {
		return
	}
	l.stopping = true
	if l.armed {
		r.cancel(userData(kAccept, l.slot, l.gen))
	}
	r.closing = append(r.closing, l.fd)
	l.dropQueued()
	if l.listed {
		r.listeners[l.slot] = nil
		// The slot is not reused: a listener's accept completions are
		// few, and a stale one finds nil.
	}
}

// accepted takes one completion of l's multishot accept armed as gen.
func (r *ring) accepted(l *uringListener, gen uint32, res int32, flags uint32) {
	current := gen == l.gen
	if current && flags&giouring.CQEFMore == 0 {
		l.armed = false
	}
	if res < 0 {
		e := syscall.Errno(-res)
		if !current || e == unix.ECANCELED || l.stopping {
			return
		}
		// Whether or not the kernel goes on with this accept, it is
		// replaced once Accept has handed the error on: a multishot
		// accept still armed would fail again, or, its backlog
		// unchanged, never try again.
		if l.armed {
			r.cancel(userData(kAccept, l.slot, l.gen))
			l.armed = false
		}
		if l.errPending.CompareAndSwap(false, true) {
			select {
			case l.ch <- accepted{err: &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", e)}}:
			default:
				l.errPending.Store(false)
			}
		}
		return
	}
	fd := int(res)
	if l.stopping {
		unix.Close(fd)
		return
	}
	// As Go's own accept: no Nagle delay; keep-alive probes after 15s
	// idle, every 15s, 9 of them.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9)
	var raddr net.Addr
	if sa, err := unix.Getpeername(fd); err == nil {
		raddr = sockaddrToTCP(sa)
	}
	e := l.eng
	target := e.rings[int(e.next.Add(1))%len(e.rings)]
	c := newUconn(target, fd, l.Addr(), raddr)
	select {
	case l.ch <- accepted{c: c}:
	default:
		unix.Close(fd) // Accept is not keeping up: refused
	}
	if current && !l.armed && !l.stopping {
		r.armAccept(l) // the kernel ended the multishot accept (its queue overflowed)
	}
}

func sockaddrToTCP(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	}
	return nil
}

// uconn is a connection on the io_uring engine. Its ring receives for it
// into inbox; Read copies out of inbox. Writes are non-blocking writev
// system calls made by the writer, which waits on the ring (poll) only when
// the socket's buffer is full. The descriptor is closed by the ring's loop
// alone, after Close, so no call can reach a descriptor number reused by
// another connection.
type uconn struct {
	ring         *ring
	fd           int
	laddr, raddr net.Addr
	rwake, wwake chan struct{} // a reader or writer waiting is signalled here

	mu        sync.Mutex
	closed    bool   // Close was called
	fdGone    bool   // the loop closed fd (set under mu)
	inbox     []byte // received bytes (a pooled inboxSize array); inbox[ioff:] not read yet
	ioff      int
	rerr      error // the receive's final error (io.EOF, a reset)
	recvArmed bool  // a receive is in the kernel or posted for it
	pollArmed bool  // a poll for room is in the kernel or posted for it
	rdl, wdl  time.Time
	// rtimer and wtimer fire at rdl and wdl, waking a waiting reader or
	// writer (or a parked reader); they are set when a deadline is, so a
	// wait costs no timer operation.
	rtimer *time.Timer
	wtimer *time.Timer
	// parked is ParkRead's callback while no goroutine waits to read.
	parked func()

	// Owned by the writer.
	writeIov []unix.Iovec
	writeOne [1][]byte

	// Owned by the ring's loop.
	adopted   bool
	slot, gen uint32
	recvK     bool // a receive is in the kernel
	pollK     bool // a poll is in the kernel
}

func newUconn(r *ring, fd int, laddr, raddr net.Addr) *uconn {
	return &uconn{ring: r, fd: fd, laddr: laddr, raddr: raddr, rwake: make(chan struct{}, 1), wwake: make(chan struct{}, 1)}
}

// signal wakes a goroutine waiting on ch, if any. Called with mu held.
func (c *uconn) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// inboxSize is a connection's input buffer: room for two receives.
const inboxSize = 2 * bufSize

// roomFor makes inbox ready to take n more bytes, and reports whether it
// can. Called with mu held.
func (c *uconn) roomFor(n int) bool {
	if c.inbox == nil {
		c.inbox, c.ioff = c.ring.getInbox()[:0], 0
	}
	if cap(c.inbox)-len(c.inbox) >= n {
		return true
	}
	if c.ioff > 0 { // move the unread bytes to the front
		m := copy(c.inbox[:cap(c.inbox)], c.inbox[c.ioff:])
		c.inbox, c.ioff = c.inbox[:m], 0
	}
	return cap(c.inbox)-len(c.inbox) >= n
}

// dropInbox hands an emptied inbox back to the ring's spares. Called with mu held.
func (c *uconn) dropInbox() {
	c.ring.putInbox((*[inboxSize]byte)(c.inbox[:inboxSize]))
	c.inbox, c.ioff = nil, 0
}

func (c *uconn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.awaitInput(); err != nil {
		return 0, err
	}
	return c.take(p), nil
}

// ReadIdle is Read into a buffer it takes from get only once bytes have
// arrived, so that a connection waiting for its next request holds no read
// buffer (the ring receives into its own). It returns that buffer, now the
// caller's, and the count; on an error, a nil buffer, having taken none.
func (c *uconn) ReadIdle(get func() []byte, put func([]byte)) ([]byte, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.awaitInput(); err != nil {
		return nil, 0, err
	}
	buf := get()
	return buf, c.take(buf), nil
}

// ParkRead runs fn on a new goroutine once a read would not wait: bytes
// have arrived, the read failed (EOF, reset, closed, the engine stopped) or
// the read deadline has passed. Until then no goroutine is held for the
// connection: a keep-alive connection idle for long costs only its memory.
// One callback at a time; fn typically reads again.
func (c *uconn) ParkRead(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.ioff < len(c.inbox) || c.rerr != nil || !c.wantInput() {
		go fn()
		return
	}
	if !c.rdl.IsZero() && !time.Now().Before(c.rdl) {
		go fn()
		return
	}
	c.parked = fn // rtimer unparks it at the deadline
}

// unpark starts the parked callback, if any. Called with mu held.
func (c *uconn) unpark() {
	if fn := c.parked; fn != nil {
		c.parked = nil
		go fn()
	}
}

// awaitInput waits until there are unread bytes, returning nil, or the
// read fails: closed, the peer's EOF or reset, the deadline. Called with mu
// held.
func (c *uconn) awaitInput() error {
	for {
		if c.closed {
			return c.opError("read", net.ErrClosed)
		}
		if c.ioff < len(c.inbox) {
			return nil
		}
		if c.rerr != nil {
			return c.rerr
		}
		if !c.rdl.IsZero() && !time.Now().Before(c.rdl) {
			return c.opError("read", os.ErrDeadlineExceeded)
		}
		if !c.wantInput() {
			return c.opError("read", net.ErrClosed)
		}
		c.wait(c.rwake)
	}
}

// take copies unread bytes into p (len(p) > 0), giving the input buffer
// back once it is all read. Called with mu held and bytes unread.
func (c *uconn) take(p []byte) int {
	n := copy(p, c.inbox[c.ioff:])
	c.ioff += n
	if c.ioff == len(c.inbox) {
		c.dropInbox()
	}
	c.wantInput()
	return n
}

// wantInput posts a receive when none is armed and a whole receive buffer
// would fit in inbox. It reports false when the ring has stopped. Called
// with mu held.
func (c *uconn) wantInput() bool {
	if c.recvArmed || c.rerr != nil || len(c.inbox)-c.ioff > inboxSize-bufSize {
		return true
	}
	if !c.ring.post(op{kind: opArmRecv, c: c}) {
		return false
	}
	c.recvArmed = true
	return true
}

// wait releases mu until ch is signalled: by the loop, Close, a deadline
// set, or the deadline's timer.
func (c *uconn) wait(ch chan struct{}) {
	c.mu.Unlock()
	<-ch
	c.mu.Lock()
}

func (c *uconn) Write(p []byte) (int, error) {
	c.writeOne[0] = p // Write and WriteBuffers are called by one goroutine at a time
	n, err := c.writeBufs(c.writeOne[:])
	c.writeOne[0] = nil
	return int(n), err
}

func (c *uconn) WriteBuffers(bufs *net.Buffers) (int64, error) {
	n, err := c.writeBufs(*bufs)
	consume(bufs, n)
	return n, err
}

// writeBufs writes bufs whole with non-blocking writev calls, waiting on
// the ring for room between them.
func (c *uconn) writeBufs(bufs [][]byte) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var done int64
	bufs, off := advance(bufs, 0, 0)
	for len(bufs) > 0 {
		if c.closed {
			return done, c.opError("write", net.ErrClosed)
		}
		if !c.wdl.IsZero() && !time.Now().Before(c.wdl) {
			return done, c.opError("write", os.ErrDeadlineExceeded)
		}
		n, e := c.writev(bufs, off)
		if n > 0 {
			done += int64(n)
			bufs, off = advance(bufs, off, n)
			continue
		}
		switch e {
		case 0, unix.EINTR:
			continue
		case unix.EAGAIN:
		default:
			return done, c.opError("write", os.NewSyscallError("writev", e))
		}
		if !c.pollArmed {
			if !c.ring.post(op{kind: opPollOut, c: c}) {
				return done, c.opError("write", net.ErrClosed)
			}
			c.pollArmed = true
		}
		c.wait(c.wwake)
	}
	return done, nil
}

// writev makes one writev system call for bufs (the first from off).
// Short ones (rawMax) are raw system calls, as netpoll's; longer ones go
// through the runtime, which can hand the processor on while the kernel
// copies. Called with mu held and the descriptor open.
func (c *uconn) writev(bufs [][]byte, off int) (int, syscall.Errno) {
	iov, total := iovecs(c.writeIov[:0], bufs, off)
	c.writeIov = iov
	var n uintptr
	var e syscall.Errno
	if total <= rawMax {
		n, _, e = unix.RawSyscall(unix.SYS_WRITEV, uintptr(c.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	} else {
		n, _, e = unix.Syscall(unix.SYS_WRITEV, uintptr(c.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	}
	clear(iov)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

func (c *uconn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("close", net.ErrClosed)
	}
	if err := unix.Shutdown(c.fd, unix.SHUT_WR); err != nil {
		return c.opError("close", os.NewSyscallError("shutdown", err))
	}
	return nil
}

func (c *uconn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.closed = true
	if c.inbox != nil {
		c.dropInbox()
	}
	c.signal(c.rwake)
	c.signal(c.wwake)
	c.unpark()
	c.mu.Unlock()
	if !c.ring.post(op{kind: opClose, c: c}) {
		// The ring has stopped: it closed the descriptor if it ever
		// served the connection; else it is still ours.
		c.mu.Lock()
		if !c.fdGone {
			c.fdGone = true
			unix.Close(c.fd)
		}
		c.mu.Unlock()
	}
	return nil
}

func (c *uconn) LocalAddr() net.Addr  { return c.laddr }
func (c *uconn) RemoteAddr() net.Addr { return c.raddr }

func (c *uconn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *uconn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("set", net.ErrClosed)
	}
	c.rdl = t
	if c.rtimer == nil && !t.IsZero() { // made once: a method value allocates
		c.rtimer = time.AfterFunc(time.Until(t), c.readDeadline)
	} else {
		armTimer(c.rtimer, t)
	}
	c.signal(c.rwake) // a waiting reader looks at the new deadline
	c.unpark()        // as does a parked one
	return nil
}

func (c *uconn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("set", net.ErrClosed)
	}
	c.wdl = t
	if c.wtimer == nil && !t.IsZero() {
		c.wtimer = time.AfterFunc(time.Until(t), c.writeDeadline)
	} else {
		armTimer(c.wtimer, t)
	}
	c.signal(c.wwake)
	return nil
}

// armTimer makes t (nil: none yet, and dl is zero) fire at dl, or never
// when dl is zero.
func armTimer(t *time.Timer, dl time.Time) {
	switch {
	case t == nil:
	case dl.IsZero():
		t.Stop()
	default:
		t.Reset(time.Until(dl))
	}
}

// readDeadline and writeDeadline run when rdl or wdl passes: the waiter
// finds the deadline passed and fails its call.
func (c *uconn) readDeadline() {
	c.mu.Lock()
	c.signal(c.rwake)
	c.unpark()
	c.mu.Unlock()
}

func (c *uconn) writeDeadline() {
	c.mu.Lock()
	c.signal(c.wwake)
	c.mu.Unlock()
}

func (c *uconn) opError(op string, err error) error {
	if errors.Is(err, io.EOF) {
		return err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.laddr, Addr: c.raddr, Err: err}
}
