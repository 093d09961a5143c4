package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/covetpy/covetpy/shmring"
	"github.com/covetpy/covetpy/workerproto"
)

// errSequence: a worker sent frames of one exchange out of order (a body before its
// head, a second head). It ends the worker's session.
var errSequence = errors.New("dispatch: worker frames out of sequence")

// errWindow: a worker sent more response body than it was granted (PROTOCOL.md 2.7).
// It ends the worker's session.
var errWindow = errors.New("dispatch: worker overran its response window")

// errRetry marks a call whose worker died before taking it off the request ring.
var errRetry = &StatusError{Status: 502, Reason: "worker died before taking the request"}

// exitWait bounds how long a session's teardown waits for proof that its worker can
// take no more records (Session.Exited, or EOF on an external worker's control
// socket) before it fails every call in flight with 502 instead of retrying those
// still on the request ring. A spawned worker is killed and reaped within
// milliseconds; an external one exits when it sees EOF on its control socket, after
// its shutdown hooks (the Python worker gives them up to 5 s).
const exitWait = 5 * time.Second

// Origin says how a worker came and so how the gateway learns that it is gone.
type Origin uint8

const (
	// Spawned: a child of the supervisor, which calls Session.Exited once it has
	// reaped the process.
	Spawned Origin = iota + 1
	// External: registered through the control socket; EOF on that socket means
	// its process has closed every descriptor of it, so has exited.
	External
)

// readerSpin is how long the response-ring reader spin-polls before sleeping on its
// doorbell while at most spinMaxActive calls are open on the session: 20us keeps a
// one-in-flight round trip on the no-syscall path (bench/transport, 2 cores). With
// more calls open the worker is busy, and spinning would only take CPU from it and
// hand answers over one at a time; the reader sleeps at once and its wakeup collects
// a batch.
const (
	readerSpin    = 20 * time.Microsecond
	spinMaxActive = 1
)

// gatewayWait bounds one sleep of the response-ring reader (PROTOCOL.md 2.5).
const gatewayWait = 10 * time.Millisecond

// Session is one registered worker: its control socket, its shared-memory segment
// and the calls in flight on it.
type Session struct {
	ID     int64
	App    string
	PID    int
	Origin Origin

	d      *Dispatcher
	a      *app
	connMu sync.Mutex // serialises control-socket writes
	log    *slog.Logger
	conn   *net.UnixConn
	seg    *shmring.Segment
	wbell  *shmring.Doorbell // the worker waits on it; we ring it
	gbell  *shmring.Doorbell // we wait on it
	space  shmring.Signal    // request-ring producers waiting for space
	w      shmring.Writer    // request ring, many producers
	cons   *shmring.Consumer // response ring; owned by readLoop
	asm    shmring.Assembler // owned by readLoop
	// violated: the worker broke the protocol on its response ring (PROTOCOL.md
	// 5); set by readLoop before it returns, read by teardown after.
	violated bool

	ctx    context.Context // ends when the session closes
	cancel context.CancelFunc

	// ringMu: producers hold it shared while they write the request ring; teardown
	// takes it exclusively before unmapping the segment.
	ringMu sync.RWMutex
	gone   bool // guarded by ringMu (write) / read under RLock

	mu     sync.Mutex // guards slots, gens, free
	slots  []*call
	gens   []uint32
	free   []uint32
	active atomic.Int32 // calls between begin and end (the reader's spin policy)

	inflight int       // guarded by a.mu
	served   int       // requests finished, guarded by a.mu (recycling after max_requests)
	state    sessState // guarded by a.mu (observe.go)

	closeOnce  sync.Once
	err        error // why the session ended; set before ctx is cancelled
	exitOnce   sync.Once
	exited     chan struct{} // closed when the worker provably takes no more records
	readerDone chan struct{} // readLoop returned
	done       chan struct{} // teardown finished: calls failed, segment released
}

// Done is closed when the session has ended and released everything.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended; valid once Closing is closed.
func (s *Session) Err() error { return s.err }

// HungUp reports whether the session ended because the worker closed its control
// socket (peerClosed), not because the gateway ended it; valid once Closing is
// closed.
func (s *Session) HungUp() bool { return peerClosed(s.err) }

// Closing is closed as soon as the session starts to end (before Done): its worker
// gets no new request, and a spawned worker's process must be ended and reaped.
func (s *Session) Closing() <-chan struct{} { return s.ctx.Done() }

