package engine

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// The rings' geometry.
const (
	// ringEntries is the submission queue's size (the completion queue has
	// twice as many entries; the kernel keeps completions past that).
	ringEntries = 1024
	// bufCount receive buffers of bufSize bytes each form a ring's
	// provided-buffer ring (16 MiB, touched only as used).
	bufCount = 1024
	bufSize  = 16 << 10
	bufGroup = 0
)

// What a completion is for: the low byte of its user data. The rest is
// the connection's slot (32 bits) and the slot's generation (24 bits), so a
// completion that outlives its connection is recognised.
const (
	kRecv   = 1 // a receive into a provided buffer
	kPoll   = 2 // a wait for the socket to take more bytes
	kAccept = 3 // a listener's multishot accept
	kCancel = 4 // a cancellation; its own completion means nothing
)

func userData(kind uint8, slot, gen uint32) uint64 {
	return uint64(kind) | uint64(slot)<<8 | uint64(gen&0xffffff)<<40
}

func splitUserData(ud uint64) (kind uint8, slot, gen uint32) {
	return uint8(ud), uint32(ud >> 8), uint32(ud>>40) & 0xffffff
}

// The setup flags tried first: all of a batch submitted even if one fails,
// and completion work run when the submitting thread next enters the kernel
// rather than by interrupting it (an idle thread is woken for it). Kernels
// before 5.19 refuse them; the ring is then made with none.
// SetupDeferTaskrun was measured and left out: completion work then waits
// for the ring's owner to ask for completions and does not add to the
// registered eventfd, so the loop, parked on that eventfd, slept through it
// (3,700 req/s). SetupSingleIssuer needs a loop locked to one thread, see loop.
const fastSetup = giouring.SetupSubmitAll | giouring.SetupCoopTaskrun | giouring.SetupTaskrunFlag

// uringEngine is the io_uring engine: one ring per Go processor.
type uringEngine struct {
	rings []*ring
	next  atomic.Uint32 // round robin over rings for new connections
	once  sync.Once
}

func newUring() (*uringEngine, error) {
	n := runtime.GOMAXPROCS(0)
	e := &uringEngine{}
	for i := 0; i < n; i++ {
		r, err := startRing(e)
		if err != nil {
			e.Close()
			return nil, err
		}
		e.rings = append(e.rings, r)
	}
	return e, nil
}

func (e *uringEngine) Name() string { return Uring }

func (e *uringEngine) Close() error {
	e.once.Do(func() {
		for _, r := range e.rings {
			r.stop()
		}
	})
	return nil
}

// Listen serves l's connections from the first ring's multishot accept. l
// must be a TCP listener; any other is served as netpoll serves it.
func (e *uringEngine) Listen(l net.Listener) net.Listener {
	tl, ok := l.(*net.TCPListener)
	if !ok {
		return netpollListener{l}
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return netpollListener{l}
	}
	fd := -1
	rc.Control(func(s uintptr) { fd, err = unix.Dup(int(s)) })
	if err != nil || fd < 0 {
		return netpollListener{l}
	}
	unix.CloseOnExec(fd)
	// A listener marked non-blocking (as Go marks it) makes io_uring's
	// accept fail with EAGAIN instead of waiting; the mark is on the
	// shared open file, which Go no longer accepts from.
	unix.SetNonblock(fd, false)
	ul := &uringListener{
		Listener: l,
		eng:      e,
		ring:     e.rings[0],
		fd:       fd,
		ch:       make(chan accepted, 1024),
		done:     make(chan struct{}),
	}
	if !ul.ring.post(op{kind: opAccept, l: ul}) {
		unix.Close(fd)
		return netpollListener{l}
	}
	return ul
}

// ring is one io_uring with the goroutine (its loop) that alone submits to
// it and reaps it. Other goroutines hand it work with post.
type ring struct {
	r      *giouring.Ring
	br     *giouring.BufAndRing
	bufMem []byte // bufCount*bufSize, mmap'd
	// wakefd is an eventfd the kernel adds to when it has completions for
	// the ring (registered with it) and post adds to when it has work; wake
	// is it as an *os.File, which the loop reads to wait.
	wakefd int
	wake   *os.File

	// inboxes holds spare connection input buffers: a connection with
	// nothing unread gives its buffer back, so an idle one keeps none.
	inboxes chan *[inboxSize]byte

	mu       sync.Mutex
	posted   []op
	stopped  bool
	sleeping atomic.Bool // the loop is, or is about to be, waiting in the kernel
	done     chan struct{}

	// Owned by the loop.
	slots     []*uconn
	gens      []uint32
	free      []uint32
	listeners []*uringListener
	work      []op
	closing   []int // fds to close once the cancellations for them are submitted
}

