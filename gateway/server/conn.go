package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/engine"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/covetpy/covetpy/workerproto"
)

const (
	// initialReadBuf is the size of a connection's read buffer (from
	// readBufs); it grows, up to MaxRequestLine+MaxHeaderBytes+2, only for a
	// head that needs it, and goes back while the connection waits for a
	// request.
	initialReadBuf = 8 << 10
	// lingerTimeout is how long a connection keeps reading (and dropping)
	// input after it has sent its last response and half-closed, so that
	// unread client bytes do not turn the close into a reset that could
	// destroy the response in flight.
	lingerTimeout = 500 * time.Millisecond
	// maxKeptBody is the largest body buffer an exchange keeps for reuse.
	maxKeptBody = 1 << 20
	// writerLinger is how long a writer with nothing left to answer waits
	// for the next request before it returns: a busy keep-alive connection
	// keeps its writer (starting one per request cost about a tenth of a
	// request's time, mostly in growing its stack), an idle one soon holds
	// none. The reader stops it (readExpired).
	writerLinger = time.Second
)

// conn is one client connection: a reader goroutine (serve/readLoop) that
// parses requests and queues them, and, while there is work, a writer
// goroutine (writeLoop) that answers them one at a time, in order. The
// reader starts a writer when it queues onto a connection that has none,
// and stops it once it has had nothing to answer for writerLinger.
type conn struct {
	// Immutable after newConn.
	srv    *Server
	cfg    *Config
	nc     engine.Conn
	remote string
	// tls is the connection's TLS state; nil for cleartext. clientCert is
	// its verified client certificate, for the workers; nil for none.
	tls        *tls.ConnectionState
	clientCert *workerproto.ClientCert
	// ip is the address the connection counts against in Server.perIP
	// (max_conns_per_ip), released when it closes; not valid when it is
	// not counted (or is counted by its proxiedConn: TLS).
	ip     netip.Addr
	ctx    context.Context // cancelled when the client is gone or the Server closes
	cancel context.CancelFunc

	// writerDone is closed when the writer stops for good: after a
	// response that ends the connection, or when it returns with nothing
	// left to answer once the reader has finished (readerDone).
	writerDone chan struct{}
	// startWriter is c.writeLoop, made once: "go c.writeLoop()" would
	// allocate a closure per request.
	startWriter func()

	// Owned by the reader goroutine.
	p *http1.Parser
	// queue is the running writer's (reader -> writer, cap MaxPipelined),
	// made when the reader starts one; nil while there is none.
	queue chan item
	// ri is nc's ReadIdle, when it has one: between requests the reader
	// then holds no buffer (buf is nil) while it waits for bytes.
	ri idleReader
	// pr is nc's ParkRead, when it has one (the io_uring engine): an idle
	// connection then holds no goroutine at all until bytes arrive; resume
	// is c.serve, made once.
	pr     parkReader
	resume func()
	// fresh: the reader has just moved to a new goroutine (serve), whose
	// first wait must not grow its stack.
	fresh   bool
	buf     []byte
	r, w    int       // buf[r:w] is read but not consumed by the parser
	maxBuf  int       // MaxRequestLine + MaxHeaderBytes + 2
	cur     *exchange // the exchange the parser is filling
	discard bool      // cur's body is read and dropped (the gateway answers cur)
	// streamed: the message being parsed went to the writer at its head,
	// and its body goes through pipe (pipe.go) as it arrives; pipe is nil
	// once the backend has stopped wanting it (the rest is dropped).
	streamed  bool
	pipe      *bodyPipe
	lastRead  time.Time // when the last bytes arrived (the accept, before any)
	headStart time.Time // first byte of the head being read; zero when none
	bodyStart time.Time // end of the head whose body is being read
	bodyRead  int64     // decoded body bytes of the current message
	curExpect bool      // the current message awaits 100 Continue
	ridSeed   uint64
	ridN      uint64

	// Guarded by mu; shared by reader, writer and Server.Shutdown.
	mu         sync.Mutex
	inflight   int  // items queued and not yet answered
	readerIdle bool // reader is waiting for the first byte of a request
	closing    bool // the writer (or Shutdown) is closing the connection
	// writing: a writer goroutine is running; with inflight 0 it is idle,
	// waiting on the queue since idleFrom, until the reader stops it.
	writing    bool
	readerDone bool // the reader has finished: it queues nothing more
	// writerEnding: the writer is closing the connection after a response
	// that ends it (closing is set too), and then stops for good.
	writerEnding bool
	// livePipe is the pipe of the last streamed body queued: the reader may
	// be blocked writing into it. A writer that ends the connection stops
	// it, so that a body queued behind the response that ended it does not
	// hold the reader forever.
	livePipe *bodyPipe
	// contPending counts queued 100 Continue answers not yet written, and
	// contSent is when the last was. A body the client was asked for with
	// 100 Continue is timed from then, and not at all before: bodyWait says
	// the reader is blocked on such a body with no deadline, for the
	// writer to arm one when it sends the 100.
	contPending int
	contSent    time.Time
	bodyWait    bool
	// readArmed is the read deadline set on the socket (zero: none); it
	// may be earlier than the one that applies (armReadLocked). idleFrom
	// is when the writer answered the last queued request.
	readArmed time.Time
	idleFrom  time.Time
	// idleAt is when the reader last found itself idle: the last bytes
	// read (the accept, before any). The later of it and idleFrom is when
	// the connection became idle (idleSince).
	idleAt time.Time

	// writeStart is when the writer's current write began (UnixNano), 0
	// between writes; read by shedSlowReaders.
	writeStart atomic.Int64

	// Owned by the writer goroutine (one at a time: each is started under
	// mu after the last has returned).
	wbuf     []byte
	werr     error       // sticky write error
	sent     bool        // some byte of the current response reached the socket
	bufs     net.Buffers // writev's argument, consumed by WriteTo
	bufStore [][]byte    // the backing array of bufs, kept between writes
	// writeArmed is the write deadline set on the socket (zero: none yet);
	// bounded leaves it while it has not passed.
	writeArmed time.Time
	// lingering: the writer half-closed after a complete last response;
	// read by serve after writerDone.
	lingering bool
	rw        respWriter
	dreq      dispatch.Request
	rhdrs     []http1.Header
	num       [20]byte // scratch for Retry-After
	status    int      // status of the response being written; 0: none yet
	wrote     int64    // bytes of it written to the socket
	// blocked is the time spent in writes of the current response, for
	// the MinWriteRate rule (bounded).
	blocked time.Duration
	obs     obsCache // metrics handle of the last (route, method): observe.go
}

