package server

import (
	"errors"
	"os"
	"runtime/debug"
	"strconv"
	"time"
	"unsafe"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/workerproto"
)

const (
	// flushAt: a Content-Length body is buffered behind its head until the
	// buffer would exceed this or a piece over smallChunk completes the body;
	// then head, buffer and piece go out in one writev. A response therefore
	// costs one write, and a body over smallChunk that comes whole is written
	// from the caller's memory, not copied.
	flushAt = 32 << 10
	// smallChunk: a streamed piece up to this size is copied behind its
	// chunk header, and a known-length one behind the head; a larger one is
	// written from the caller's memory.
	smallChunk = 4 << 10
	// maxKeptWriteBuf is the largest write buffer kept between responses.
	maxKeptWriteBuf = 256 << 10
)

var (
	errHeadTwice      = errors.New("server: WriteHead called twice")
	errBodyBeforeHead = errors.New("server: WriteBody before WriteHead")
	errBodyTooLong    = errors.New("server: response body longer than its length")
	errBadStatus      = errors.New("server: worker response status outside 200..599")
	errBackendPanic   = errors.New("server: backend panicked")
	errBudget         = errors.New("server: response buffer budget spent (max_buffered_response_bytes)")
	errSlowWrite      = errors.New("server: client reads the response slower than min_write_rate")
	errInterimLate    = errors.New("server: WriteInterim after WriteHead")
)

var (
	nameServer      = []byte("Server")
	nameRequestID   = []byte("X-Request-ID")
	nameAltSvc      = []byte("Alt-Svc")
	nameContentType = []byte("Content-Type")
	nameAllow       = []byte("Allow")
	nameRetryAfter  = []byte("Retry-After")
	valServer       = []byte("covetpy")
	valTextPlain    = []byte("text/plain; charset=utf-8")
	crlf            = []byte("\r\n")
)

// ending says what happens to the connection after a response.
type ending uint8

const (
	keepOpen      ending = iota
	closeGraceful        // response complete: half-close, linger, close
	closeHard            // response broken or client gone: close now
)

// writeLoop answers the queued items in order, one at a time. It returns
// when the reader stops it (a stop item: it has been idle for writerLinger,
// or the reader has finished), once nothing is left to answer after the
// reader has finished, or after a response that ends the connection.
func (c *conn) writeLoop() {
	q := c.queue // the reader's, made before it started this goroutine
	for {
		it := <-q
		if it.stop {
			return // touching nothing: the reader (stopWriter) owns it all now
		}
		c.status, c.wrote, c.blocked = 0, 0, 0
		end := c.handle(it)
		if c.srv.timed {
			c.observe(it)
		}
		if it.x != nil {
			recycle(it.x)
		}
		if cap(c.wbuf) > maxKeptWriteBuf {
			c.wbuf = nil
		}
		c.mu.Lock()
		c.inflight--
		if end != keepOpen {
			c.closing, c.writerEnding = true, true
			c.mu.Unlock()
			if end == closeGraceful {
				c.closeWrite()
			} else {
				c.nc.Close()
			}
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			close(c.writerDone)
			return
		}
		if c.inflight == 0 {
			if c.readerDone {
				c.writing = false
				c.mu.Unlock()
				close(c.writerDone)
				return
			}
			// Idle: the reader stops this writer at writerLinger (the
			// read deadline wakes it for that, if nothing else does).
			c.idleFrom = time.Now()
			dl := c.idleFrom.Add(writerLinger)
			if c.readerIdle {
				dl = earliest(dl, c.idleFrom.Add(c.cfg.IdleTimeout))
			}
			c.armReadLocked(dl)
		}
		c.mu.Unlock()
	}
}

// closeWrite half-closes the connection after its last response and lets
// the reader drain input for lingerTimeout before the socket is closed.
func (c *conn) closeWrite() {
	if c.nc.CloseWrite() == nil {
		c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
		c.lingering = true
		return
	}
	c.nc.Close()
}

