package server

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/engine"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/gateway/static"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// Static files are answered by the gateway without a worker: a request
// routed to a route of kind static (a worker's app.static), or under one of
// Config.Static's mounts, and a worker's RESP_FILE answer (respWriter's and
// hWriter's WriteFile). gateway/static opens the file (confined to the
// directory) and decides the answer (conditional requests, ranges); here the
// answer is written. On HTTP/1.1 over a plain socket the body goes with
// sendfile(2) (engine.FileSender), the head just before it with MSG_MORE
// so that both leave in one segment; over TLS it is copied through the
// write buffer (a body of at most smallFile bytes in one write with its
// head), and HTTP/2 and HTTP/3 copy it through their ResponseWriter.

// smallFile is the largest body that, copied, shares one write with its head.
const smallFile = 16 << 10

// mount is one of Config.Static's entries, opened.
type mount struct {
	prefix string
	route  *dispatch.Route
	root   *static.Root
}

// statics is a Server's static state: its mounts (fixed at init) and the
// directories of the workers' static routes, opened on first use.
type statics struct {
	mounts []mount
	roots  sync.Map // rootKey -> *static.Root
	failed sync.Map // rootKey -> struct{}: a directory that could not be opened, logged once
}

type rootKey struct {
	dir   string
	index bool
}

// parseMounts checks Config.Static's entries; the error names the entry and
// the problem.
func parseMounts(entries []string) ([]mount, error) {
	var ms []mount
	seen := map[string]bool{}
	for _, e := range entries {
		prefix, dir, ok := strings.Cut(e, "=")
		bad := func(format string, a ...any) error {
			return fmt.Errorf("static: entry %q: "+format, append([]any{e}, a...)...)
		}
		switch {
		case !ok:
			return nil, bad("want PREFIX=DIR, e.g. /assets=./public")
		case prefix == "" || prefix[0] != '/':
			return nil, bad("prefix %q does not start with /", prefix)
		case prefix == "/":
			return nil, bad("prefix / would serve every path; mount a directory under a prefix")
		case strings.HasSuffix(prefix, "/"):
			return nil, bad("prefix %q ends with /", prefix)
		case strings.ContainsAny(prefix, "%{}?#\\ \t") || badPath(prefix) || strings.Contains(prefix, "//"):
			return nil, bad("prefix %q is not a plain path (no %%, {, }, ?, #, \\, spaces, empty or dot segments)", prefix)
		case seen[prefix]:
			return nil, bad("prefix %q is mounted twice", prefix)
		case dir == "":
			return nil, bad("no directory")
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, bad("%v", err)
		}
		if !fi.IsDir() {
			return nil, bad("%s is not a directory", dir)
		}
		seen[prefix] = true
		ms = append(ms, mount{prefix: prefix})
		ms[len(ms)-1].route = &dispatch.Route{Pattern: prefix + "/{path...}", Kind: dispatch.KindStatic, Dir: dir}
	}
	return ms, nil
}

// open opens the mounts of cfg. Called once, by init.
func (st *statics) open(cfg *Config) error {
	ms, err := parseMounts(cfg.Static)
	if err != nil {
		return err
	}
	for i := range ms {
		m := &ms[i]
		m.route.Index = cfg.StaticIndex
		if m.root, err = static.OpenRoot(m.route.Dir, cfg.StaticIndex); err != nil {
			return fmt.Errorf("static: entry %q: %w", cfg.Static[i], err)
		}
		m.route.Dir = m.root.Dir()
	}
	st.mounts = ms
	return nil
}

// match returns the mount path (canonical) falls under, or nil.
func (st *statics) match(path string) *mount {
	for i := range st.mounts {
		m := &st.mounts[i]
		if strings.HasPrefix(path, m.prefix) && (len(path) == len(m.prefix) || path[len(m.prefix)] == '/') {
			return m
		}
	}
	return nil
}

// routeMount routes a request under a mount: GET and HEAD to the mount's
// route; OPTIONS answered 204 and any other method 405, with Allow.
func routeMount(method string, m *mount) (answer int, allow string, rt *dispatch.Route, pattern string) {
	switch method {
	case "GET", "HEAD":
		return 0, "", m.route, m.route.Pattern
	case "OPTIONS":
		return 204, "GET, HEAD", nil, ""
	}
	return 405, "GET, HEAD", nil, ""
}

