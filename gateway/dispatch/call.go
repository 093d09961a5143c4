package dispatch

import (
	"sync"
	"time"

	"github.com/covetpy/covetpy/workerproto"
)

// call is one request in flight on a session. The ring reader fills it; the goroutine
// in Serve drains it. Calls are pooled and reused.
type call struct {
	ready chan struct{} // capacity 1: "something changed"
	timer *time.Timer   // the handler deadline; owned by the Serve goroutine

	mu      sync.Mutex
	id      uint64                   // generation<<32 | slot, as sent on the ring; 0 when pooled
	head    workerproto.ResponseHead // valid once gotHead
	gotHead bool
	body    []byte // response body bytes not yet handed to the writer
	done    bool   // END seen, or failed
	err     error  // set with done: a *StatusError or ErrAborted
	spare   []byte // the writer's previous body buffer, swapped in on drain
}

var callPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{ready: make(chan struct{}, 1), timer: t}
}}

func getCall(id uint64) *call {
	c := callPool.Get().(*call)
	c.mu.Lock()
	c.id = id
	c.mu.Unlock()
	return c
}

func putCall(c *call) {
	c.timer.Stop()
	c.mu.Lock()
	c.id, c.gotHead, c.done, c.err = 0, false, false, nil
	c.mu.Unlock()
	// Keep small buffers for the next call; let a large response's go.
	c.body, c.spare = reuse(c.body), reuse(c.spare)
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

func (c *call) setHead(id uint64, b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != id {
		return nil
	}
	if c.gotHead || c.done {
		return errSequence
	}
	if err := c.head.Decode(b); err != nil {
		return err
	}
	c.gotHead = true
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
	c.body = append(c.body, p...)
	if end {
		c.done = true
	}
	c.notify()
	return nil
}

func (c *call) fail(id uint64, err error) {
	c.mu.Lock()
	if c.id == id && !c.done {
		c.done, c.err = true, err
		c.notify()
	}
	c.mu.Unlock()
}

// maxPooledBody is the largest body buffer a pooled call keeps.
const maxPooledBody = 256 << 10

func reuse(b []byte) []byte {
	if cap(b) > maxPooledBody {
		return nil
	}
	return b[:0]
}
