package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
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
	ID  int64
	App string
	PID int

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
	err        error         // why the session ended; set before done closes
	readerDone chan struct{} // readLoop returned
	done       chan struct{} // teardown finished: calls failed, segment released
}

// Done is closed when the session has ended and released everything.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended; valid after Done is closed.
func (s *Session) Err() error { return s.err }

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
func (s *Session) controlLoop() {
	for {
		m, err := workerproto.RecvMessage(s.conn)
		if err != nil {
			s.close(fmt.Errorf("control socket: %w", err))
			return
		}
		switch m := m.(type) {
		case workerproto.Ping:
			if err := s.send(workerproto.Pong(m)); err != nil {
				s.close(err)
				return
			}
		case workerproto.Bye:
			s.log.Info("worker said bye", "reason", m.Reason)
			s.a.remove(s) // no new work; the session ends at EOF
		case *workerproto.Error:
			s.log.Warn("worker reported an error", "code", m.Code, "message", m.Message)
		}
	}
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
	case workerproto.FrameRespBody:
		if c == nil {
			return nil
		}
		if f.Flags&workerproto.FlagErr != 0 {
			c.fail(f.ID, ErrAborted)
			return nil
		}
		return c.addBody(f.ID, f.Payload, f.Flags&workerproto.FlagEnd != 0)
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
// segment when nothing uses it any more.
func (s *Session) close(err error) {
	s.closeOnce.Do(func() {
		s.err = err
		s.cancel()
		s.conn.Close()
		if s.a != nil {
			s.a.mu.Lock()
			s.a.removeLocked(s, stateGone)
			s.a.mu.Unlock()
		}
		go s.teardown()
	})
}

func (s *Session) teardown() {
	<-s.readerDone
	s.ringMu.Lock()
	s.gone = true
	untaken := s.untaken()
	s.mu.Lock()
	for _, c := range s.slots {
		if c == nil {
			continue
		}
		c.mu.Lock()
		id := c.id
		c.mu.Unlock()
		if untaken[id] {
			c.fail(id, errRetry)
		} else {
			c.fail(id, ErrWorkerDied)
		}
	}
	s.mu.Unlock()
	s.release()
	s.ringMu.Unlock()
	s.log.Info("worker session ended", "err", s.err)
	close(s.done)
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