// root returns the opened directory of a static route: its mount's, or the
// one its Dir names (opened once, kept for the gateway's life; a directory
// that cannot be opened is logged once and answers 404).
func (s *Server) staticRoot(rt *dispatch.Route) (*static.Root, *mount) {
	st := &s.statics
	for i := range st.mounts {
		if st.mounts[i].route == rt {
			return st.mounts[i].root, &st.mounts[i]
		}
	}
	key := rootKey{rt.Dir, rt.Index}
	if r, ok := st.roots.Load(key); ok {
		return r.(*static.Root), nil
	}
	r, err := static.OpenRoot(rt.Dir, rt.Index)
	if err != nil {
		if _, dup := st.failed.LoadOrStore(key, struct{}{}); !dup {
			s.log.Warn("static route's directory cannot be opened; answering 404", "app", rt.App, "route", rt.Pattern, "err", err)
		}
		return nil, nil
	}
	if prev, loaded := st.roots.LoadOrStore(key, r); loaded {
		r.Close()
		return prev.(*static.Root), nil
	}
	st.failed.Delete(key)
	return r, nil
}

// openStatic opens the file a request for static route rt names: path is
// the request path as sent, ps the route's parameters (the last is the
// catch-all). fail is 404, or 301 (redirect to path + "/") for a directory
// named without its trailing slash.
func (s *Server) openStatic(rt *dispatch.Route, ps *router.Params, path, acceptEncoding string) (f *static.File, fail int) {
	root, m := s.staticRoot(rt)
	if root == nil {
		return nil, 404
	}
	var raw string
	if m != nil {
		canon := path
		if b, ok := router.AppendCanonicalPath(nil, path); ok {
			canon = string(b)
		}
		if len(canon) == len(m.prefix) {
			if root.Index() {
				return nil, 301
			}
			return nil, 404
		}
		raw = canon[len(m.prefix)+1:]
	} else {
		if ps.Len() == 0 {
			return nil, 404
		}
		raw = ps.At(ps.Len() - 1).Value
	}
	f, err := root.Open(raw, acceptEncoding)
	switch {
	case errors.Is(err, static.ErrNeedSlash):
		return nil, 301
	case err != nil:
		return nil, 404
	}
	return f, 0
}

// fileAnswer is the decided answer for one file: its fields (canonical
// case) and what part of the file goes.
type fileAnswer struct {
	static.Answer
	fields []http1.Header
}

var (
	nameETag            = []byte("ETag")
	nameLastModified    = []byte("Last-Modified")
	nameAcceptRanges    = []byte("Accept-Ranges")
	nameContentEncoding = []byte("Content-Encoding")
	nameContentRange    = []byte("Content-Range")
	nameVary            = []byte("Vary")
	nameLocation        = []byte("Location")
	valBytes            = []byte("bytes")
	valAcceptEncoding   = []byte("Accept-Encoding")
)

// planFile decides the answer to req for f, whose full answer is status
// full, with a worker's extra fields (RESP_FILE; nil for a static route):
// those replace the gateway's fields of the same name (content-type,
// etag, last-modified; the conditions are evaluated against what is
// sent), and framing fields among them are dropped. The fields are
// appended to dst.
func planFile(dst []http1.Header, f *static.File, req *static.Request, full int, extra []workerproto.Header) fileAnswer {
	v := f.Validate()
	ownType, ownTag, ownDate := false, false, false
	for i := range extra {
		n := extra[i].Name
		switch {
		case fieldIs(n, "content-type"):
			ownType = true
		case fieldIs(n, "etag"):
			ownTag, v.ETag = true, string(extra[i].Value)
		case fieldIs(n, "last-modified"):
			ownDate, v.LastModified = true, string(extra[i].Value)
		}
	}
	a := static.Evaluate(req, f.Size, v, full)
	hs := dst
	for i := range extra {
		n := extra[i].Name
		if fieldIs(n, "content-length") || fieldIs(n, "transfer-encoding") || fieldIs(n, "connection") || fieldIs(n, "keep-alive") {
			continue
		}
		hs = append(hs, http1.Header{Name: n, Value: extra[i].Value})
	}
	if !ownTag && v.ETag != "" {
		hs = append(hs, http1.Header{Name: nameETag, Value: stringBytes(v.ETag)})
	}
	if f.Vary {
		hs = append(hs, http1.Header{Name: nameVary, Value: valAcceptEncoding})
	}
	if a.Status == 304 || a.Status == 412 {
		return fileAnswer{a, hs}
	}
	if !ownDate && v.LastModified != "" {
		hs = append(hs, http1.Header{Name: nameLastModified, Value: stringBytes(v.LastModified)})
	}
	if full == 200 {
		hs = append(hs, http1.Header{Name: nameAcceptRanges, Value: valBytes})
	}
	if a.ContentRange != "" {
		hs = append(hs, http1.Header{Name: nameContentRange, Value: stringBytes(a.ContentRange)})
	}
	if a.Status == 416 {
		return fileAnswer{a, hs}
	}
	if !ownType {
		hs = append(hs, http1.Header{Name: nameContentType, Value: stringBytes(f.ContentType)})
	}
	if f.Encoding != "" {
		hs = append(hs, http1.Header{Name: nameContentEncoding, Value: stringBytes(f.Encoding)})
	}
	return fileAnswer{a, hs}
}

