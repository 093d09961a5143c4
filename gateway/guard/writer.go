package guard

import (
	"bytes"
	"sync"

	"github.com/covetpy/covetpy/gateway/compress"
	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/ratelimit"
	"github.com/covetpy/covetpy/workerproto"
)

// writer adds the chain's response fields (CORS, security headers, the
// RateLimit fields, the chain's own extra fields) to the response head, and
// compresses the body when the route and the client allow it, before the
// front end's ResponseWriter sees either.
type writer struct {
	inner  dispatch.ResponseWriter // the compressor, or the front end's writer
	comp   *compress.Writer        // nil: no compression
	c      *Chain
	p      *policy
	h      *workerproto.RequestHead
	rl     ratelimit.Decision
	rlSet  bool
	extra  []workerproto.Header
	hs     []workerproto.Header // scratch for the head's fields
	origin bool
	// vary: compression is on for the route but this client accepts none
	// of its codings; the response still says Vary: accept-encoding where
	// another client would have had it compressed (RFC 9110 12.5.5).
	vary bool
}

var writers = sync.Pool{New: func() any { return new(writer) }}

// wrap returns the writer for this response, or nil when the chain has
// nothing to add to it (the common case costs nothing). extra are fields of
// the chain's own answer.
func (c *Chain) wrap(h *workerproto.RequestHead, p *policy, w dispatch.ResponseWriter, rl ratelimit.Decision, extra []workerproto.Header) *writer {
	// Every response of a CORS route goes through cors.Policy.Actual: the
	// allow fields when the Origin is allowed, and Vary: origin with or
	// without an Origin, so that a cache never hands one origin's answer
	// (or a no-Origin one) to another.
	origin := p.cors != nil
	var cw *compress.Writer
	if c.comp != nil && p.compress {
		if ae := header(h.Headers, "accept-encoding"); ae != nil {
			cw = c.comp.Wrap(w, h.Method, ae)
		}
	}
	vary := cw == nil && c.comp != nil && p.compress
	rlSet := rl.Limit.N > 0
	if !origin && cw == nil && !vary && !rlSet && len(extra) == 0 && !p.headers.Enabled() {
		return nil
	}
	g := writers.Get().(*writer)
	g.inner, g.comp, g.c, g.p, g.h, g.rl, g.rlSet, g.extra, g.origin, g.vary = w, cw, c, p, h, rl, rlSet, extra, origin, vary
	if cw != nil {
		g.inner = cw
	}
	return g
}

// finish ends a compressed body once the backend has served the response.
func (g *writer) finish() error {
	if g.comp != nil {
		return g.comp.Finish()
	}
	return nil
}

func (g *writer) release() {
	if g.comp != nil {
		g.comp.Release()
	}
	hs := g.hs[:0]
	clear(hs[:cap(hs)])
	*g = writer{hs: hs}
	writers.Put(g)
}

// fields returns headers with the chain's fields appended, in g's scratch.
func (g *writer) fields(status int, headers []workerproto.Header) []workerproto.Header {
	hs := append(g.hs[:0], headers...)
	hs = append(hs, g.extra...)
	if g.vary && g.c.comp.Varies(status, headers) && !varies(headers, "accept-encoding") {
		hs = append(hs, workerproto.Header{Name: nameVary, Value: valAcceptEncoding})
	}
	if g.origin {
		hs = g.p.cors.Actual(g.h.Headers, hs)
	}
	hs = g.p.headers.Append(hs, g.h.Scheme == "https")
	if g.rlSet {
		hs = g.rl.AppendHeaders(hs)
	}
	g.hs = hs
	return hs
}

func (g *writer) WriteHead(status int, headers []workerproto.Header, bodyLen int64) error {
	return g.inner.WriteHead(status, g.fields(status, headers), bodyLen)
}

func (g *writer) WriteBody(p []byte) error     { return g.inner.WriteBody(p) }
func (g *writer) WriteBodyv(ps [][]byte) error { return g.inner.WriteBodyv(ps) }

// Flush passes a flush on to the writer underneath, if it buffers.
func (g *writer) Flush() error {
	if f, ok := g.inner.(dispatch.Flusher); ok {
		return f.Flush()
	}
	return nil
}

// WriteInterim passes a 103 on; it is dropped, as the dispatcher would drop
// it, when the front end cannot send one.
func (g *writer) WriteInterim(status int, headers []workerproto.Header) error {
	if iw, ok := g.inner.(dispatch.InterimWriter); ok {
		return iw.WriteInterim(status, headers)
	}
	return nil
}

// WriteTrailers passes trailer fields on (a gRPC call's status); they are
// dropped, as the dispatcher would drop them, when the writer underneath
// cannot send trailers.
func (g *writer) WriteTrailers(headers []workerproto.Header) error {
	if tw, ok := g.inner.(dispatch.TrailerWriter); ok {
		return tw.WriteTrailers(headers)
	}
	return nil
}

// WriteFile passes a file answer on, with the chain's fields.
func (g *writer) WriteFile(status int, headers []workerproto.Header, path string) error {
	fw, ok := g.inner.(dispatch.FileWriter)
	if !ok {
		return dispatch.ErrNoFileWriter
	}
	return fw.WriteFile(status, g.fields(status, headers), path)
}

var (
	nameVary          = []byte("vary")
	valAcceptEncoding = []byte("accept-encoding")
)

// varies reports whether headers hold a Vary field naming name (or "*").
func varies(headers []workerproto.Header, name string) bool {
	for i := range headers {
		if !workerproto.NameIs(headers[i].Name, "vary") {
			continue
		}
		for _, f := range bytes.Split(headers[i].Value, []byte(",")) {
			f = bytes.TrimSpace(f)
			if workerproto.NameIs(f, name) || string(f) == "*" {
				return true
			}
		}
	}
	return false
}

var nameOrigin = []byte("origin")

// StaticFields appends to hs the fields the chain adds to a file the front
// end serves from disk itself (a static route or mount, which never passes
// through Serve): the route's CORS fields, for the request's Origin (nil for
// none), and its security headers.
func (c *Chain) StaticFields(rt *dispatch.Route, origin []byte, https bool, hs []workerproto.Header) []workerproto.Header {
	p := c.routePolicy(rt)
	if p.cors != nil {
		var req [1]workerproto.Header
		n := 0
		if origin != nil {
			req[0], n = workerproto.Header{Name: nameOrigin, Value: origin}, 1
		}
		hs = p.cors.Actual(req[:n], hs)
	}
	return p.headers.Append(hs, https)
}