type opKind uint8

const (
	opArmRecv    opKind = iota + 1 // c wants input
	opPollOut                      // c's writer waits for room
	opClose                        // c was closed
	opAccept                       // arm l's multishot accept
	opStopAccept                   // l was closed
	opStop                         // the engine is closing
)

type op struct {
	kind opKind
	c    *uconn
	l    *uringListener
}

func startRing(e *uringEngine) (*ring, error) {
	r := &ring{done: make(chan struct{}), inboxes: make(chan *[inboxSize]byte, spareInboxes)}
	ready := make(chan error, 1)
	go r.loop(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return r, nil
}

// setup makes the ring, with its provided-buffer ring and wakeup eventfd.
func (r *ring) setup() error {
	if setupHook != nil {
		if err := setupHook(); err != nil {
			return describeSetupError(err)
		}
	}
	r.r = giouring.NewRing()
	err := r.r.QueueInit(ringEntries, fastSetup)
	if errors.Is(err, unix.EINVAL) {
		err = r.r.QueueInit(ringEntries, 0)
	}
	if err != nil {
		return describeSetupError(err)
	}
	probe, err := r.r.GetProbeRing()
	if err != nil {
		r.r.QueueExit()
		return fmt.Errorf("io_uring probe: %w", err)
	}
	for _, o := range []uint8{giouring.OpAccept, giouring.OpRecv, giouring.OpPollAdd, giouring.OpAsyncCancel} {
		if !probe.IsSupported(o) {
			r.r.QueueExit()
			return fmt.Errorf("io_uring: the kernel lacks operation %d", o)
		}
	}
	r.bufMem, err = unix.Mmap(-1, 0, bufCount*bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		r.r.QueueExit()
		return fmt.Errorf("io_uring receive buffers: %w", err)
	}
	r.br, err = r.r.SetupBufRing(bufCount, bufGroup, 0)
	if err != nil {
		r.r.QueueExit()
		unix.Munmap(r.bufMem)
		return fmt.Errorf("io_uring provided-buffer ring (Linux 5.19 or later): %w", err)
	}
	for i := 0; i < bufCount; i++ {
		r.br.BufRingAdd(uintptr(unsafe.Pointer(&r.bufMem[i*bufSize])), bufSize, uint16(i), giouring.BufRingMask(bufCount), i)
	}
	r.br.BufRingAdvance(bufCount)
	r.wakefd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		if _, err = r.r.RegisterEventFd(r.wakefd); err != nil {
			unix.Close(r.wakefd)
		}
	}
	if err != nil {
		r.r.FreeBufRing(bufGroup)
		r.r.QueueExit()
		unix.Munmap(r.bufMem)
		return fmt.Errorf("io_uring eventfd: %w", err)
	}
	r.wake = os.NewFile(uintptr(r.wakefd), "io_uring-eventfd") // non-blocking: read through Go's poller
	return nil
}

// setupHook, set by tests, fails the ring's setup as a refused
// io_uring_setup would.
var setupHook func() error

// describeSetupError says why io_uring_setup failed, in the words an
// operator needs.
func describeSetupError(err error) error {
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("io_uring_setup: %w (refused by a seccomp profile, as Docker's default one does, or by kernel.io_uring_disabled)", err)
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("io_uring_setup: %w (the kernel has no io_uring)", err)
	case errors.Is(err, unix.ENOMEM):
		return fmt.Errorf("io_uring_setup: %w (RLIMIT_MEMLOCK too low for the ring: raise ulimit -l)", err)
	}
	return fmt.Errorf("io_uring_setup: %w", err)
}

// wakeOne is what a post adds to the eventfd's count (1, in the machine's
// byte order; read only).
var wakeOne = func() (b [8]byte) { *(*uint64)(unsafe.Pointer(&b)) = 1; return }()

// spareInboxes is the most spare input buffers a ring keeps (8 MiB).
const spareInboxes = 256

func (r *ring) getInbox() *[inboxSize]byte {
	select {
	case b := <-r.inboxes:
		return b
	default:
		return new([inboxSize]byte)
	}
}

func (r *ring) putInbox(b *[inboxSize]byte) {
	select {
	case r.inboxes <- b:
	default:
	}
}

// post hands o to the ring's loop, waking it if it waits in the kernel. It
// reports false when the ring has stopped.
func (r *ring) post(o op) bool {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return false
	}
	r.posted = append(r.posted, o)
	r.mu.Unlock()
	if r.sleeping.Load() && r.sleeping.CompareAndSwap(true, false) {
		unix.Write(r.wakefd, wakeOne[:])
	}
	return true
}

func (r *ring) stop() {
	if r.post(op{kind: opStop}) {
		<-r.done
	}
}

