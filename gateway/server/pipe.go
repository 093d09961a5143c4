package server

import (
	"errors"
	"sync"
	"time"
)

// streamMin: a request body with a Content-Length over this, or a chunked one,
// goes to the backend as it arrives (a bodyPipe), not read whole first. A body up
// to it is read whole, which costs no goroutine and no pipe (alloc_test.go).
const streamMin = 64 << 10

// pipeSize is how much of a streamed request body the gateway holds between the
// connection's reader and the dispatcher: past it the reader stops reading the
// socket, and TCP's window slows the client.
const pipeSize = 256 << 10

// errPipeStopped: the backend needs no more of the body (its response is done).
var errPipeStopped = errors.New("server: request body no longer wanted")

// errClientGone breaks a streamed body off when the client's connection fails.
var errClientGone = errors.New("server: client went away mid-body")

// bodyPipe carries one streamed request body from the connection's reader (write,
// end) to the backend (Read, Stop: dispatch.BodyStream). It holds at most pipeSize
// bytes. The reader blocks in write while it is full; the time it spends there is
// the backend's, not the client's (blocked), so the body's minimum-rate deadline
// does not count it.
type bodyPipe struct {
	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte // ring of pipeSize bytes
	r, n    int    // next byte to read, bytes buffered
	err     error  // after the buffered bytes: io.EOF or the body's failure
	stopped bool   // Stop: Read and write return at once
	// blocked is the time write has spent waiting for room, for the reader.
	blocked time.Duration
}

func newBodyPipe() *bodyPipe {
	p := &bodyPipe{buf: make([]byte, pipeSize)}
	p.cond.L = &p.mu
	return p
}

// Read implements dispatch.BodyStream.
func (p *bodyPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.n == 0 && p.err == nil && !p.stopped {
		p.cond.Wait()
	}
	if p.stopped {
		return 0, errPipeStopped
	}
	if p.n == 0 {
		return 0, p.err
	}
	k := 0
	for k < len(b) && p.n > 0 {
		end := min(p.r+p.n, len(p.buf))
		c := copy(b[k:], p.buf[p.r:end])
		k += c
		p.r = (p.r + c) % len(p.buf)
		p.n -= c
	}
	// r stays where it is even when the pipe empties: the writer may be
	// filling the run after it (space); only the writer moves r back.
	p.cond.Broadcast() // room for the writer
	if p.n == 0 && p.err != nil {
		return k, p.err
	}
	return k, nil
}

// Stop implements dispatch.BodyStream.
func (p *bodyPipe) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// write copies b in, waiting for room; errPipeStopped once the backend has
// stopped (the caller then drops the rest of the body).
func (p *bodyPipe) write(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(b) > 0 {
		if p.n == len(p.buf) && !p.stopped {
			start := time.Now()
			for p.n == len(p.buf) && !p.stopped {
				p.cond.Wait()
			}
			p.blocked += time.Since(start)
		}
		if p.stopped {
			return errPipeStopped
		}
		w := (p.r + p.n) % len(p.buf)
		end := len(p.buf)
		if w < p.r {
			end = p.r
		}
		c := copy(p.buf[w:end], b)
		p.n += c
		b = b[c:]
		p.cond.Broadcast()
	}
	return nil
}

// space waits for room and returns the free run at the write end, at most
// max bytes, for the writer to fill and commit; nil once the backend has
// stopped. Only the writer writes there, and Read never reads past what was
// committed, so the run is filled without the lock.
func (p *bodyPipe) space(max int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == len(p.buf) && !p.stopped {
		start := time.Now()
		for p.n == len(p.buf) && !p.stopped {
			p.cond.Wait()
		}
		p.blocked += time.Since(start)
	}
	if p.stopped {
		return nil
	}
	if p.n == 0 {
		p.r = 0 // an empty pipe offers one run of its whole size
	}
	w := (p.r + p.n) % len(p.buf)
	end := len(p.buf)
	if w < p.r {
		end = p.r
	}
	return p.buf[w:min(end, w+max)]
}

// commit makes n bytes the writer put in space's run readable.
func (p *bodyPipe) commit(n int) {
	p.mu.Lock()
	p.n += n
	p.cond.Broadcast()
	p.mu.Unlock()
}

// end closes the write side: io.EOF for a complete body, or why it broke off.
func (p *bodyPipe) end(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// takeBlocked returns the time write has waited since the last call.
func (p *bodyPipe) takeBlocked() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.blocked
	p.blocked = 0
	return d
}