func newConn(s *Server, nc net.Conn) *conn {
	cfg := &s.cfg
	c := &conn{
		srv:        s,
		cfg:        cfg,
		nc:         engine.Wrap(nc),
		writerDone: make(chan struct{}),
		p:          http1.NewParser(cfg.Limits),
		maxBuf:     cfg.Limits.MaxRequestLine + cfg.Limits.MaxHeaderBytes + 2,
		ridSeed:    rand.Uint64(),
		lastRead:   time.Now(),
	}
	if a := nc.RemoteAddr(); a != nil {
		c.remote = a.String()
	}
	c.ri, _ = c.nc.(idleReader)
	if c.pr, _ = c.nc.(parkReader); c.pr != nil {
		c.resume = c.serve
	}
	c.startWriter = c.writeLoop
	c.ctx, c.cancel = context.WithCancel(s.baseCtx)
	c.rw.c = c
	return c
}

// serve runs the connection: it reads on this goroutine and answers on
// another (started by enqueue), then closes the socket once both are done.
//
// When the reader stops an idle writer, the connection goes on waiting on a
// new goroutine (fresh), whose stack is the smallest there is (2 KiB): this
// one's has grown with parsing and routing, and the runtime shrinks a
// parked goroutine's stack only to four times what it uses (4 KiB here),
// while the stacks the writers leave free are gaps among the readers' that
// the runtime cannot give back. On an engine that can (parkReader: io_uring)
// it waits on no goroutine at all: the engine starts serve again once bytes
// arrive, the read fails or the idle deadline passes.
func (c *conn) serve() {
	clientGone, idle := c.readLoop()
	c.breakBody(errClientGone) // a body still streaming ends here, whatever ended the reading
	if idle {
		c.fresh = true
		if c.pr != nil {
			c.pr.ParkRead(c.resume) // no goroutine until bytes (or the deadline) come
		} else {
			go c.serve()
		}
		return
	}
	defer c.srv.trackConn(c, false)
	defer c.srv.metrics.ConnClosed(metrics.ProtoHTTP1)
	if clientGone {
		// Cancel whatever is being served so the dispatcher sends CANCEL
		// to the worker.
		c.cancel()
	}
	c.mu.Lock()
	c.readerDone = true
	// A writer ending the connection is not idle, even with nothing left
	// to answer: it is closing after its last response.
	writing, idle := c.writing, c.inflight == 0 && !c.writerEnding
	if idle {
		c.writing = false
	}
	c.mu.Unlock()
	switch {
	case writing && idle:
		c.stopWriter()
	case writing:
		<-c.writerDone // it answers what is queued, then returns
	}
	if c.lingering && !clientGone {
		// The last response is out and the write side half-closed: drop
		// what the client still sends until it closes or the linger
		// deadline (set by closeWrite) passes, so the close is no reset.
		c.ensureBuf()
		for {
			if _, err := c.nc.Read(c.buf); err != nil {
				break
			}
		}
	}
	c.cancel()
	c.nc.Close()
	c.srv.releaseIP(c.ip)
	c.releaseBuf()
}

