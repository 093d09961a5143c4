package compress

import (
	"errors"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/workerproto"
)

var (
	errHeadTwice      = errors.New("compress: WriteHead called twice")
	errBodyBeforeHead = errors.New("compress: WriteBody before WriteHead")
	errBodyTooLong    = errors.New("compress: response body longer than its length")
	errBodyShort      = errors.New("compress: response body shorter than its length")
	errInterimLate    = errors.New("compress: WriteInterim after WriteHead")
)

var (
	nameVary            = []byte("vary")
	nameContentEncoding = []byte("content-encoding")
	valAcceptEncoding   = []byte("accept-encoding")
	sepList             = []byte(", ")
	weakPrefix          = []byte("W/")
	codingValues        = [numCodings][]byte{[]byte("gzip"), []byte("br"), []byte("zstd")}
)

// mode is what a Writer does with the response, fixed by WriteHead.
type mode uint8

const (
	modeNone   mode = iota // before WriteHead
	modePass               // everything goes to the inner writer untouched
	modeHold               // a known-length body gathers in held, then goes out whole
	modeStream             // the body is compressed as it comes
)

// Writer wraps a dispatch.ResponseWriter for one response (see the package
// doc). It implements dispatch.ResponseWriter, dispatch.Flusher,
// dispatch.InterimWriter and dispatch.FileWriter; the last two, and Flush,
// reach the inner writer only where it implements them.
type Writer struct {
	c    *Compressor
	w    dispatch.ResponseWriter // the inner writer
	k    coding                  // the negotiated coding
	mode mode
	err  error // sticky: misuse, or the inner writer's error as it returned it

	// modeStream
	enc       encoder
	flushEach bool // a streamed body: flush after every piece
	sink      sink

	// modeHold: the head, copied (a head's fields are valid only during
	// WriteHead), and the body so far.
	status int
	want   int64
	held   []byte
	own    []workerproto.Header // the head's fields, in arena
	arena  []byte

	hdrs    []workerproto.Header // the head handed to the inner writer
	scratch []byte               // new field values in hdrs
	one     [1][]byte
}

var (
	_ dispatch.ResponseWriter = (*Writer)(nil)
	_ dispatch.Flusher        = (*Writer)(nil)
	_ dispatch.InterimWriter  = (*Writer)(nil)
	_ dispatch.FileWriter     = (*Writer)(nil)
)

func (w *Writer) reset(c *Compressor, inner dispatch.ResponseWriter, k coding) {
	w.c, w.w, w.k = c, inner, k
	w.mode, w.err, w.enc, w.flushEach = modeNone, nil, nil, false
	w.sink = sink{w: inner, buf: w.sink.buf[:0]}
	w.status, w.want = 0, 0
	w.held = w.held[:0]
}

// Coding returns the content coding negotiated for this response ("gzip",
// "br" or "zstd"); whether it is used depends on the response.
func (w *Writer) Coding() string { return w.k.String() }

// WriteHead implements dispatch.ResponseWriter: it decides the response's
// fate (eligible). A compressed response loses Content-Length (a held one
// gets the compressed length as bodyLen), gains Content-Encoding and Vary:
// accept-encoding (merged into an existing Vary), and a strong ETag becomes
// weak (W/"..."): the bytes differ from the identity body's, while the
// representation is the same.
func (w *Writer) WriteHead(status int, headers []workerproto.Header, bodyLen int64) error {
	if w.err != nil {
		return w.err
	}
	if w.mode != modeNone {
		w.err = errHeadTwice
		return w.err
	}
	switch eligible(status, headers, bodyLen, w.c.minBytes) {
	case asIs:
		w.mode = modePass
		return w.fail(w.w.WriteHead(status, headers, bodyLen))
	case asIsVary:
		w.mode = modePass
		return w.fail(w.w.WriteHead(status, w.head(headers, false), bodyLen))
	}
	if bodyLen >= 0 && bodyLen <= bufferBytes {
		w.mode, w.status, w.want = modeHold, status, bodyLen
		w.keep(headers)
		if cap(w.held) < int(bodyLen) {
			w.held = make([]byte, 0, bodyLen)
		}
		return nil
	}
	w.mode, w.flushEach = modeStream, bodyLen < 0
	if err := w.fail(w.w.WriteHead(status, w.head(headers, true), -1)); err != nil {
		return err
	}
	w.enc = w.c.getEncoder(w.k, &w.sink)
	w.c.m.Compressed(w.k.String())
	return nil
}