// sqe returns a free submission entry, submitting what is queued when the
// submission queue is full.
func (r *ring) sqe() *giouring.SubmissionQueueEntry {
	for {
		if e := r.r.GetSQE(); e != nil {
			return e
		}
		r.r.Submit()
	}
}

func (r *ring) loop(ready chan<- error) {
	// The goroutine is not locked to a thread (measured: a locked loop
	// thread cannot run the readers it wakes, so each wake handed them to
	// another thread, 0.82 futex calls per request, and cost more CPU per
	// request than it saved). The kernel runs a completion's work on the
	// thread that submitted it, the next time that thread enters the kernel
	// or, asleep, when woken for it (SetupCoopTaskrun).
	defer close(r.done)
	if err := r.setup(); err != nil {
		ready <- err
		return
	}
	ready <- nil
	var count [8]byte
	for {
		if r.runPosted() {
			break
		}
		r.r.SubmitAndGetEvents()
		if len(r.closing) > 0 {
			// The cancellations name the operations by user data, and they
			// are submitted: the descriptors may close.
			for _, fd := range r.closing {
				unix.Close(fd)
			}
			r.closing = r.closing[:0]
		}
		if r.reap() > 0 {
			continue
		}
		r.sleeping.Store(true)
		r.mu.Lock()
		more := len(r.posted) > 0
		r.mu.Unlock()
		if !more {
			// Park in Go's poller, the thread's processor handed on, until
			// the kernel has completions for the ring or post has work:
			// both add to the eventfd.
			r.wake.Read(count[:])
		}
		r.sleeping.Store(false)
	}
	r.teardown()
}

// runPosted takes the posted work and prepares its submissions. It reports
// true on opStop.
func (r *ring) runPosted() bool {
	r.mu.Lock()
	r.work, r.posted = r.posted, r.work[:0]
	r.mu.Unlock()
	stop := false
	for i, o := range r.work {
		switch o.kind {
		case opArmRecv:
			r.armRecv(o.c)
		case opPollOut:
			r.armPoll(o.c)
		case opClose:
			r.closeConn(o.c)
		case opAccept:
			r.armAccept(o.l)
		case opStopAccept:
			r.stopAccept(o.l)
		case opStop:
			stop = true
		}
		r.work[i] = op{}
	}
	return stop
}

// adopt gives c a slot on this ring, once.
func (r *ring) adopt(c *uconn) {
	if c.adopted {
		return
	}
	c.adopted = true
	if n := len(r.free); n > 0 {
		c.slot = r.free[n-1]
		r.free = r.free[:n-1]
		r.slots[c.slot] = c
	} else {
		c.slot = uint32(len(r.slots))
		r.slots = append(r.slots, c)
		r.gens = append(r.gens, 0)
	}
	c.gen = r.gens[c.slot]
}

// release frees c's slot once c is closed and the kernel holds nothing of
// it; a completion still on its way for the slot's old generation is then
// recognised as stale.
func (r *ring) release(c *uconn) {
	if !c.adopted || !c.fdGone || c.recvK || c.pollK {
		return
	}
	r.slots[c.slot] = nil
	r.gens[c.slot] = (r.gens[c.slot] + 1) & 0xffffff
	r.free = append(r.free, c.slot)
	c.adopted = false
}

func (r *ring) lookup(slot, gen uint32) *uconn {
	if int(slot) >= len(r.slots) || r.gens[slot] != gen {
		return nil
	}
	return r.slots[slot]
}

func (r *ring) armRecv(c *uconn) {
	if c.fdGone || c.recvK {
		return
	}
	r.adopt(c)
	c.recvK = true
	e := r.sqe()
	e.PrepareRecv(c.fd, 0, 0, 0)
	e.Flags |= giouring.SqeBufferSelect
	e.BufIG = bufGroup
	e.UserData = userData(kRecv, c.slot, c.gen)
}

func (r *ring) armPoll(c *uconn) {
	if c.fdGone || c.pollK {
		c.mu.Lock()
		if c.fdGone {
			c.pollArmed = false
			c.signal(c.wwake)
		}
		c.mu.Unlock()
		return
	}
	r.adopt(c)
	c.pollK = true
	e := r.sqe()
	e.PreparePollAdd(c.fd, unix.POLLOUT)
	e.UserData = userData(kPoll, c.slot, c.gen)
}

func (r *ring) cancel(ud uint64) {
	e := r.sqe()
	e.PrepareCancel64(ud, 0)
	e.UserData = userData(kCancel, 0, 0)
}

