package dispatch

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/covetpy/covetpy/workerproto"
)

// call is one request in flight on a session. The ring reader fills it; the goroutine
// in Serve drains it. Calls are pooled and reused.
type call struct {
	ready chan struct{} // capacity 1: "something changed"
	// timer bounds the handler; timerAt is when it fires (zero: stopped or
	// fired and received). Both are owned by the Serve goroutine. See armTimer.
	timer   *time.Timer
	timerAt time.Time

	mu      sync.Mutex
	id      uint64                   // generation<<32 | slot, as sent on the ring; 0 when pooled
	head    workerproto.ResponseHead // valid once gotHead
	gotHead bool
	body    [][]byte // response body not yet handed to the writer: pooled chunks, all but the last full
	// sent counts the response body bytes the worker has sent; limit is what it
	// may send: workerproto.ResponseWindow plus the grants (PROTOCOL.md 2.7).
	sent, limit int64
	done        bool  // END or RESP_TRAILERS seen, or failed
	err         error // set with done: a *StatusError, or (after the head) the cause of the abort
	// trailers holds a RESP_TRAILERS payload (PROTOCOL.md 3.10), valid once
	// gotTrailers is set (with done); immutable after that.
	trailers    workerproto.RespTrailers
	gotTrailers bool
	spare       [][]byte // the writer's emptied chunk list, swapped in on drain
	// hints holds the EARLY_HINTS received and not yet handed to the writer;
	// nhints counts all of the exchange's (at most workerproto.MaxEarlyHints).
	// hintsSpare is the writer's emptied list (owned by the Serve goroutine),
	// swapped in on drain: the decoded hints keep their memory for reuse.
	hints      []workerproto.EarlyHints
	hintsSpare []workerproto.EarlyHints
	nhints     int
	// ws is the WebSocket session state when the exchange is one
	// (websocket.go); nil for a request.
	ws *wsState
	// up is the request body's upload (upload.go), nil when the body went
	// with the head; set by the Serve goroutine before any grant can come.
	up *upload
	// file is the worker's RESP_FILE answer (a copy), set with gotHead and
	// done; immutable once set.
	file *workerproto.RespFile
}

// bodyChunk is the size of the pooled buffers that hold response body bytes between
// the ring reader and the writer, so that a large body costs no buffer growth, no
// copying on growth and no garbage.
const bodyChunk = 64 << 10

var chunkPool = sync.Pool{New: func() any { return new([bodyChunk]byte) }}

// heldBytes counts the chunks taken from chunkPool and not yet put back, in bytes:
// the response body bytes all calls of every dispatcher hold between the ring readers
// and the writers.
var heldBytes atomic.Int64

// HeldResponseBytes is the memory all responses in flight hold in the gateway
// between the ring readers and the front ends' writers, in whole 64 KiB chunks. A
// front end bounds it (gateway/server, max_buffered_response_bytes).
func HeldResponseBytes() int64 { return heldBytes.Load() }

// MaxResponseHeld is the most memory the body of one response in flight holds in
// the gateway between the ring reader and the writer, whatever the client does: the
// response window (PROTOCOL.md 2.7) in chunks, plus one partly filled chunk in the
// piece being written and one in what has arrived since. Written chunks go back to
// the pool before their bytes are granted back, so grants never raise it.
const MaxResponseHeld = workerproto.ResponseWindow + 2*bodyChunk

// putChunks returns the chunks to the pool and empties the list. Entries already
// returned (nil) are skipped.
func putChunks(chunks [][]byte) [][]byte {
	for i, b := range chunks {
		if b != nil {
			chunkPool.Put((*[bodyChunk]byte)(b[:bodyChunk]))
			heldBytes.Add(-bodyChunk)
			chunks[i] = nil
		}
	}
	return chunks[:0]
}

var callPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{ready: make(chan struct{}, 1), timer: t}
}}

func getCall(id uint64) *call {
	c := callPool.Get().(*call)
	c.mu.Lock()
	c.id, c.sent, c.limit = id, 0, workerproto.ResponseWindow
	c.mu.Unlock()
	return c
}

// grant raises the body window by n bytes; the caller then sends WINDOW.
func (c *call) grant(n int64) {
	c.mu.Lock()
	c.limit += n
	c.mu.Unlock()
}

// armTimer makes sure the timer fires no later than deadline. A timer still
// pending from an earlier request of this pooled call, due no later than
// deadline, is left running: when it fires early, Session.do sees that the
// deadline has not passed and arms it again. So a call normally costs no
// timer operation, where a Reset and a Stop per request cost two.
func (c *call) armTimer(now, deadline time.Time) {
	if !c.timerAt.IsZero() && c.timerAt.After(now) && !c.timerAt.After(deadline) {
		return
	}
	c.timerAt = deadline
	c.timer.Reset(deadline.Sub(now))
}