// idleReader is implemented by a connection that can wait for bytes holding
// no read buffer (sockConn.ReadIdle).
type idleReader interface {
	ReadIdle(get func() []byte, put func([]byte)) ([]byte, int, error)
}

// parkReader is implemented by a connection that can run a function once a
// read would not wait, holding no goroutine until then (uconn.ParkRead).
type parkReader interface {
	ParkRead(fn func())
}

// readBufs holds read buffers of the initial size that no connection holds:
// a connection waiting for its next request gives its buffer back (when its
// socket has ReadIdle), and takes one again when bytes arrive.
var readBufs = sync.Pool{New: func() any { return new([initialReadBuf]byte) }}

func getReadBuf() []byte { return readBufs.Get().(*[initialReadBuf]byte)[:] }

// putReadBuf keeps b for another connection if it has the initial size; a
// grown one is left to the collector.
func putReadBuf(b []byte) {
	if cap(b) == initialReadBuf {
		readBufs.Put((*[initialReadBuf]byte)(b[:initialReadBuf]))
	}
}

// getFirstBuf and putFirstBuf are ReadIdle's get and put for a reader that
// has just moved to a new goroutine (readLoop): a request's first bytes
// after an idle second may take one more read.
func getFirstBuf() []byte { return make([]byte, 32) }
func putFirstBuf([]byte)  {}

// ensureBuf gives the reader a read buffer if it has none.
func (c *conn) ensureBuf() {
	if c.buf == nil {
		c.buf = getReadBuf()
	}
}

// releaseBuf gives the read buffer back; nothing is buffered in it.
func (c *conn) releaseBuf() {
	if c.buf != nil {
		putReadBuf(c.buf)
		c.buf, c.r, c.w = nil, 0, 0
	}
}

type parseResult uint8

const (
	parseMore  parseResult = iota // read more bytes
	parseDrain                    // no more requests: watch the socket until close
	parseStop                     // the writer is gone, or the connection upgraded (ws_http1.go): stop reading
)