// h1FileRequest reads the fields static.Evaluate needs from an HTTP/1.1
// request. The strings alias the request's buffer.
func h1FileRequest(r *http1.Request, method string) static.Request {
	return static.Request{
		Method:            method,
		IfMatch:           bytesString(r.Header("if-match")),
		IfUnmodifiedSince: bytesString(r.Header("if-unmodified-since")),
		IfNoneMatch:       bytesString(r.Header("if-none-match")),
		IfModifiedSince:   bytesString(r.Header("if-modified-since")),
		IfRange:           bytesString(r.Header("if-range")),
		Range:             bytesString(r.Header("range")),
	}
}

// serveStatic answers x, routed to a static route or mount, from disk.
func (c *conn) serveStatic(x *exchange) ending {
	f, fail := c.srv.openStatic(x.route, &x.params, x.path, bytesString(x.req.Header("accept-encoding")))
	switch fail {
	case 301:
		return c.redirect(x, x.path+"/")
	case 404:
		return c.answer(x, 404, "", 0)
	}
	defer f.Close()
	extra := c.srv.staticFields(x.route, x.req.Header("origin"), c.tls != nil)
	closeConn, err := c.writeFile(x, f, 200, extra)
	switch {
	case err != nil:
		c.wbuf = c.wbuf[:0]
		return closeHard
	case closeConn:
		return closeGraceful
	}
	return keepOpen
}

// redirect answers x with a 301 to location (plus x's query).
func (c *conn) redirect(x *exchange, location string) ending {
	if x.query != "" {
		location += "?" + x.query
	}
	hs := append(c.rhdrs[:0],
		http1.Header{Name: nameServer, Value: valServer},
		http1.Header{Name: nameLocation, Value: stringBytes(location)},
		http1.Header{Name: nameRequestID, Value: stringBytes(x.rid)})
	rh := http1.ResponseHead{Status: 301, Header: hs, ContentLength: 0, Close: c.mustClose(x), Date: c.srv.date.Value(time.Now())}
	c.rhdrs = hs[:0]
	b, _, err := rh.Append(c.wbuf, &x.req)
	if err != nil { // a path the parser took is a valid field value
		return c.answer(x, 404, "", 0)
	}
	c.wbuf, c.status = b, 301
	if c.flush() != nil {
		return closeHard
	}
	if rh.Close {
		return closeGraceful
	}
	return keepOpen
}