// closeConn closes c's descriptor, after cancelling what the kernel still
// does for it.
func (r *ring) closeConn(c *uconn) {
	if c.fdGone {
		return
	}
	c.mu.Lock()
	c.fdGone = true
	c.mu.Unlock()
	if c.recvK {
		r.cancel(userData(kRecv, c.slot, c.gen))
	}
	if c.pollK {
		r.cancel(userData(kPoll, c.slot, c.gen))
	}
	r.closing = append(r.closing, c.fd)
	r.release(c)
}

// reap handles the completions waiting and returns how many there were.
func (r *ring) reap() int {
	n := uint32(0)
	r.r.ForEachCQE(func(cqe *giouring.CompletionQueueEvent) {
		n++
		r.complete(cqe.UserData, cqe.Res, cqe.Flags)
	})
	r.r.CQAdvance(n)
	return int(n)
}

func (r *ring) complete(ud uint64, res int32, flags uint32) {
	kind, slot, gen := splitUserData(ud)
	switch kind {
	case kCancel:
		return
	case kAccept:
		if int(slot) < len(r.listeners) && r.listeners[slot] != nil {
			r.accepted(r.listeners[slot], gen, res, flags)
		}
		return
	}
	c := r.lookup(slot, gen)
	if c == nil {
		if flags&giouring.CQEFBuffer != 0 {
			r.giveBack(uint16(flags >> giouring.CQEBufferShift))
		}
		return
	}
	switch kind {
	case kRecv:
		c.recvK = false
		r.received(c, res, flags)
	case kPoll:
		c.pollK = false
		c.mu.Lock()
		c.pollArmed = false
		c.signal(c.wwake)
		c.mu.Unlock()
	}
	r.release(c)
}

// received files a receive's result with c and re-arms the receive while c
// has room and is open.
func (r *ring) received(c *uconn, res int32, flags uint32) {
	c.mu.Lock()
	rearm := false
	switch {
	case res > 0:
		bid := uint16(flags >> giouring.CQEBufferShift)
		off := int(bid) * bufSize
		if !c.closed && c.roomFor(int(res)) { // it has room: receives are armed only then
			c.inbox = append(c.inbox, r.bufMem[off:off+int(res)]...)
		}
		r.giveBack(bid)
		rearm = !c.closed && c.roomFor(bufSize)
	case res == -int32(unix.ENOBUFS):
		// Every buffer was in use; they are given back as they are copied.
		rearm = !c.closed
	case res == 0:
		c.rerr = io.EOF
	case res == -int32(unix.ECANCELED):
	default:
		c.rerr = c.opError("read", syscall.Errno(-res))
	}
	c.recvArmed = rearm
	c.signal(c.rwake)
	c.unpark()
	c.mu.Unlock()
	if rearm {
		r.armRecv(c)
	}
}

// giveBack returns receive buffer bid to the kernel.
func (r *ring) giveBack(bid uint16) {
	r.br.BufRingAdd(uintptr(unsafe.Pointer(&r.bufMem[int(bid)*bufSize])), bufSize, bid, giouring.BufRingMask(bufCount), 0)
	r.br.BufRingAdvance(1)
}

// teardown ends the ring: every connection it serves is closed, waiters
// are woken with net.ErrClosed, the receives still in the kernel are
// cancelled and waited for (they may write into the receive buffers), and
// the ring's memory is freed.
func (r *ring) teardown() {
	r.mu.Lock()
	r.stopped = true
	r.posted = nil
	r.mu.Unlock()
	for _, c := range r.slots {
		if c == nil {
			continue
		}
		c.mu.Lock()
		c.closed = true
		c.signal(c.rwake)
		c.signal(c.wwake)
		c.unpark()
		c.mu.Unlock()
		r.closeConn(c)
	}
	for _, l := range r.listeners {
		if l != nil {
			r.stopAccept(l)
		}
	}
	r.r.Submit()
	for _, fd := range r.closing {
		unix.Close(fd)
	}
	r.closing = nil
	ts := syscall.NsecToTimespec(int64(10 * time.Millisecond))
	for tries := 0; r.busy() && tries < 500; tries++ {
		r.r.SubmitAndWaitTimeout(1, &ts, nil)
		r.reap()
	}
	busy := r.busy()
	r.slots, r.listeners = nil, nil
	r.r.FreeBufRing(bufGroup)
	r.r.QueueExit()
	if !busy { // else leave the buffers mapped: the kernel may still fill one
		unix.Munmap(r.bufMem)
	}
	unix.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(r.br)), bufCount*int(unsafe.Sizeof(giouring.BufAndRing{}))))
	r.wake.Close()
}

// busy reports whether a receive of the ring's is still in the kernel (an
// accept writes into no memory of ours).
func (r *ring) busy() bool {
	for _, c := range r.slots {
		if c != nil && c.recvK {
			return true
		}
	}
	return false
}