// readLoop reads and parses until the connection ends. It reports whether
// the client went away (EOF or a socket error), as opposed to a timeout or
// the connection being closed from this side after its last response; or,
// with idle, that it stopped the idle writer of a connection waiting for a
// request with nothing buffered, for serve to go on on a new goroutine.
func (c *conn) readLoop() (clientGone, idle bool) {
	draining := false
	for {
		if !draining {
			switch c.parseBuffered() {
			case parseDrain:
				draining = true
			case parseStop:
				return false, false
			}
		}
		// Waiting for the first byte of a request with nothing buffered:
		// the buffer goes back to readBufs until bytes arrive.
		waitIdle := c.waitsIdle(draining)
		if waitIdle {
			c.releaseBuf()
			if c.cur != nil { // left by a rejected request (parseBuffered)
				recycle(c.cur)
				c.cur = nil
			}
		} else if draining {
			c.ensureBuf()
			c.r, c.w = 0, 0
		} else if !c.makeRoom() {
			// Cannot happen with a correct parser: it rejects a head
			// before it outgrows the buffer.
			c.enqueue(item{perr: &http1.Error{Status: 431, Reason: "head_too_large", Close: true}})
			draining = true
			c.r, c.w = 0, 0
		} else if c.pipe != nil && c.bodyRead >= streamMin && len(c.buf) < chunkedReadBuf {
			// A large chunked body goes through buf (its framing must be
			// parsed): read it in larger pieces than a head needs.
			nb := make([]byte, min(chunkedReadBuf, c.maxBuf))
			c.w = copy(nb, c.buf[c.r:c.w])
			c.r = 0
			putReadBuf(c.buf)
			c.buf = nb
		}
		idle := c.setReadDeadline(draining)
		var n int
		var err error
		if waitIdle && c.fresh {
			// readBufs' Get and Put would grow the new stack: wait with
			// a small buffer from the heap, and move what it got to a
			// read buffer once bytes are in.
			c.fresh = false
			var first []byte
			first, n, err = c.ri.ReadIdle(getFirstBuf, putFirstBuf)
			if n > 0 {
				c.buf = getReadBuf()
				copy(c.buf, first[:n])
			}
			c.r, c.w = 0, n
		} else if waitIdle {
			c.buf, n, err = c.ri.ReadIdle(getReadBuf, putReadBuf)
			c.r, c.w = 0, n
		} else if dst := c.pipeDst(draining); dst != nil {
			n, err = c.nc.Read(dst)
			c.takePiped(dst, n)
		} else if dst := c.bodyDst(draining); dst != nil {
			n, err = c.nc.Read(dst)
			c.takeBody(n)
		} else {
			n, err = c.nc.Read(c.buf[c.w:])
			c.w += n
		}
		if n > 0 {
			c.srv.metrics.BytesIn(n)
			c.lastRead = time.Now()
			if idle { // no longer idle: Shutdown must wait for this request
				c.mu.Lock()
				c.readerIdle = false
				c.mu.Unlock()
			}
			continue // a later Read reports err again, if it persists
		}
		if err == nil {
			continue
		}
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		if closing {
			return false, false
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			c.debug("read", err)
			return true, false
		}
		expired, stopped := c.readExpired(draining)
		if !expired {
			if stopped && c.waitsIdle(draining) {
				// Arm the idle deadline here: setting it on the new
				// goroutine would grow its stack.
				c.setReadDeadline(false)
				return false, true
			}
			continue
		}
		if draining {
			return false, false
		}
		if c.streamed {
			c.breakBody(errTimeout) // its exchange answers it
		} else if st := c.p.State(); st == http1.StateHead || st == http1.StateBody {
			c.enqueue(item{perr: errTimeout})
		}
		return false, false
	}
}

// waitsIdle reports whether the reader waits for the first byte of a
// request with nothing buffered, on a socket that can wait holding no read
// buffer (ReadIdle).
func (c *conn) waitsIdle(draining bool) bool {
	return c.ri != nil && !draining && c.r == c.w && c.p.State() == http1.StateIdle
}

// makeRoom makes space at the end of buf for the next read, keeping the
// unconsumed bytes. It reports false when buf is full at its largest size.
func (c *conn) makeRoom() bool {
	c.ensureBuf()
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	if c.w < len(c.buf) {
		return true
	}
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
		return true
	}
	if len(c.buf) >= c.maxBuf {
		return false
	}
	nb := make([]byte, min(2*len(c.buf), c.maxBuf))
	c.w = copy(nb, c.buf[c.r:c.w])
	c.r = 0
	c.buf = nb
	return true
}