// writeFile writes the answer for f (full answer status full, a worker's
// extra fields) to x's request: the head, then the body. closeConn says the
// head asked the connection to close; err is a failed write (the response
// is broken off).
func (c *conn) writeFile(x *exchange, f *static.File, full int, extra []workerproto.Header) (closeConn bool, err error) {
	fr := h1FileRequest(&x.req, x.method)
	haveServer, haveID, haveAltSvc := false, false, false
	for i := range extra {
		switch n := extra[i].Name; {
		case fieldIs(n, "server"):
			haveServer = true
		case fieldIs(n, "x-request-id"):
			haveID = true
		case fieldIs(n, "alt-svc"):
			haveAltSvc = true
		}
	}
	hs := c.rhdrs[:0]
	if !haveServer {
		hs = append(hs, http1.Header{Name: nameServer, Value: valServer})
	}
	fa := planFile(hs, f, &fr, full, extra)
	hs = fa.fields
	if !haveID {
		hs = append(hs, http1.Header{Name: nameRequestID, Value: stringBytes(x.rid)})
	}
	if a := c.srv.cfg.AltSvc; a != "" && !haveAltSvc {
		hs = append(hs, http1.Header{Name: nameAltSvc, Value: stringBytes(a)})
	}
	length := fa.Length
	if fa.Status == 304 {
		length = -1
	}
	rh := http1.ResponseHead{Status: fa.Status, Header: hs, ContentLength: length, Close: c.mustClose(x), Date: c.srv.date.Value(time.Now())}
	c.rhdrs = hs[:0]
	b, framing, err := rh.Append(c.wbuf, &x.req)
	if err != nil {
		// A worker's field that could split the response: nothing is sent.
		return false, fmt.Errorf("%w: %w", errFileHead, err)
	}
	c.wbuf, c.status = b, fa.Status
	if framing != http1.FramingLength || !fa.Body || fa.Length == 0 {
		return rh.Close, c.flush()
	}
	return rh.Close, c.sendFileBody(f, fa.Offset, fa.Length)
}

// sendFileBody writes the buffered head, then n (> 0) bytes of f from off:
// with sendfile on a plain socket (the head with MSG_MORE, so that it leaves
// with the file's first bytes), else copied (copyFile).
func (c *conn) sendFileBody(f *static.File, off, n int64) error {
	fs, ok := c.nc.(engine.FileSender)
	if !ok {
		return c.copyFile(f, off, n)
	}
	if c.werr != nil {
		return c.werr
	}
	c.sent = true
	head := c.wbuf
	err := c.bounded(func() (int64, error) {
		k, err := fs.SendFile(head, f.File, off, n)
		hk := min(k, int64(len(head)))
		head = head[hk:]
		off, n = off+k-hk, n-k+hk
		return k, err
	})
	c.wbuf = c.wbuf[:0]
	return err
}

// errShortFile: a file shrank while it was being sent.
var errShortFile = errors.New("server: static file shorter than its length")

var copyBufs = sync.Pool{New: func() any { return new([64 << 10]byte) }}

// copyFile writes the buffered head, then n bytes of f from off, through
// the write buffer (TLS: the bytes must pass through user space): a body of
// at most smallFile bytes goes in one write with the head.
func (c *conn) copyFile(f *static.File, off, n int64) error {
	for n > 0 {
		start := len(c.wbuf)
		k := min(n, copyChunk)
		if len(c.wbuf) > 0 && n > smallFile {
			k = 0 // the head alone first: then whole chunks
		}
		if k > 0 {
			c.wbuf = slices.Grow(c.wbuf, int(k))[:start+int(k)]
			got, err := f.ReadAt(c.wbuf[start:], off)
			if int64(got) != k {
				c.wbuf = c.wbuf[:0]
				c.srv.log.Warn("static: file changed while sent", "file", f.Name(), "err", err)
				return errShortFile
			}
			off, n = off+k, n-k
		}
		if err := c.flush(); err != nil {
			return err
		}
	}
	return nil
}

// copyChunk is how much of a file one write carries when it is copied.
const copyChunk = 64 << 10

// WriteFile implements dispatch.FileWriter: a worker's RESP_FILE answer.
// A file that cannot be opened is answered 404.
func (w *respWriter) WriteFile(status int, headers []workerproto.Header, path string) error {
	if w.err != nil {
		return w.err
	}
	if w.started {
		w.err = errHeadTwice
		return w.err
	}
	c, x := w.c, w.x
	f, err := static.OpenFile(path, bytesString(x.req.Header("accept-encoding")))
	if err != nil {
		c.srv.log.Debug("static: worker's file not served", "request_id", x.rid, "path", path, "err", err)
		end := c.answer(x, 404, "", 0)
		w.started, w.framing = true, http1.FramingNone
		w.closeConn = end == closeGraceful
		if end == closeHard {
			return w.fail(errFileAnswer)
		}
		return nil
	}
	defer f.Close()
	closeConn, err := c.writeFile(x, f, status, headers)
	if errors.Is(err, errFileHead) {
		w.err = err // the worker's misuse, answered 502: nothing was sent
		return err
	}
	w.started, w.framing, w.closeConn = true, http1.FramingNone, closeConn
	return w.fail(err)
}