// keep copies a head's fields into the Writer's own memory.
func (w *Writer) keep(headers []workerproto.Header) {
	n := 0
	for i := range headers {
		n += len(headers[i].Name) + len(headers[i].Value)
	}
	if cap(w.arena) < n {
		w.arena = make([]byte, 0, n)
	}
	a, own := w.arena[:0], w.own[:0]
	for i := range headers {
		f := &headers[i]
		a = append(a, f.Name...)
		name := a[len(a)-len(f.Name):]
		a = append(a, f.Value...)
		own = append(own, workerproto.Header{Name: name, Value: a[len(a)-len(f.Value):]})
	}
	w.arena, w.own = a, own
}

// head returns the fields to hand the inner writer: src with Vary:
// accept-encoding merged in, and when compressing, without Content-Length,
// with the ETag weakened and Content-Encoding added. The result, in w.hdrs
// and w.scratch, is valid until the next call.
func (w *Writer) head(src []workerproto.Header, compressing bool) []workerproto.Header {
	varied := false // a Vary field already names accept-encoding or "*"
	need := 0
	for i := range src {
		f := &src[i]
		switch {
		case workerproto.NameIs(f.Name, "vary"):
			if hasToken(f.Value, "accept-encoding") || hasToken(f.Value, "*") {
				varied = true
			}
			need += len(f.Value) + len(sepList) + len(valAcceptEncoding)
		case workerproto.NameIs(f.Name, "etag"):
			need += len(weakPrefix) + len(f.Value)
		}
	}
	if cap(w.scratch) < need {
		w.scratch = make([]byte, 0, need)
	}
	s, hs := w.scratch[:0], w.hdrs[:0] // s never grows past need: its slices stay put
	for _, f := range src {
		switch {
		case compressing && workerproto.NameIs(f.Name, "content-length"):
			continue
		case !varied && workerproto.NameIs(f.Name, "vary"):
			varied = true
			start := len(s)
			if v := trim(f.Value); len(v) > 0 {
				s = append(s, v...)
				s = append(s, sepList...)
			}
			s = append(s, valAcceptEncoding...)
			f.Value = s[start:]
		case compressing && workerproto.NameIs(f.Name, "etag"):
			if v := trim(f.Value); len(v) > 0 && !hasPrefixFold(v, "w/") {
				start := len(s)
				s = append(s, weakPrefix...)
				s = append(s, v...)
				f.Value = s[start:]
			}
		}
		hs = append(hs, f)
	}
	if !varied {
		hs = append(hs, workerproto.Header{Name: nameVary, Value: valAcceptEncoding})
	}
	if compressing {
		hs = append(hs, workerproto.Header{Name: nameContentEncoding, Value: codingValues[w.k]})
	}
	w.scratch, w.hdrs = s, hs
	return hs
}

// WriteBody implements dispatch.ResponseWriter: WriteBodyv of one piece.
func (w *Writer) WriteBody(p []byte) error {
	w.one[0] = p
	err := w.WriteBodyv(w.one[:])
	w.one[0] = nil
	return err
}

// WriteBodyv implements dispatch.ResponseWriter. A streamed body's pieces
// are compressed and flushed together, as one piece of compressed output.
func (w *Writer) WriteBodyv(ps [][]byte) error {
	if w.err != nil {
		return w.err
	}
	switch w.mode {
	case modeNone:
		w.err = errBodyBeforeHead
		return w.err
	case modePass:
		return w.fail(w.w.WriteBodyv(ps))
	case modeHold:
		total := 0
		for _, p := range ps {
			total += len(p)
		}
		if int64(len(w.held)+total) > w.want {
			w.err = errBodyTooLong
			return w.err
		}
		for _, p := range ps {
			w.held = append(w.held, p...)
		}
		if int64(len(w.held)) == w.want {
			return w.sendHeld()
		}
		return nil
	}
	total := 0
	for _, p := range ps {
		if _, err := w.enc.Write(p); err != nil {
			return w.encFail(err)
		}
		total += len(p)
	}
	if !w.flushEach || total == 0 {
		return nil
	}
	if err := w.enc.Flush(); err != nil {
		return w.encFail(err)
	}
	return w.fail(w.sink.emit())
}

// sendHeld compresses the whole held body and hands head and body to the
// inner writer, or the body as it is when compressing did not shrink it.
func (w *Writer) sendHeld() error {
	w.sink.hold = true
	enc := w.c.getEncoder(w.k, &w.sink)
	_, err := enc.Write(w.held)
	if err == nil {
		err = enc.Close()
	}
	w.c.putEncoder(w.k, enc)
	w.sink.hold = false
	if err != nil { // cannot happen: the sink takes everything
		w.err = err
		return err
	}
	w.mode = modePass // whatever follows (nothing should) is the inner writer's
	out := w.sink.buf
	if len(out) >= len(w.held) {
		out = w.held
		if err := w.fail(w.w.WriteHead(w.status, w.head(w.own, false), int64(len(out)))); err != nil {
			return err
		}
	} else {
		if err := w.fail(w.w.WriteHead(w.status, w.head(w.own, true), int64(len(out)))); err != nil {
			return err
		}
		w.c.m.Compressed(w.k.String())
	}
	err = w.fail(w.w.WriteBody(out))
	w.sink.buf = w.sink.buf[:0]
	return err
}