func (c *conn) handle(it item) ending {
	c.sent = false
	switch {
	case it.cont:
		c.wbuf = http1.AppendContinue(c.wbuf)
		err := c.flush()
		now := time.Now()
		c.mu.Lock()
		c.contPending--
		c.contSent = now
		if c.bodyWait && c.contPending == 0 && !c.closing {
			c.bodyWait = false
			c.armReadLocked(c.cfg.bodyDeadline(now, 0))
		}
		c.mu.Unlock()
		if err != nil {
			return closeHard
		}
		return keepOpen
	case it.perr != nil:
		e := it.perr
		if !e.Close && c.srv.inShutdown.Load() {
			e = &http1.Error{Status: e.Status, Reason: e.Reason, Close: true}
		}
		c.status = e.Status
		c.wbuf = http1.AppendError(c.wbuf, e, c.srv.date.Value(time.Now()))
		if c.flush() != nil {
			return closeHard
		}
		if e.Close {
			return closeGraceful
		}
		return keepOpen
	}
	x := it.x
	if c.ctx.Err() != nil {
		return closeHard
	}
	if x.answer != 0 {
		return c.answer(x, x.answer, x.allow, 0)
	}
	if x.ws.upgrade {
		return c.serveWebSocket(x)
	}
	return c.serveRouted(x)
}

// mustClose reports whether the response to x must end the connection,
// beyond what the request itself says (http1 adds that).
func (c *conn) mustClose(x *exchange) bool {
	return x.closeAfter || c.srv.inShutdown.Load()
}

// answer writes a response generated by the gateway: status, a one-line
// text/plain body (none for 204 and HEAD), Allow and Retry-After when
// given, and the request id.
func (c *conn) answer(x *exchange, status int, allow string, retryAfter int) ending {
	hs := append(c.rhdrs[:0], http1.Header{Name: nameServer, Value: valServer})
	text := ""
	if status != 204 {
		text = http1.StatusText(status)
		hs = append(hs, http1.Header{Name: nameContentType, Value: valTextPlain})
	}
	if allow != "" {
		hs = append(hs, http1.Header{Name: nameAllow, Value: stringBytes(allow)})
	}
	if retryAfter > 0 {
		hs = append(hs, http1.Header{Name: nameRetryAfter, Value: strconv.AppendInt(c.num[:0], int64(retryAfter), 10)})
	}
	hs = append(hs, http1.Header{Name: nameRequestID, Value: stringBytes(x.rid)})
	if a := c.srv.cfg.AltSvc; a != "" {
		hs = append(hs, http1.Header{Name: nameAltSvc, Value: stringBytes(a)})
	}
	hs = appendWSHint(hs, x)
	rh := http1.ResponseHead{
		Status:        status,
		Header:        hs,
		ContentLength: int64(len(text) + 1),
		Close:         c.mustClose(x),
		Date:          c.srv.date.Value(time.Now()),
	}
	c.rhdrs = hs[:0]
	b, framing, err := rh.Append(c.wbuf, &x.req)
	if err != nil { // cannot happen: every field above is valid
		c.srv.log.Error("http1: gateway response rejected", "status", status, "err", err)
		return closeHard
	}
	c.wbuf = b
	c.status = status
	if framing == http1.FramingLength {
		c.wbuf = append(c.wbuf, text...)
		c.wbuf = append(c.wbuf, '\n')
	}
	if c.flush() != nil {
		return closeHard
	}
	if rh.Close {
		return closeGraceful
	}
	return keepOpen
}

// serveRouted hands x to the backend and finishes its response.
func (c *conn) serveRouted(x *exchange) ending {
	if !c.srv.admitResponse(c.ctx) {
		if c.ctx.Err() != nil {
			return closeHard
		}
		c.srv.metrics.BudgetShed()
		c.debug("dispatch", errBudget)
		return c.answer(x, 503, "", 1)
	}
	d := &c.dreq
	c.fillRequest(d, x)
	w := &c.rw
	w.reset(x)
	err := c.callServe(x, d, w)
	d.Body = nil
	switch {
	case err == nil && w.started:
		return w.end()
	case errors.Is(err, dispatch.ErrCanceled) || c.ctx.Err() != nil:
		return closeHard
	case w.writeErr && errors.Is(err, w.err) && !w.started:
		// An interim response could not be written: the client is gone.
		c.debug("client went away before the response", err)
		c.wbuf = c.wbuf[:0]
		return closeHard
	case w.started || c.sent:
		// The response began: it can only be broken off. Drop what is
		// still buffered: the client must see a broken response, never
		// one that merely looks complete.
		switch {
		case errors.Is(err, dispatch.ErrAborted):
		case w.writeErr && errors.Is(err, w.err):
			c.debug("client went away mid-response", err)
		default:
			c.srv.log.Warn("backend failed mid-response", "remote", c.remote, "request_id", x.rid, "err", err)
		}
		c.wbuf = c.wbuf[:0]
		return closeHard
	}
	// No response head was accepted: answer the failure.
	c.wbuf = c.wbuf[:0]
	if se := statusError(err); se != nil {
		c.debug("dispatch", err)
		return c.answer(x, se.Status, "", se.RetryAfter)
	}
	if err == nil {
		err = errors.New("server: backend returned no response")
	}
	c.srv.log.Warn("backend error", "remote", c.remote, "request_id", x.rid, "err", err)
	if err == errBackendPanic {
		x.closeAfter = true // the backend's state is suspect: start afresh
	}
	return c.answer(x, 502, "", 0)
}