// setReadDeadline keeps the socket's read deadline in step with the
// parser's state (readDeadlineLocked) before a read. It reports whether the
// reader is now idle.
func (c *conn) setReadDeadline(draining bool) bool {
	st := c.p.State()
	if st == http1.StateHead {
		if c.headStart.IsZero() {
			c.headStart = c.lastRead
		}
	} else {
		c.headStart = time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.armReadLocked(earliest(c.readDeadlineLocked(draining), c.writerStopLocked()))
	return c.readerIdle
}

// writerStopLocked is when the reader is to stop the writer, which has had
// nothing to answer since idleFrom; zero when none is idle.
func (c *conn) writerStopLocked() time.Time {
	if !c.writing || c.inflight != 0 || c.writerEnding {
		return time.Time{}
	}
	return c.idleFrom.Add(writerLinger)
}

// earliest returns the earlier of two deadlines, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// readDeadlineLocked returns the deadline that applies to the parser's
// state, zero for none: idle (only once every queued request has been
// answered, counted from then or from the last bytes read, whichever is
// later), head (from its first byte) or body (the minimum-rate rule). Every
// deadline is anchored to a past event, so asking again after it passed
// gives the same answer. It also records whether the reader is idle.
func (c *conn) readDeadlineLocked(draining bool) time.Time {
	st := c.p.State()
	c.readerIdle = !draining && st == http1.StateIdle && c.r == c.w
	if c.readerIdle {
		c.idleAt = c.lastRead
	}
	c.bodyWait = false
	switch {
	case draining, st == http1.StateIdle:
		if c.inflight > 0 {
			return time.Time{}
		}
		from := c.lastRead
		if c.idleFrom.After(from) {
			from = c.idleFrom
		}
		if draining {
			return from.Add(lingerTimeout)
		}
		return from.Add(c.cfg.IdleTimeout)
	case st == http1.StateHead:
		return c.headStart.Add(c.cfg.ReadHeaderTimeout)
	case c.curExpect && c.contPending > 0:
		c.bodyWait = true // not asked for yet: no deadline
		return time.Time{}
	default:
		if c.curExpect && c.contSent.After(c.bodyStart) {
			c.bodyStart = c.contSent
		}
		return c.cfg.bodyDeadline(c.bodyStart, c.bodyRead)
	}
}

// armReadLocked makes sure a read cannot block past dl (zero: no limit
// needed). A deadline already armed no later than dl stays: when it passes
// early, the reader asks readDeadlineLocked again and re-arms (readLoop), so
// a keep-alive request normally costs no timer operation at all, where
// arming and clearing the deadline per request cost two.
func (c *conn) armReadLocked(dl time.Time) {
	if dl.IsZero() || (!c.readArmed.IsZero() && !c.readArmed.After(dl)) {
		return
	}
	c.readArmed = dl
	c.nc.SetReadDeadline(dl)
}

// readExpired is called when a read failed with the deadline passed. It
// stops the writer if it has been idle for writerLinger (and says so), and
// reports whether a timeout really applies; if not (the armed deadline was an
// earlier, stale one, or the writer's), the deadline is cleared for the next
// pass of the read loop to arm the right one. Once the writer is closing,
// the deadline is its own (closeWrite) and always applies.
func (c *conn) readExpired(draining bool) (expired, stopped bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return true, false
	}
	now := time.Now()
	ws := c.writerStopLocked()
	stop := !ws.IsZero() && !now.Before(ws)
	if stop {
		c.writing = false
	}
	dl := c.readDeadlineLocked(draining)
	expired = !dl.IsZero() && !now.Before(dl)
	if !expired {
		c.readArmed = time.Time{}
		c.nc.SetReadDeadline(time.Time{})
	}
	c.mu.Unlock()
	if stop {
		c.stopWriter()
	}
	return expired, stop
}

// stopWriter ends the idle writer (the caller has cleared writing under mu)
// and drops its queue; the next enqueue starts a new writer with a new one.
// The queue is empty (inflight is 0), so this does not block. The writer
// returns on the stop item touching nothing, and its state was last written
// before it went idle (under mu), so the reader drops what the writer kept
// between responses: an idle connection holds no write buffer, and nothing
// that points into exchanges.
func (c *conn) stopWriter() {
	c.queue <- item{stop: true}
	c.queue = nil
	c.wbuf, c.rhdrs, c.bufStore = nil, nil, nil
	c.dreq = dispatch.Request{}
	c.rw = respWriter{c: c}
}

