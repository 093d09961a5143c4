package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/covetpy/covetpy/workerproto"
)

// The ring side of a WebSocket session (PROTOCOL.md 2.9). The front end owns the
// client's connection and hands it over as a WebSocketPeer; ServeWebSocket opens
// the session on a worker, carries whole messages both ways within each side's
// credit, and when the worker goes away either closes the client with 1012 or,
// for a resumable route, opens the session again on another worker.

// WSCloseWait is how long the gateway waits for the worker's WS_CLOSE after its
// own before it sends CANCEL and frees the id (PROTOCOL.md 2.9).
const WSCloseWait = 5 * time.Second

// Close codes the gateway itself uses toward the client (RFC 6455 7.4.1, and the
// IANA registry's 1012).
const (
	CloseNormal         = 1000
	CloseGoingAway      = 1001
	CloseInternalError  = 1011
	CloseServiceRestart = 1012
)

// wsState is the worker-facing half of a session on one worker, filled by the
// ring reader (call.onWSFrame) and drained by the session's goroutines. It hangs
// off the session's call, but is not pooled with it: the session keeps it after
// the call has been freed. Fields above creditMu are guarded by the call's mu.
type wsState struct {
	accepted   bool // WS_ACCEPT arrived, or the session is resumed (none is needed)
	resumed    bool
	subproto   string
	accHeaders []workerproto.Header // copied: the payload's memory is the reader's

	// Messages from the worker: whole ones waiting to be written to the client,
	// and the one being assembled; each with what it spent of the worker's window.
	msgs    []wsMsg
	cur     []byte
	curText bool
	curOpen bool
	curCost int64

	sent, limit int64 // the worker's spent window and its limit (our grants)

	closed      bool // the worker's WS_CLOSE arrived: it sends nothing more
	closeCode   int
	closeReason string

	creditMu   sync.Mutex
	credit     int64         // what we may still send the worker: its grants less our sends
	creditWake chan struct{} // capacity 1: credit arrived
}

type wsMsg struct {
	text bool
	p    []byte // from getMsgBuf; putMsgBuf once written
	cost int64
}

// Message buffers from the worker, pooled by size class so that an echo costs
// no allocation: a message takes the smallest class its first fragment fits
// (and grows by append past it), so a buffer is at most 4x its message and
// holds memory only while its message waits to be written.
var msgPools = [...]struct {
	size int
	pool sync.Pool
}{{size: 256}, {size: 4 << 10}, {size: 64 << 10}}

func getMsgBuf(n int) []byte {
	for i := range msgPools {
		if p := &msgPools[i]; n <= p.size {
			if b, ok := p.pool.Get().(*[]byte); ok {
				return (*b)[:0]
			}
			return make([]byte, 0, p.size)
		}
	}
	return make([]byte, 0, n)
}

func putMsgBuf(b []byte) {
	for i := range msgPools {
		if p := &msgPools[i]; cap(b) == p.size {
			b = b[:0]
			p.pool.Put(&b)
			return
		}
	}
}

// take spends cost of the credit if there is that much.
func (st *wsState) take(cost int64) bool {
	st.creditMu.Lock()
	defer st.creditMu.Unlock()
	if st.credit < cost {
		return false
	}
	st.credit -= cost
	return true
}

// errWSFrame: a WebSocket frame for an exchange that is not a session, or out of
// order. It ends the worker's session.
var errWSFrame = errors.New("dispatch: WebSocket frame out of sequence")