// Flush implements dispatch.Flusher: it flushes the inner writer where it
// is a Flusher (a held body has nothing to flush yet).
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.mode == modeHold {
		return nil
	}
	if w.mode == modeStream {
		if err := w.fail(w.sink.emit()); err != nil {
			return err
		}
	}
	if f, ok := w.w.(dispatch.Flusher); ok {
		return w.fail(f.Flush())
	}
	return nil
}

// WriteInterim implements dispatch.InterimWriter: an informational response
// goes to the inner writer as it is (dropped where it is no InterimWriter).
func (w *Writer) WriteInterim(status int, headers []workerproto.Header) error {
	if w.err != nil {
		return w.err
	}
	if w.mode != modeNone {
		w.err = errInterimLate
		return w.err
	}
	if iw, ok := w.w.(dispatch.InterimWriter); ok {
		return w.fail(iw.WriteInterim(status, headers))
	}
	return nil
}

// WriteTrailers implements dispatch.TrailerWriter: trailer fields go to the
// inner writer after the body (dropped where it is no TrailerWriter). A
// compressed stream's tail is written first (Finish then has nothing left
// to do); gRPC's responses, the ones with trailers, are never compressed.
func (w *Writer) WriteTrailers(headers []workerproto.Header) error {
	if w.mode == modeStream {
		if err := w.Finish(); err != nil {
			return err
		}
	}
	if w.err != nil {
		return w.err
	}
	if tw, ok := w.w.(dispatch.TrailerWriter); ok {
		return w.fail(tw.WriteTrailers(headers))
	}
	return nil
}

// WriteFile implements dispatch.FileWriter: a file answer passes through
// uncompressed (dispatch.ErrNoFileWriter where the inner writer cannot
// answer with a file).
func (w *Writer) WriteFile(status int, headers []workerproto.Header, path string) error {
	if w.err != nil {
		return w.err
	}
	if w.mode != modeNone {
		w.err = errHeadTwice
		return w.err
	}
	w.mode = modePass
	fw, ok := w.w.(dispatch.FileWriter)
	if !ok {
		return dispatch.ErrNoFileWriter
	}
	return w.fail(fw.WriteFile(status, headers, path))
}

// Finish ends the response after the backend's Serve returned nil: it writes
// a compressed stream's tail through the inner writer. A held body that fell
// short of its length is an error (the inner writer has seen nothing of the
// response). It returns the first error of the exchange, if any.
func (w *Writer) Finish() error {
	if w.err != nil {
		return w.err
	}
	switch w.mode {
	case modeHold:
		w.err = errBodyShort
		return w.err
	case modeStream:
		err := w.enc.Close()
		w.c.putEncoder(w.k, w.enc)
		w.enc = nil
		w.mode = modePass
		if err != nil {
			return w.encFail(err)
		}
		return w.fail(w.sink.emit())
	}
	return nil
}

// Release gives the Writer's encoder and buffers back to the Compressor's
// pools; w must not be used after it.
func (w *Writer) Release() {
	c := w.c
	if c == nil {
		return
	}
	if w.enc != nil {
		c.putEncoder(w.k, w.enc)
	}
	w.c, w.w, w.enc, w.err = nil, nil, nil, nil
	w.sink.w = nil
	clear(w.own)
	clear(w.hdrs)
	w.own, w.hdrs = w.own[:0], w.hdrs[:0]
	c.writers.Put(w)
}

// fail records err as the exchange's first error and returns it.
func (w *Writer) fail(err error) error {
	if err != nil && w.err == nil {
		w.err = err
	}
	return err
}

// encFail records an encoder's failure: the inner writer's error when the
// encoder failed because the sink could not write (the caller sees the
// client's failure, not the encoder's wrapping of it).
func (w *Writer) encFail(err error) error {
	if w.sink.err != nil {
		err = w.sink.err
	}
	return w.fail(err)
}

// sink gathers an encoder's output and hands it to the inner writer at
// sinkBytes and at emit (unless hold: then it keeps it all).
type sink struct {
	w    dispatch.ResponseWriter
	buf  []byte
	hold bool
	err  error // the inner writer's, once it failed
}

func (s *sink) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	s.buf = append(s.buf, p...)
	if !s.hold && len(s.buf) >= sinkBytes {
		if err := s.emit(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// emit hands what has gathered to the inner writer.
func (s *sink) emit() error {
	if s.err != nil {
		return s.err
	}
	if len(s.buf) == 0 {
		return nil
	}
	err := s.w.WriteBody(s.buf)
	s.buf = s.buf[:0]
	if err != nil {
		s.err = err
	}
	return err
}