// parseBuffered runs the parser over the buffered bytes until it needs
// more, queueing what it finds.
func (c *conn) parseBuffered() parseResult {
	for {
		if c.cur == nil {
			if c.r == c.w && c.p.State() == http1.StateIdle {
				return parseMore // no exchange is taken before bytes arrive
			}
			c.cur = getExchange()
		}
		x := c.cur
		ev, n, err := c.p.Next(c.buf[c.r:c.w], &x.req)
		c.r += n
		if err != nil {
			if err == http1.ErrNeedMore {
				return parseMore
			}
			if err == http1.ErrClosed {
				return parseDrain
			}
			pe, ok := err.(*http1.Error)
			if !ok { // not part of the parser's contract
				pe = &http1.Error{Status: 400, Reason: "parse_error", Close: true}
			}
			c.debug("reject", pe)
			if c.streamed {
				// The body broke off (over max_body_bytes, bad chunked
				// framing): its exchange answers it, or closes.
				c.breakBody(pe)
				return parseDrain
			}
			if !c.enqueue(item{perr: pe}) {
				return parseStop
			}
			if pe.Close {
				return parseDrain
			}
			continue
		}
		switch ev.Kind {
		case http1.EventHead:
			c.headStart = time.Time{}
			c.bodyStart, c.bodyRead = c.lastRead, 0 // when the head's last bytes arrived
			x.start = c.bodyStart
			c.classify(x)
			c.wsClassify(x)
			c.discard = x.answer != 0
			c.curExpect = false
			x.body = x.body[:0]
			x.pipe = nil
			if x.req.ExpectContinue && x.req.HasBody() {
				if x.answer != 0 {
					// Rejected before the body was asked for: answer,
					// never read the body, close (RFC 9110 §10.1.1).
					x.closeAfter = true
					c.cur = nil
					if !c.enqueue(item{x: x}) {
						return parseStop
					}
					return parseDrain
				}
				c.curExpect = true
				if !c.enqueue(item{cont: true}) {
					return parseStop
				}
			}
			if !c.discard && (x.req.Chunked || x.req.ContentLength > streamMin) {
				// A large body, or one of unknown length: the backend takes
				// it as it arrives. The exchange is the writer's from here;
				// the parser must not store trailers in it.
				x.pipe = newBodyPipe()
				c.pipe, c.streamed = x.pipe, true
				c.p.Detach()
				c.cur = nil
				if !c.enqueue(item{x: x}) {
					return parseStop
				}
				continue
			}
			if !c.discard && x.req.ContentLength > 0 {
				x.body = growBody(x.body, x.req.ContentLength)
			}
		case http1.EventBody:
			c.bodyRead += int64(len(ev.Data))
			switch {
			case c.pipe != nil:
				if c.pipe.write(ev.Data) != nil {
					c.pipe = nil // the backend is done: drop the rest
				} else if d := c.pipe.takeBlocked(); d > 0 {
					// Waiting for the backend is not the client's slowness.
					c.bodyStart = c.bodyStart.Add(d)
				}
			case c.streamed, c.discard:
			default:
				x.body = append(x.body, ev.Data...)
			}
		case http1.EventEnd:
			if c.streamed {
				if c.pipe != nil {
					c.pipe.end(io.EOF)
				}
				c.pipe, c.streamed = nil, false
				continue // cur is still empty, for the next message
			}
			c.cur = nil
			if x.ws.upgrade {
				return c.wsHandOver(x)
			}
			if !c.enqueue(item{x: x}) {
				return parseStop
			}
		}
	}
}

// growBody makes room for a Content-Length body, up to 64 KiB ahead: the
// rest grows as bytes arrive, so a false length costs no memory.
func growBody(b []byte, n int64) []byte {
	n = min(n, bodyStep)
	if int64(cap(b)) >= n {
		return b
	}
	return make([]byte, 0, n)
}

const (
	// bodyStep is how far ahead of the bytes received a request body's
	// buffer grows.
	bodyStep = 64 << 10
	// directBodyMin: with at least this much of a Content-Length body still
	// to come and nothing buffered, the reader reads it straight into the
	// body (bodyDst); below it, through buf, which also takes in whatever
	// the client sent after the body.
	directBodyMin = 4 << 10
	// chunkedReadBuf is the read buffer of a connection reading a chunked
	// body past streamMin (at most maxBuf).
	chunkedReadBuf = 64 << 10
)

// bodyDst returns where the next read should go when it can skip buf: the
// free end of the body being read, at most up to that body's end, so that
// the bytes after it still arrive in buf. nil means buf.
func (c *conn) bodyDst(draining bool) []byte {
	if draining || c.r != c.w || c.cur == nil || c.discard || c.streamed {
		return nil
	}
	rem := c.p.BodyRemaining()
	if rem < directBodyMin {
		return nil
	}
	x := c.cur
	n := len(x.body)
	want := int(min(rem, bodyStep)) // at least directBodyMin
	if cap(x.body)-n < directBodyMin {
		// Grow only when the room left is under directBodyMin, else read
		// into what room there is: a client trickling the body a byte per
		// segment costs no allocation per read, only one per step
		// (TestBodyTrickleAllocs). Doubling, never past the declared end: a
		// false length costs at most twice what the client really sent, or
		// one step.
		nb := make([]byte, n, n+max(want, int(min(rem, int64(n)))))
		copy(nb, x.body)
		x.body = nb
	}
	return x.body[n:min(n+want, cap(x.body))]
}