// statusError returns err as a *dispatch.StatusError, or nil. It is kept
// out of serveRouted so that the success path allocates nothing.
func statusError(err error) *dispatch.StatusError {
	var se *dispatch.StatusError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

func (c *conn) callServe(x *exchange, d *dispatch.Request, w *respWriter) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.srv.log.Error("backend panic", "panic", p, "stack", string(debug.Stack()))
			err = errBackendPanic
		}
	}()
	return c.srv.Backend.Serve(c.ctx, x.route, d, w)
}

// flush writes the buffered bytes.
func (c *conn) flush() error {
	if c.werr != nil {
		return c.werr
	}
	if len(c.wbuf) == 0 {
		return nil
	}
	c.sent = true
	off := 0
	err := c.bounded(func() (int64, error) {
		n, err := c.nc.Write(c.wbuf[off:])
		off += n
		return int64(n), err
	})
	c.wbuf = c.wbuf[:0]
	return err
}

// bounded runs write (which writes what is left and says how much) until it
// completes or fails, giving up WriteTimeout after the start, or earlier when
// the response falls behind MinWriteRate (Config.writeDeadline); a failure is
// sticky (werr). The time spent here counts as blocked on the client. The
// socket's write deadline is changed only when the one armed has passed or is
// later than this write's bound: one armed by an earlier write and not yet
// passed is normally no later than this write's bound, and if it passes while
// this write is still within that bound, the bound is armed and the write goes
// on. So a response written at once costs no timer operation.
func (c *conn) bounded(write func() (int64, error)) error {
	start := time.Now()
	c.writeStart.Store(start.UnixNano()) // for shedSlowReaders
	defer c.writeStart.Store(0)
	blocked := c.blocked
	limit := start.Add(c.cfg.WriteTimeout)
	by, _ := c.cfg.writeDeadline(start, limit, blocked, c.wrote)
	if c.writeArmed.IsZero() || !start.Before(c.writeArmed) || by.Before(c.writeArmed) {
		c.writeArmed = by
		c.nc.SetWriteDeadline(by)
	}
	for {
		n, err := write()
		c.wrote += n
		now := time.Now()
		c.blocked = blocked + now.Sub(start)
		if err == nil {
			return nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			var slow bool
			by, slow = c.cfg.writeDeadline(now, limit, c.blocked, c.wrote)
			if now.Before(by) {
				c.writeArmed = by // a stale deadline passed, not this write's own
				c.nc.SetWriteDeadline(by)
				continue
			}
			if slow {
				c.srv.metrics.SlowWrite()
				err = errSlowWrite
			}
		}
		c.werr = err
		c.debug("write", err)
		return err
	}
}

// writev writes the buffered bytes, then each of ps, then tail, in one call.
func (c *conn) writev(tail []byte, ps ...[]byte) error {
	if c.werr != nil {
		return c.werr
	}
	c.sent = true
	bufs := append(c.bufStore[:0], c.wbuf)
	bufs = append(bufs, ps...)
	if len(tail) > 0 {
		bufs = append(bufs, tail)
	}
	c.bufStore = bufs
	c.bufs = bufs                                                                 // writeBuffers consumes c.bufs, not c.bufStore
	err := c.bounded(func() (int64, error) { return c.nc.WriteBuffers(&c.bufs) }) // it consumes what it wrote
	clear(bufs)
	c.bufs = nil
	c.wbuf = c.wbuf[:0]
	return err
}