func putCall(c *call) { // the timer keeps running: see armTimer
	c.mu.Lock()
	c.id, c.gotHead, c.done, c.err, c.ws, c.up, c.file, c.gotTrailers = 0, false, false, nil, nil, nil, nil, false
	if c.nhints > 0 { // rare: do not keep hint payloads (up to 1 MiB each) pooled
		c.hints, c.hintsSpare, c.nhints = nil, nil, 0
	}
	c.mu.Unlock()
	c.body, c.spare = putChunks(c.body), putChunks(c.spare)
	select { // drop a stale wakeup
	case <-c.ready:
	default:
	}
	callPool.Put(c)
}

func (c *call) notify() {
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// Methods called by the ring reader, with the session's slot lock NOT held. Each
// takes the id the frame carried and ignores the call if it has been reused since.

// setHead takes a RESP_HEAD, or with whole a RESP frame: the head and the whole body.
func (c *call) setHead(id uint64, b []byte, whole bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != id {
		return nil
	}
	if c.gotHead || c.done || (c.ws != nil && c.ws.accepted && !c.ws.resumed) {
		return errSequence
	}
	if !whole {
		if err := c.head.Decode(b); err != nil {
			return err
		}
		c.gotHead = true
		c.notify()
		return nil
	}
	body, err := c.head.DecodeWithBody(b)
	if err != nil {
		return err
	}
	c.gotHead = true
	return c.addBodyLocked(body, true)
}

// setFile takes a RESP_FILE payload: the whole answer, in place of a head
// and body. The decoded answer is copied: the payload lives in the ring.
func (c *call) setFile(id uint64, b []byte) error {
	f, err := workerproto.DecodeRespFile(b)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != id {
		return nil
	}
	if c.gotHead || c.done {
		return errSequence
	}
	hs := make([]workerproto.Header, len(f.Headers))
	for i, h := range f.Headers {
		hs[i] = workerproto.Header{Name: bytes.Clone(h.Name), Value: bytes.Clone(h.Value)}
	}
	c.file = &workerproto.RespFile{Status: f.Status, Headers: hs, Path: strings.Clone(f.Path)}
	c.gotHead, c.done = true, true
	c.notify()
	return nil
}

// addHints takes an EARLY_HINTS payload. One after the response head (or after the
// exchange failed) is out of sequence, one past MaxEarlyHints over the limit, and a
// malformed one invalid: each ends the worker's session, as a second RESP_HEAD does.
func (c *call) addHints(id uint64, b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != id {
		return nil
	}
	if c.gotHead || c.done {
		return fmt.Errorf("%w: EARLY_HINTS after the response head", errSequence)
	}
	if c.nhints++; c.nhints > workerproto.MaxEarlyHints {
		return fmt.Errorf("dispatch: worker sent more than %d EARLY_HINTS for one request", workerproto.MaxEarlyHints)
	}
	n := len(c.hints)
	if n < cap(c.hints) {
		c.hints = c.hints[:n+1]
	} else {
		c.hints = append(c.hints, workerproto.EarlyHints{})
	}
	if err := c.hints[n].Decode(b); err != nil {
		c.hints = c.hints[:n]
		return err
	}
	c.notify()
	return nil
}

func (c *call) addBody(id uint64, p []byte, end bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != id {
		return nil
	}
	if !c.gotHead || c.done {
		return errSequence
	}
	return c.addBodyLocked(p, end)
}

func (c *call) addBodyLocked(p []byte, end bool) error {
	if c.sent += int64(len(p)); c.sent > c.limit {
		return fmt.Errorf("%w: %d bytes of response body, %d granted", errWindow, c.sent, c.limit)
	}
	for len(p) > 0 {
		n := len(c.body)
		if n == 0 || len(c.body[n-1]) == bodyChunk {
			c.body = append(c.body, chunkPool.Get().(*[bodyChunk]byte)[:0])
			heldBytes.Add(bodyChunk)
			n++
		}
		b := c.body[n-1]
		k := copy(b[len(b):bodyChunk], p)
		c.body[n-1] = b[:len(b)+k]
		p = p[k:]
	}
	if end {
		c.done = true
	}
	c.notify()
	return nil
}

// setTrailers takes a RESP_TRAILERS payload: it ends the body (PROTOCOL.md
// 2.10). It is in sequence only after a RESP_HEAD of a streamed body (-1) and
// before the body's END; anything else, like a malformed payload, ends the
// worker's session.
func (c *call) setTrailers(id uint64, b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != id {
		return nil
	}
	if !c.gotHead || c.done || c.head.Body != -1 || c.ws != nil {
		return fmt.Errorf("%w: RESP_TRAILERS not ending a streamed body", errSequence)
	}
	if err := c.trailers.Decode(b); err != nil {
		return err
	}
	c.gotTrailers, c.done = true, true
	c.notify()
	return nil
}

// reqGrant hands a REQ_WINDOW grant to the call's upload; one for a call without
// one (its body went whole, or has been sent) is ignored.
func (c *call) reqGrant(id uint64, n int64) {
	c.mu.Lock()
	up := c.up
	if c.id != id {
		up = nil
	}
	c.mu.Unlock()
	if up != nil {
		up.grant(n)
	}
}

func (c *call) fail(id uint64, err error) {
	c.mu.Lock()
	if c.id == id && !c.done {
		c.done, c.err = true, err
		c.notify()
	}
	c.mu.Unlock()
}