// errFileHead: a worker's RESP_FILE fields could not make a response head.
var errFileHead = errors.New("server: RESP_FILE fields rejected")

// errFileAnswer: a gateway answer in place of a worker's file could not be
// written.
var errFileAnswer = errors.New("server: file answer not written")

// serveStaticHTTP answers an HTTP/2 or HTTP/3 request routed to a static
// route or mount, from disk.
func (s *Server) serveStaticHTTP(w *hWriter, r *http.Request, rt *dispatch.Route, ps *router.Params, path, query string) error {
	f, fail := s.openStatic(rt, ps, path, r.Header.Get("Accept-Encoding"))
	switch fail {
	case 301:
		loc := path + "/"
		if query != "" {
			loc += "?" + query
		}
		hdr := w.rw.Header()
		w.fill(hdr)
		hdr["Location"] = []string{loc}
		hdr["Content-Length"] = []string{"0"}
		w.status = 301
		w.rw.WriteHeader(301)
		return nil
	case 404:
		w.answer(404, "", 0)
		return nil
	}
	defer f.Close()
	var origin []byte
	if o := r.Header["Origin"]; len(o) == 1 {
		origin = stringBytes(o[0])
	}
	return w.sendFile(r, f, 200, s.staticFields(rt, origin, r.TLS != nil))
}

// staticFields returns the Backend's fields for a file of route rt, nil
// when it adds none. origin is the request's Origin value, nil for none.
func (s *Server) staticFields(rt *dispatch.Route, origin []byte, https bool) []workerproto.Header {
	if sf, ok := s.Backend.(dispatch.StaticFielder); ok {
		return sf.StaticFields(rt, origin, https, nil)
	}
	return nil
}

// WriteFile implements dispatch.FileWriter for HTTP/2 and HTTP/3.
func (w *hWriter) WriteFile(status int, headers []workerproto.Header, path string) error {
	if w.err != nil {
		return w.err
	}
	if w.started {
		w.err = errHeadTwice
		return w.err
	}
	f, err := static.OpenFile(path, w.req.Header.Get("Accept-Encoding"))
	if err != nil {
		w.s.log.Debug("static: worker's file not served", "request_id", w.rid, "path", path, "err", err)
		w.answer(404, "", 0)
		w.started, w.length = true, -1
		return nil
	}
	defer f.Close()
	return w.sendFile(w.req, f, status, headers)
}

// sendFile writes the answer for f to an HTTP/2 or HTTP/3 request.
func (w *hWriter) sendFile(r *http.Request, f *static.File, full int, extra []workerproto.Header) error {
	h := r.Header
	fr := static.Request{
		Method: r.Method, IfMatch: h.Get("If-Match"), IfUnmodifiedSince: h.Get("If-Unmodified-Since"),
		IfNoneMatch: h.Get("If-None-Match"), IfModifiedSince: h.Get("If-Modified-Since"),
		IfRange: h.Get("If-Range"), Range: h.Get("Range"),
	}
	var store [12]http1.Header
	fa := planFile(store[:0], f, &fr, full, extra)
	hdr := w.rw.Header()
	for _, fl := range fa.fields {
		if connectionField(fl.Name) {
			continue
		}
		hdr.Add(string(fl.Name), string(fl.Value))
	}
	w.fill(hdr)
	if fa.Status != 304 {
		hdr["Content-Length"] = []string{strconv.FormatInt(fa.Length, 10)}
	}
	w.started, w.status, w.length = true, fa.Status, -1
	w.rw.WriteHeader(fa.Status)
	if !fa.Body || fa.Length == 0 {
		return nil
	}
	buf := copyBufs.Get().(*[64 << 10]byte)
	defer copyBufs.Put(buf)
	off, n := fa.Offset, fa.Length
	for n > 0 {
		k, err := f.ReadAt(buf[:min(n, int64(len(buf)))], off)
		if k == 0 {
			w.s.log.Warn("static: file changed while sent", "file", f.Name(), "err", err)
			w.err = errShortFile
			return w.err
		}
		off, n = off+int64(k), n-int64(k)
		m, err := w.rw.Write(buf[:k])
		w.written += int64(m)
		if err != nil {
			w.werr, w.err = err, err
			return err
		}
	}
	return nil
}