// respWriter is the dispatch.ResponseWriter of a connection; it writes
// through http1.ResponseHead and the connection's write buffer. It lives
// in the conn and is reset for each response.
type respWriter struct {
	c         *conn
	x         *exchange
	started   bool // WriteHead succeeded
	framing   http1.Framing
	remaining int64     // FramingLength: body bytes still expected
	closeConn bool      // the head says Connection: close
	err       error     // sticky: misuse or write failure
	writeErr  bool      // err is a failed write to the client, not the backend's misuse
	one       [1][]byte // WriteBody's piece, as WriteBodyv's argument without allocating
}

var (
	_ dispatch.ResponseWriter = (*respWriter)(nil)
	_ dispatch.InterimWriter  = (*respWriter)(nil)
)

func (w *respWriter) reset(x *exchange) {
	*w = respWriter{c: w.c, x: x}
}

// WriteHead implements dispatch.ResponseWriter. The worker's Content-Length,
// Transfer-Encoding, Connection and Keep-Alive fields are dropped: the
// gateway owns framing and connection management. For a HEAD request a
// Content-Length the worker sent is kept (it describes the GET body);
// otherwise bodyLen is sent as Content-Length when positive.
func (w *respWriter) WriteHead(status int, headers []workerproto.Header, bodyLen int64) error {
	if w.err != nil {
		return w.err
	}
	if w.started {
		w.err = errHeadTwice
		return w.err
	}
	if status < 200 || status > 599 {
		w.err = errBadStatus
		return w.err
	}
	c, x := w.c, w.x
	isHead := x.req.IsHead()
	hs := c.rhdrs[:0]
	haveServer, haveID, haveAltSvc := false, false, false
	headLen := int64(-1)
	for i := range headers {
		f := &headers[i]
		switch {
		case fieldIs(f.Name, "content-length"):
			if isHead {
				headLen = parseLength(f.Value)
			}
			continue
		case fieldIs(f.Name, "transfer-encoding"), fieldIs(f.Name, "connection"), fieldIs(f.Name, "keep-alive"):
			continue
		case fieldIs(f.Name, "server"):
			haveServer = true
		case fieldIs(f.Name, "x-request-id"):
			haveID = true
		case fieldIs(f.Name, "alt-svc"):
			haveAltSvc = true
		}
		hs = append(hs, http1.Header{Name: f.Name, Value: f.Value})
	}
	if a := c.srv.cfg.AltSvc; a != "" && !haveAltSvc {
		hs = append(hs, http1.Header{Name: nameAltSvc, Value: stringBytes(a)})
	}
	if !haveServer {
		hs = append(hs, http1.Header{Name: nameServer, Value: valServer})
	}
	if !haveID {
		hs = append(hs, http1.Header{Name: nameRequestID, Value: stringBytes(x.rid)})
	}
	length := bodyLen
	if isHead {
		switch {
		case headLen >= 0:
			length = headLen
		case bodyLen <= 0:
			length = -1
		}
	}
	rh := http1.ResponseHead{
		Status:        status,
		Header:        hs,
		ContentLength: length,
		Close:         c.mustClose(x),
		Date:          c.srv.date.Value(time.Now()),
	}
	c.rhdrs = hs[:0]
	b, framing, err := rh.Append(c.wbuf, &x.req)
	if err != nil {
		w.err = err
		return err
	}
	c.wbuf = b
	c.status = status
	w.started, w.framing, w.closeConn = true, framing, rh.Close
	if framing == http1.FramingLength {
		w.remaining = length
	}
	return nil
}

// WriteInterim implements dispatch.InterimWriter: it writes an informational
// response (103 Early Hints) at once, ahead of the final head. An HTTP/1.0
// client gets none (RFC 9110 15.2: a server must not send it a 1xx), and a
// field the final head would not carry either (Content-Length,
// Transfer-Encoding, Connection, Keep-Alive) is dropped. It changes nothing
// the access log and the metrics see: they count the final response alone. A
// field that could split the response fails this response as the backend's
// misuse, and a failed write as the client's; either way it is broken off.
func (w *respWriter) WriteInterim(status int, headers []workerproto.Header) error {
	if w.err != nil {
		return w.err
	}
	if w.started {
		w.err = errInterimLate
		return w.err
	}
	c, x := w.c, w.x
	if x.req.Minor == 0 {
		return nil
	}
	if status < 100 || status > 199 {
		w.err = errBadStatus
		return w.err
	}
	hs := c.rhdrs[:0]
	for i := range headers {
		f := &headers[i]
		if fieldIs(f.Name, "content-length") || fieldIs(f.Name, "transfer-encoding") ||
			fieldIs(f.Name, "connection") || fieldIs(f.Name, "keep-alive") {
			continue
		}
		hs = append(hs, http1.Header{Name: f.Name, Value: f.Value})
	}
	rh := http1.ResponseHead{Status: status, Header: hs}
	c.rhdrs = hs[:0]
	b, _, err := rh.Append(c.wbuf, &x.req)
	if err != nil {
		w.err = err
		return err
	}
	c.wbuf = b
	// Not the response's start: a failure after this is still answered with
	// a whole final response (serveRouted reads c.sent for that).
	sent := c.sent
	err = w.fail(c.flush())
	c.sent = sent
	return err
}