// Exited tells the session that its worker's process has exited and been reaped, so
// it can take no more records off the request ring: the session's teardown may now
// retry on another worker the requests still on the ring. The supervisor calls it
// for the workers it spawned. Idempotent.
func (s *Session) Exited() { s.exitOnce.Do(func() { close(s.exited) }) }

// start sends WELCOME with the segment and doorbells, waits for the worker to
// report ready and starts the session's goroutines.
func (s *Session) start(epoch uint64) error {
	g := s.d.cfg.Geometry
	seg, err := shmring.CreateSegment(g, shmring.HeaderInit{GatewayPID: uint32(os.Getpid()), WorkerPID: uint32(s.PID), Epoch: epoch})
	if err != nil {
		return err
	}
	s.seg = seg
	if s.wbell, err = shmring.NewDoorbell(); err == nil {
		s.gbell, err = shmring.NewDoorbell()
	}
	if err != nil {
		s.release()
		return err
	}
	welcome := workerproto.Welcome{
		Version: workerproto.Version, WorkerID: s.ID, Epoch: epoch,
		SegmentSize: int64(g.SegmentSize()), ReqCapacity: int64(g.ReqCapacity), RespCapacity: int64(g.RespCapacity),
		HeartbeatMS: s.d.cfg.Heartbeat.Milliseconds(),
	}
	if err := workerproto.SendWelcome(s.conn, welcome, []int{seg.Fd(), s.wbell.Fd(), s.gbell.Fd()}); err != nil {
		s.release()
		return err
	}
	s.w = shmring.Writer{Producer: shmring.NewMPSCProducer(seg.RequestRing(), s.wbell), Space: &s.space, Timeout: gatewayWait}
	if s.cons, err = shmring.NewConsumer(seg.ResponseRing(), s.wbell); err != nil {
		s.release()
		return err
	}
	s.cons.SetSpin(readerSpin)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.controlLoop()
	go s.readLoop()
	// The worker maps the segment, checks it and stores worker_state = ready; it
	// is sent nothing before that.
	deadline := time.NewTimer(s.d.cfg.HandshakeTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for seg.WorkerState() != shmring.StateReady {
		select {
		case <-s.ctx.Done():
			<-s.done
			return fmt.Errorf("dispatch: worker %d left during the handshake: %w", s.PID, s.err)
		case <-deadline.C:
			s.close(errors.New("handshake timeout"))
			<-s.done
			return fmt.Errorf("dispatch: worker %d did not report ready within %v", s.PID, s.d.cfg.HandshakeTimeout)
		case <-tick.C:
		}
	}
	return nil
}

// controlLoop reads the control socket until EOF, which means the worker is gone.
// After the session has begun to end it reads on, answering nothing, until that EOF:
// for an external worker it is the proof that the worker can take no more records.
func (s *Session) controlLoop() {
	for {
		m, err := workerproto.RecvMessage(s.conn)
		if err != nil {
			s.close(fmt.Errorf("control socket: %w", err))
			if s.Origin == External && (peerClosed(err) || s.discardControl()) {
				s.Exited() // every descriptor of the socket closed: the process is gone
			}
			return
		}
		if s.ctx.Err() != nil {
			continue // ending: only the worker's EOF matters now
		}
		switch m := m.(type) {
		case workerproto.Ping:
			if err := s.send(workerproto.Pong(m)); err != nil {
				s.close(err)
			}
		case workerproto.Bye:
			s.log.Info("worker said bye", "reason", m.Reason)
			s.a.remove(s) // no new work; the session ends at EOF
		case *workerproto.Error:
			s.log.Warn("worker reported an error", "code", m.Code, "message", m.Message)
		}
	}
}

// peerClosed reports whether a control-socket read failed because the worker closed
// its end: EOF, or ECONNRESET when it left with bytes unread.
func peerClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// discardControl reads and drops what the worker still sends after a frame the
// gateway could not decode, until the worker closes its end (true) or teardown
// closes the gateway's (false).
func (s *Session) discardControl() bool {
	_, err := io.Copy(io.Discard, s.conn)
	return err == nil || peerClosed(err)
}

// send writes one control message; writers are serialised.
func (s *Session) send(m workerproto.Message) error {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return workerproto.WriteMessage(s.conn, m)
}

// readLoop is the response ring's only consumer.
func (s *Session) readLoop() {
	defer close(s.readerDone)
	for {
		n, err := s.cons.Poll(s.onFrame)
		if err != nil {
			s.violated = true
			s.close(err)
			return
		}
		s.space.Broadcast()
		if n > 0 {
			continue
		}
		if s.active.Load() > spinMaxActive {
			s.cons.SetSpin(0)
		} else {
			s.cons.SetSpin(readerSpin)
		}
		slept := time.Now()
		if err := s.cons.Wait(s.ctx, s.gbell, gatewayWait); err != nil {
			if s.ctx.Err() == nil {
				s.close(err)
			}
			return
		}
		if time.Since(slept) >= gatewayWait && s.cons.Ready() && s.a != nil {
			// The whole timeout with an answer waiting: the doorbell (PROTOCOL.md
			// 2.5) came late or not at all. The timeout bounds the cost; the
			// counter makes it visible.
			s.a.m.LateWakeup()
		}
	}
}

// onFrame handles one response-ring frame. An error ends the session.
func (s *Session) onFrame(f shmring.Frame) error {
	c := s.lookup(f.ID)
	switch workerproto.FrameType(f.Type) {
	case workerproto.FrameRespHead:
		msg, done, err := s.asm.Add(f)
		if err != nil || !done || c == nil {
			return err
		}
		return c.setHead(f.ID, msg, false)
	case workerproto.FrameResp:
		if f.Flags != workerproto.FlagBegin|workerproto.FlagEnd {
			return fmt.Errorf("dispatch: RESP frame flagged %#x, want BEGIN|END", f.Flags)
		}
		if c == nil {
			return nil
		}
		return c.setHead(f.ID, f.Payload, true)
	case workerproto.FrameRespFile:
		if f.Flags != workerproto.FlagBegin|workerproto.FlagEnd {
			return fmt.Errorf("dispatch: RESP_FILE frame flagged %#x, want BEGIN|END", f.Flags)
		}
		if c == nil {
			return nil
		}
		return c.setFile(f.ID, f.Payload)
	case workerproto.FrameEarlyHints:
		msg, done, err := s.asm.Add(f)
		if err != nil || !done || c == nil {
			return err
		}
		return c.addHints(f.ID, msg)
	case workerproto.FrameRespBody:
		if c == nil {
			return nil
		}
		if f.Flags&workerproto.FlagErr != 0 {
			c.fail(f.ID, ErrWorkerAborted)
			return nil
		}
		return c.addBody(f.ID, f.Payload, f.Flags&workerproto.FlagEnd != 0)
	case workerproto.FrameRespTrailers:
		if f.Flags != workerproto.FlagBegin|workerproto.FlagEnd {
			return fmt.Errorf("dispatch: RESP_TRAILERS frame flagged %#x, want BEGIN|END", f.Flags)
		}
		if c == nil {
			return nil
		}
		return c.setTrailers(f.ID, f.Payload)
	case workerproto.FrameReqWindow:
		if f.Flags != workerproto.FlagBegin|workerproto.FlagEnd {
			return fmt.Errorf("dispatch: REQ_WINDOW frame flagged %#x, want BEGIN|END", f.Flags)
		}
		wp, err := workerproto.DecodeWindowPayload(f.Payload)
		if err != nil {
			return err
		}
		if c != nil {
			c.reqGrant(f.ID, wp.Grant)
		}
		return nil
	case workerproto.FrameError:
		msg, done, err := s.asm.Add(f)
		if err != nil || !done {
			return err
		}
		ep, err := workerproto.DecodeErrorPayload(msg)
		if err != nil {
			return err
		}
		if c != nil {
			s.log.Warn("worker answered with an error", "status", ep.Status, "message", ep.Message)
			c.fail(f.ID, &StatusError{Status: ep.Status, Reason: "worker error"})
		}
		return nil
	case workerproto.FrameWSAccept, workerproto.FrameWSText, workerproto.FrameWSBinary,
		workerproto.FrameWSClose, workerproto.FrameWSCredit:
		if c == nil {
			return nil
		}
		return c.onWSFrame(f.ID, workerproto.FrameType(f.Type), f.Flags, f.Payload)
	default:
		return fmt.Errorf("dispatch: worker sent frame type %d on the response ring", f.Type)
	}
}

func (s *Session) lookup(id uint64) *call {
	slot, gen := uint32(id), uint32(id>>32)
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(slot) < len(s.slots) && s.gens[slot] == gen {
		return s.slots[slot]
	}
	return nil // stale (cancelled, timed out) or never issued: dropped
}

// begin gives c a slot and an id.
func (s *Session) begin() *call {
	s.mu.Lock()
	var slot uint32
	if n := len(s.free); n > 0 {
		slot = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		slot = uint32(len(s.slots))
		s.slots = append(s.slots, nil)
		s.gens = append(s.gens, 1)
	}
	c := getCall(uint64(s.gens[slot])<<32 | uint64(slot))
	s.slots[slot] = c
	s.mu.Unlock()
	s.active.Add(1)
	return c
}

// end frees c's slot; frames still arriving for it are dropped.
func (s *Session) end(c *call) {
	slot := uint32(c.id)
	s.mu.Lock()
	s.slots[slot] = nil
	s.gens[slot]++
	s.free = append(s.free, slot)
	s.mu.Unlock()
	s.active.Add(-1)
	putCall(c)
}

// write sends one message on the request ring unless the session is gone.
func (s *Session) write(typ workerproto.FrameType, id uint64, flags uint32, payload []byte) error {
	s.ringMu.RLock()
	defer s.ringMu.RUnlock()
	if s.gone {
		return errRetry
	}
	return s.w.WriteMessage(s.ctx, int32(typ), id, flags, payload)
}

// close ends the session once: it stops new work at once, and a teardown goroutine
// fails the calls in flight (retryable if never taken off the ring) and releases the
// segment when nothing uses it any more. The control socket is only shut for
// writing here: the worker sees EOF and exits, and controlLoop keeps reading until
// the worker's EOF, which for an external worker is the proof that it has gone.
func (s *Session) close(err error) {
	s.closeOnce.Do(func() {
		s.err = err
		s.cancel()
		s.conn.CloseWrite()
		if s.a != nil {
			s.a.mu.Lock()
			s.a.removeLocked(s, stateGone)
			s.a.mu.Unlock()
		}
		go s.teardown()
	})
}

// teardown runs once the session has begun to end. A request whose REQ_HEAD is still
// on the request ring was never taken (PROTOCOL.md 1.1) and may run on another
// worker, but only once the worker provably takes no more records: a live worker
// may be reading that very record. So teardown stops the producers, waits (at most
// exitWait) for the worker to be gone, and only then reads what is left on the ring;
// without that proof every call in flight gets 502.
func (s *Session) teardown() {
	<-s.readerDone
	s.ringMu.Lock()
	s.gone = true // no request frame is written after this
	s.ringMu.Unlock()
	proven := true
	if s.inUse() {
		t := time.NewTimer(exitWait)
		select {
		case <-s.exited:
		case <-t.C:
			proven = false
			s.log.Warn("worker not known to be gone; failing its requests without retry", "wait", exitWait)
		}
		t.Stop()
	}
	s.ringMu.Lock()
	var untaken map[uint64]bool
	if proven {
		untaken = s.untaken()
	}
	s.mu.Lock()
	for _, c := range s.slots {
		if c == nil {
			continue
		}
		c.mu.Lock()
		id := c.id
		c.mu.Unlock()
		switch {
		case untaken[id]:
			c.fail(id, errRetry)
		case s.violated:
			c.fail(id, ErrBadResponse)
		default:
			c.fail(id, ErrWorkerDied)
		}
	}
	s.mu.Unlock()
	s.release()
	s.ringMu.Unlock()
	s.conn.Close()
	s.log.Info("worker session ended", "err", s.err)
	close(s.done)
}

// inUse reports whether any call holds a slot.
func (s *Session) inUse() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.free) < len(s.slots)
}

// untaken lists the requests whose REQ_HEAD is still on the request ring: the worker
// never took them, so they may run on another worker. The worker is gone, so the
// gateway reads the ring as its consumer would.
func (s *Session) untaken() map[uint64]bool {
	m := map[uint64]bool{}
	c, err := shmring.NewConsumer(s.seg.RequestRing(), nil)
	if err != nil {
		return m
	}
	c.Poll(func(f shmring.Frame) error {
		if workerproto.FrameType(f.Type) == workerproto.FrameReqHead && f.Flags&workerproto.FlagBegin != 0 {
			m[f.ID] = true
		}
		return nil
	})
	return m
}

func (s *Session) release() {
	if s.seg != nil {
		s.seg.Close()
	}
	if s.wbell != nil {
		s.wbell.Close()
	}
	if s.gbell != nil {
		s.gbell.Close()
	}
}