// onWSFrame handles a worker's WS_* frame for call c.
func (c *call) onWSFrame(id uint64, typ workerproto.FrameType, flags uint32, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != id {
		return nil
	}
	ws := c.ws
	if ws == nil || ws.closed || c.done {
		if c.done && ws != nil {
			return nil // failed meanwhile (the client left): late frames are dropped
		}
		return fmt.Errorf("%w: %v for an exchange that is not an open session", errWSFrame, typ)
	}
	single := flags == workerproto.FlagBegin|workerproto.FlagEnd
	switch typ {
	case workerproto.FrameWSAccept:
		if single && ws.resumed {
			return nil // PROTOCOL.md 2.9: ignored for a resumed session
		}
		if !single || ws.accepted || c.gotHead {
			return fmt.Errorf("%w: WS_ACCEPT flagged %#x, repeated, or after a response head", errWSFrame, flags)
		}
		a, err := workerproto.DecodeWSAccept(p)
		if err != nil {
			return err
		}
		ws.accepted, ws.subproto = true, a.Subprotocol
		for _, h := range a.Headers {
			ws.accHeaders = append(ws.accHeaders, workerproto.Header{Name: append([]byte(nil), h.Name...), Value: append([]byte(nil), h.Value...)})
		}
	case workerproto.FrameWSText, workerproto.FrameWSBinary:
		if !ws.accepted {
			return fmt.Errorf("%w: a message before WS_ACCEPT", errWSFrame)
		}
		cost := workerproto.WSCost(len(p))
		if ws.sent += cost; ws.sent > ws.limit {
			return fmt.Errorf("dispatch: worker overran its WebSocket window: %d of %d", ws.sent, ws.limit)
		}
		text := typ == workerproto.FrameWSText
		if flags&workerproto.FlagBegin != 0 {
			if ws.curOpen {
				return fmt.Errorf("%w: BEGIN inside a message", errWSFrame)
			}
			ws.curOpen, ws.curText, ws.cur, ws.curCost = true, text, getMsgBuf(len(p)), 0
		} else if !ws.curOpen || ws.curText != text {
			return fmt.Errorf("%w: a fragment continuing no message", errWSFrame)
		}
		ws.cur = append(ws.cur, p...)
		ws.curCost += cost
		if flags&workerproto.FlagEnd == 0 {
			return nil
		}
		ws.msgs = append(ws.msgs, wsMsg{text: text, p: ws.cur, cost: ws.curCost})
		ws.curOpen, ws.cur = false, nil
	case workerproto.FrameWSClose:
		if !single {
			return fmt.Errorf("%w: WS_CLOSE flagged %#x", errWSFrame, flags)
		}
		cl, err := workerproto.DecodeWSClose(p)
		if err != nil {
			return err
		}
		ws.closed, ws.closeCode, ws.closeReason = true, cl.Code, cl.Reason
	case workerproto.FrameWSCredit:
		if !single {
			return fmt.Errorf("%w: WS_CREDIT flagged %#x", errWSFrame, flags)
		}
		g, err := workerproto.DecodeWindowPayload(p)
		if err != nil {
			return err
		}
		ws.creditMu.Lock()
		ws.credit += g.Grant
		ws.creditMu.Unlock()
		select {
		case ws.creditWake <- struct{}{}:
		default:
		}
		return nil
	}
	c.notify()
	return nil
}

// wsSession is one client's session across the workers that serve it in turn.
type wsSession struct {
	d      *Dispatcher
	rt     *Route
	peer   WebSocketPeer
	head   workerproto.RequestHead
	window int64

	mu      sync.Mutex
	s       *Session // the worker serving it now; nil between workers
	id      uint64   // its request id there
	st      *wsState
	changed chan struct{} // closed (and replaced) when s changes or the session ends
	over    bool          // the session has ended: the reader stops

	clientEnd  chan struct{} // closed when readClient has returned
	clientCode int           // how the client's side ended (valid after clientEnd)
	clientWhy  string
}

// ServeWebSocket runs one WebSocket session (PROTOCOL.md 2.9) for an upgrade
// request routed to a KindWebSocket route; the peer's MaxMessage sizes both
// windows. Until the worker has
// accepted or rejected the session the route's deadline applies, and an error
// from api.go (a *StatusError, ErrCanceled) is returned for the front end to
// answer as it answers Serve's. Once the worker has decided, ServeWebSocket
// returns nil when the session is over: the peer has been answered (the
// worker's rejection) or closed, and neither goroutine uses it any more.
func (d *Dispatcher) ServeWebSocket(ctx context.Context, rt *Route, req *Request, peer WebSocketPeer) error {
	timeout := d.timeout(rt, req)
	w := &wsSession{d: d, rt: rt, peer: peer, head: req.Head, changed: make(chan struct{}), clientEnd: make(chan struct{})}
	w.head.TimeoutMS = timeout.Milliseconds()
	w.head.Body = 0
	w.window = min(max(2*int64(peer.MaxMessage()), workerproto.WSMinWindow), workerproto.MaxWindowGrant)
	if _, err := (&workerproto.WSOpen{Head: w.head, Window: w.window}).Append(nil); err != nil {
		return &StatusError{Status: 400, Reason: "request head not encodable"}
	}
	return w.run(ctx, time.Now().Add(timeout))
}