// WriteBody implements dispatch.ResponseWriter: WriteBodyv of one piece.
func (w *respWriter) WriteBody(p []byte) error {
	w.one[0] = p
	err := w.WriteBodyv(w.one[:])
	w.one[0] = nil
	return err
}

// WriteBodyv implements dispatch.ResponseWriter. A known-length body is
// buffered behind its head up to flushAt, except that a piece over
// smallChunk that completes it goes out at once with what is buffered
// (see flushAt); a streamed body (chunked, or
// close-delimited for HTTP/1.0) is written as it comes, so that a client
// sees each call's bytes at once (as one chunk when chunked). Several
// pieces go out in one vectored write. For HEAD, 204 and 304 the bytes are
// dropped.
func (w *respWriter) WriteBodyv(ps [][]byte) error {
	if w.err != nil {
		return w.err
	}
	if !w.started {
		w.err = errBodyBeforeHead
		return w.err
	}
	c := w.c
	total := 0
	for _, p := range ps {
		total += len(p)
	}
	switch w.framing {
	case http1.FramingNone:
		return nil
	case http1.FramingLength:
		if int64(total) > w.remaining {
			w.err = errBodyTooLong
			return w.err
		}
		w.remaining -= int64(total)
		if len(c.wbuf)+total <= flushAt && (total <= smallChunk || w.remaining > 0) {
			for _, p := range ps {
				c.wbuf = append(c.wbuf, p...)
			}
			return nil
		}
		// The last piece of a body over smallChunk, or a buffer that would pass
		// flushAt, goes out now with what is buffered in one vectored write:
		// copying it behind the head would cost a pass over it and save no
		// system call.
		return w.fail(c.writev(nil, ps...))
	case http1.FramingChunked:
		if total == 0 {
			return nil
		}
		c.wbuf = http1.AppendChunkHeader(c.wbuf, total)
		if total <= smallChunk {
			for _, p := range ps {
				c.wbuf = append(c.wbuf, p...)
			}
			c.wbuf = http1.AppendChunkEnd(c.wbuf)
			return w.fail(c.flush())
		}
		return w.fail(c.writev(crlf, ps...))
	default: // FramingClose
		return w.fail(c.writev(nil, ps...))
	}
}

// fail records a failed write to the client.
func (w *respWriter) fail(err error) error {
	if err != nil && w.err == nil {
		w.err, w.writeErr = err, true
	}
	return err
}

// end completes a response the backend finished without error.
func (w *respWriter) end() ending {
	c := w.c
	if w.err != nil {
		c.wbuf = c.wbuf[:0]
		return closeHard
	}
	switch w.framing {
	case http1.FramingLength:
		if w.remaining > 0 {
			c.srv.log.Warn("response body shorter than its length", "remote", c.remote,
				"request_id", w.x.rid, "missing", w.remaining)
			c.wbuf = c.wbuf[:0]
			return closeHard
		}
	case http1.FramingChunked:
		c.wbuf, _ = http1.AppendLastChunk(c.wbuf, nil)
	case http1.FramingClose:
		if c.flush() != nil {
			return closeHard
		}
		return closeGraceful
	}
	if c.flush() != nil {
		return closeHard
	}
	if w.closeConn {
		return closeGraceful
	}
	return keepOpen
}

// fieldIs reports whether name equals lower, ignoring ASCII case.
func fieldIs(name []byte, lower string) bool {
	if len(name) != len(lower) {
		return false
	}
	for i := range name {
		b := name[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if b != lower[i] {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length value, or returns -1.
func parseLength(v []byte) int64 {
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// stringBytes returns s's bytes without copying; they must not be modified.
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