// pipeDst is bodyDst for a streamed body of known length: the free run at
// the write end of its pipe, up to the body's end, so that a large upload is
// read from the socket straight into the pipe, in reads of up to the pipe's
// size, not through buf. It waits while the pipe is full (the backend's time,
// not the client's). nil means buf (or bodyDst).
func (c *conn) pipeDst(draining bool) []byte {
	if draining || c.r != c.w || c.pipe == nil {
		return nil
	}
	rem := c.p.BodyRemaining()
	if rem < directBodyMin {
		return nil // chunked (0), or the end of the body: through buf
	}
	dst := c.pipe.space(int(min(rem, pipeSize)))
	if dst == nil {
		c.pipe = nil // the backend is done: drop the rest, through buf
	}
	if d := c.pipeBlocked(); d > 0 {
		c.bodyStart = c.bodyStart.Add(d)
	}
	return dst
}

// pipeBlocked is the time the reader has waited on the pipe since last asked.
func (c *conn) pipeBlocked() time.Duration {
	if c.pipe == nil {
		return 0
	}
	return c.pipe.takeBlocked()
}

// takePiped hands the parser the n bytes a read put in dst (pipeDst) and
// makes them readable by the backend.
func (c *conn) takePiped(dst []byte, n int) {
	if n <= 0 {
		return
	}
	ev, k, err := c.p.Next(dst[:n], nil)
	if err != nil || ev.Kind != http1.EventBody || k != n {
		// Cannot happen: n is at most BodyRemaining.
		panic("server: direct body read not taken whole by the parser")
	}
	c.pipe.commit(n)
	c.bodyRead += int64(n)
}

// takeBody hands the parser the n bytes a read put at the end of the
// current body (bodyDst); they stay where they are.
func (c *conn) takeBody(n int) {
	if n <= 0 {
		return
	}
	x := c.cur
	start := len(x.body)
	ev, k, err := c.p.Next(x.body[start:start+n], nil)
	if err != nil || ev.Kind != http1.EventBody || k != n {
		// Cannot happen: n is at most BodyRemaining.
		panic("server: direct body read not taken whole by the parser")
	}
	x.body = x.body[:start+n]
	c.bodyRead += int64(n)
}

// breakBody ends a body still streaming to the backend with err (the
// backend sees its read fail); nothing if none is.
func (c *conn) breakBody(err error) {
	if c.pipe != nil {
		c.pipe.end(err)
	}
	c.pipe, c.streamed = nil, false
}

// enqueue hands it to the writer, starting one if none is running, and
// waits while the queue is full. It reports false when the connection is
// closing (the writer has stopped for good, or Shutdown closed it).
func (c *conn) enqueue(it item) bool {
	if it.perr != nil && c.srv.timed {
		it.start = time.Now()
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.inflight++
	c.readerIdle = false
	if it.x != nil && it.x.pipe != nil {
		c.livePipe = it.x.pipe
	}
	if it.cont {
		c.contPending++
	}
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		c.queue = make(chan item, c.cfg.MaxPipelined)
		go c.startWriter()
	}
	select {
	case c.queue <- it:
		return true
	case <-c.writerDone:
		return false
	}
}

// exchanges holds the exchanges no connection holds: a connection takes
// one when the first bytes of a request arrive, and gives it back once the
// request is answered, so a connection waiting for a request holds none.
var exchanges = sync.Pool{New: func() any { return new(exchange) }}

func getExchange() *exchange { return exchanges.Get().(*exchange) }

func recycle(x *exchange) {
	if cap(x.body) > maxKeptBody {
		x.body = nil
	}
	x.pipe = nil
	exchanges.Put(x)
}

// closeIfIdle closes the connection if it is waiting for a request with
// nothing left to answer (Shutdown, MaxConnections), and reports whether it
// did.
func (c *conn) closeIfIdle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight == 0 && c.readerIdle && !c.closing {
		c.closing = true
		c.nc.Close()
		return true
	}
	return false
}

func (c *conn) debug(what string, err error) {
	if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		c.srv.log.Debug("http1 connection", "op", what, "remote", c.remote, "err", err)
	}
}