// attach opens the session on a live worker of the app with WS_OPEN.
func (w *wsSession) attach(ctx context.Context, resumed bool) (*Session, *call, error) {
	o := workerproto.WSOpen{Head: w.head, Resumed: resumed, Window: w.window}
	payload, err := o.Append(nil)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		s, err := w.rt.app.acquire(ctx, w.d.cfg)
		if err != nil {
			return nil, nil, err
		}
		w.rt.app.unclaim(s) // a session is not a request: it holds no credit
		c := s.begin()
		st := &wsState{accepted: resumed, resumed: resumed, limit: w.window, credit: w.window, creditWake: make(chan struct{}, 1)}
		c.mu.Lock()
		c.ws = st
		id := c.id
		c.mu.Unlock()
		if err := s.write(workerproto.FrameWSOpen, id, 0, payload); err != nil {
			s.end(c)
			if s.ctx.Err() == nil {
				s.close(fmt.Errorf("request ring: %w", err))
			}
			if attempt >= w.d.cfg.Retries {
				return nil, nil, ErrWorkerDied
			}
			continue
		}
		w.mu.Lock()
		w.s, w.id, w.st = s, id, st
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
		return s, c, nil
	}
}

// detach forgets the current worker; with over, the session is over.
func (w *wsSession) detach(over bool) {
	w.mu.Lock()
	w.s, w.id, w.st = nil, 0, nil
	w.over = w.over || over
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

func (w *wsSession) run(ctx context.Context, deadline time.Time) error {
	s, c, err := w.attach(ctx, false)
	if err != nil {
		return err
	}
	c.armTimer(time.Now(), deadline)
	for {
		select {
		case <-c.ready:
		case <-ctx.Done():
			s.abandon(c)
			return ErrCanceled
		case <-c.timer.C:
			if now := time.Now(); now.Before(deadline) {
				c.timerAt = time.Time{}
				c.armTimer(now, deadline)
				continue
			}
			c.timerAt = time.Time{}
			s.abandon(c)
			return ErrDeadline
		}
		c.mu.Lock()
		acc, gotHead, done, cerr := c.ws.accepted, c.gotHead, c.done, c.err
		sub, hs := c.ws.subproto, c.ws.accHeaders
		c.mu.Unlock()
		switch {
		case acc:
			if err := w.peer.Accept(sub, hs); err != nil {
				s.abandon(c)
				w.detach(true)
				w.peer.Close(CloseGoingAway, "")
				return nil
			}
			go w.readClient(ctx)
			w.pump(ctx, s, c)
			return nil
		case cerr != nil:
			s.end(c)
			if cerr == errRetry {
				cerr = ErrWorkerDied
			}
			return cerr
		case gotHead && done:
			w.reject(s, c) // the worker answered the upgrade with a response
			return nil
		}
	}
}

// reject writes the worker's HTTP answer to the upgrade request.
func (w *wsSession) reject(s *Session, c *call) {
	c.mu.Lock()
	chunks := c.body
	c.body = c.spare
	c.mu.Unlock()
	c.spare = chunks
	if w.peer.WriteHead(c.head.Status, c.head.Headers, c.head.Body) == nil && len(chunks) > 0 {
		w.peer.WriteBodyv(chunks)
	}
	s.end(c)
}

// readClient forwards the client's messages to the worker serving the session,
// each within the worker's credit; it returns when the client's side ends.
func (w *wsSession) readClient(ctx context.Context) {
	defer close(w.clientEnd)
	for {
		text, p, err := w.peer.ReadMessage()
		if err != nil {
			w.clientCode, w.clientWhy = 1006, ""
			var ce *CloseError
			if errors.As(err, &ce) {
				w.clientCode, w.clientWhy = ce.Code, ce.Reason
			}
			return
		}
		typ := workerproto.FrameWSBinary
		if text {
			typ = workerproto.FrameWSText
		}
		for sent := false; !sent; {
			w.mu.Lock()
			s, id, st, changed, over := w.s, w.id, w.st, w.changed, w.over
			w.mu.Unlock()
			if over {
				return
			}
			if s == nil {
				select {
				case <-changed:
				case <-ctx.Done():
					return
				}
				continue
			}
			if !st.take(w.cost(s, len(p))) {
				select {
				case <-st.creditWake:
				case <-changed:
				case <-ctx.Done():
					return
				}
				continue
			}
			// A failed write means the worker's session ended: the message goes
			// to the next worker, if the session resumes.
			sent = s.write(typ, id, 0, p) == nil
			if !sent {
				select {
				case <-changed:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// cost is what a message of n bytes spends of the worker's window on s's ring,
// one WSFrameCost per fragment the ring writer makes of it.
func (w *wsSession) cost(s *Session, n int) int64 {
	frags := 1
	if m := s.w.Producer.MaxPayload(); n > m {
		frags = (n + m - 1) / m
	}
	return int64(n) + int64(frags)*workerproto.WSFrameCost
}

// pump is the session's main loop: it writes the worker's messages to the
// client, grants their cost back, and handles the close from either side and
// the worker's death. It returns once the peer is closed and readClient done.
func (w *wsSession) pump(ctx context.Context, s *Session, c *call) {
	var owed int64 // cost written to the client and not yet granted back
	clientEnd := w.clientEnd
	var closeWait <-chan time.Time
	stop := func(code int, reason string) {
		w.detach(true)
		w.peer.Close(code, reason)
		<-w.clientEnd
	}
	for {
		select {
		case <-c.ready:
		case <-ctx.Done(): // the gateway is shutting down
			w.sendClose(s, c, CloseGoingAway, "gateway shutting down")
			w.awaitClose(s, c, time.Second)
			stop(CloseGoingAway, "")
			return
		case <-clientEnd:
			// The client's side ended: tell the worker and wait for its
			// WS_CLOSE, which ends the exchange.
			clientEnd = nil
			w.sendClose(s, c, w.clientCode, w.clientWhy)
			t := time.NewTimer(WSCloseWait)
			defer t.Stop()
			closeWait = t.C
			continue
		case <-closeWait:
			s.abandon(c)
			stop(CloseNormal, "")
			return
		}
		c.mu.Lock()
		ws := c.ws
		msgs := ws.msgs
		ws.msgs = nil
		closed, code, reason := ws.closed, ws.closeCode, ws.closeReason
		done, cerr, gotHead := c.done, c.err, c.gotHead
		c.mu.Unlock()
		for _, m := range msgs {
			err := w.peer.WriteMessage(m.text, m.p)
			putMsgBuf(m.p)
			if err != nil {
				continue // the connection is gone; readClient reports how
			}
			owed += m.cost
		}
		// Granting a quarter of the window at a time is enough: while less is
		// owed and nothing is left to write, the worker has three quarters.
		if owed >= w.window/4 && !closed {
			w.grant(s, c, owed)
			owed = 0
		}
		died := cerr == ErrWorkerDied || cerr == ErrBadResponse || cerr == errRetry
		switch {
		case closed:
			s.end(c)
			stop(code, reason)
			return
		case gotHead || (done && !died):
			// A rejection of a resumed session, or the worker's ERROR: it
			// broke off the session.
			if !done {
				s.abandon(c)
			} else {
				s.end(c)
			}
			stop(CloseInternalError, "")
			return
		case done: // the worker went away
			s.end(c)
			w.detach(false)
			if !w.rt.Resumable || clientEnd == nil {
				stop(CloseServiceRestart, "service restart")
				return
			}
			var err error
			if s, c, err = w.attach(ctx, true); err != nil {
				stop(CloseServiceRestart, "service restart")
				return
			}
			owed = 0
		}
	}
}

// grant gives the worker n more bytes of window (WS_CREDIT).
func (w *wsSession) grant(s *Session, c *call, n int64) {
	var buf [16]byte
	p, _ := workerproto.WindowPayload{Grant: n}.Append(buf[:0])
	c.mu.Lock()
	c.ws.limit += n
	id := c.id
	c.mu.Unlock()
	if err := s.write(workerproto.FrameWSCredit, id, 0, p); err != nil && s.ctx.Err() == nil && err != errRetry {
		s.close(fmt.Errorf("request ring: %w", err))
	}
}

// sendClose sends the worker WS_CLOSE for the session.
func (w *wsSession) sendClose(s *Session, c *call, code int, reason string) {
	cl := workerproto.WSClose{Code: code, Reason: reason}
	p, err := cl.Append(nil)
	if err != nil { // a reason the worker could not take: send the code alone
		cl.Reason = ""
		if p, err = cl.Append(nil); err != nil {
			return
		}
	}
	c.mu.Lock()
	id := c.id
	c.mu.Unlock()
	if err := s.write(workerproto.FrameWSClose, id, 0, p); err != nil && s.ctx.Err() == nil && err != errRetry {
		s.close(fmt.Errorf("request ring: %w", err))
	}
}

// awaitClose waits at most d for the worker's WS_CLOSE (or the call's failure),
// then frees the id, with CANCEL if the worker has not closed.
func (w *wsSession) awaitClose(s *Session, c *call, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		c.mu.Lock()
		closed := c.ws.closed || c.done
		c.mu.Unlock()
		if closed {
			s.end(c)
			return
		}
		select {
		case <-c.ready:
		case <-t.C:
			s.abandon(c)
			return
		}
	}
}
