package server

import (
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// exchange is one request and what the gateway decided about it.
//
// Ownership: the reader owns an exchange from getExchange until it puts it
// on the queue; from then on the writer owns it until recycle. The strings
// below (method aside) alias req's arena or rid, so they are valid exactly
// as long as the exchange is not recycled: the writer recycles it only after
// Backend.Serve has returned, and the dispatch contract says Serve keeps
// nothing of the request after that.
type exchange struct {
	req  http1.Request
	body []byte // the whole request body (routed requests only)

	answer int    // != 0: the gateway answers this status itself
	allow  string // Allow value for 405 and automatic OPTIONS
	// closeAfter: close the connection after the response (a rejected
	// 100-continue request whose body was never read).
	closeAfter bool

	route   *dispatch.Route
	pattern string
	method  string
	path    string
	query   string
	rid     string // X-Request-ID, the client's or generated into ridBuf
	params  router.Params
	wparams []workerproto.Param // params percent-decoded for the worker
	ridBuf  [16]byte
	pathBuf []byte     // the path in canonical form, when it differs (router.AppendCanonicalPath)
	start   time.Time  // head parsed: the start of the request's latency
	ws      wsExchange // a WebSocket route's handshake (ws_http1.go)
}

// item is one entry of a connection's answer queue: a request, an interim
// 100 Continue, or a parse error to answer; or stop, which ends the writer
// (not counted in inflight).
type item struct {
	x     *exchange
	perr  *http1.Error
	cont  bool
	stop  bool
	start time.Time // perr: when it was queued (metrics or access log only)
}

// errTimeout is answered when a head or body arrives too slowly.
var errTimeout = &http1.Error{Status: 408, Reason: "request_timeout", Close: true}

// classify looks up a freshly parsed head and decides whether the backend
// serves it or the gateway answers it. It runs on the reader goroutine.
func (c *conn) classify(x *exchange) {
	r := &x.req
	x.answer, x.allow, x.closeAfter = 0, "", false
	x.route, x.pattern = nil, ""
	x.method = methodString(r.Method)
	x.path = bytesString(r.Path)
	x.query = bytesString(r.Query)
	x.wparams = x.wparams[:0]
	x.params.Reset()
	if v := r.Header("x-request-id"); saneRequestID(v) {
		x.rid = bytesString(v)
	} else {
		x.rid = c.newRequestID(&x.ridBuf)
	}

	switch r.Form {
	case http1.FormAuthority: // CONNECT: this is not a proxy
		x.answer = 501
		return
	case http1.FormAsterisk: // OPTIONS *: nothing to say about the server
		x.answer = 204
		return
	}
	x.answer, x.allow, x.route, x.pattern = c.srv.routeRequest(x.method, x.path, &x.params, &x.pathBuf, &x.wparams)
}

// routeRequest routes one request of any protocol: it returns the status
// the gateway answers itself (0 for none) with the Allow value for 405 and
// automatic OPTIONS, or the route and its pattern, with the path parameters
// percent-decoded into *wparams. ps and *pathBuf are scratch space; the
// strings returned alias path or ps.
func (s *Server) routeRequest(method, path string, ps *router.Params, pathBuf *[]byte, wparams *[]workerproto.Param) (answer int, allow string, rt *dispatch.Route, pattern string) {
	if badPath(path) {
		return 400, "", nil, ""
	}
	// Equivalent spellings of a path ("%c3%a9" and "%C3%A9", "%7E" and "~") match
	// the same route; the worker still gets the path as sent.
	lookup := path
	if b, ok := router.AppendCanonicalPath((*pathBuf)[:0], path); ok {
		*pathBuf = b
		lookup = bytesString(b)
	}
	m, st := s.Backend.Lookup(method, lookup, ps)
	switch st {
	case router.StatusFound:
		if m.Value == nil {
			return 404, "", nil, ""
		}
	case router.StatusMethodNotAllowed:
		return 405, m.Allow, nil, ""
	case router.StatusOptions:
		return 204, m.Allow, nil, ""
	default:
		return 404, "", nil, ""
	}
	for _, p := range ps.Slice() {
		v, err := router.Unescape(p.Value)
		if err != nil || !utf8.ValidString(v) {
			return 400, "", nil, ""
		}
		*wparams = append(*wparams, workerproto.Param{Name: p.Name, Value: v})
	}
	return 0, "", m.Value, m.Pattern
}

// fillRequest builds the dispatch.Request for x in d, reusing d's storage.
func (c *conn) fillRequest(d *dispatch.Request, x *exchange) {
	hs := d.Head.Headers[:0]
	for _, f := range x.req.Headers {
		hs = append(hs, workerproto.Header{Name: f.Name, Value: f.Value})
	}
	version := "1.1"
	if x.req.Minor == 0 {
		version = "1.0"
	}
	d.Head = workerproto.RequestHead{
		Method:      x.method,
		Path:        x.path,
		Query:       x.query,
		Headers:     hs,
		Route:       x.pattern,
		Params:      x.wparams,
		HTTPVersion: version,
		Scheme:      c.scheme(),
		Client:      c.remote,
		RequestID:   x.rid,
		Body:        int64(len(x.body)),
		TimeoutMS:   x.route.Timeout.Milliseconds(),
	}
	d.Head.ClientCert = c.clientCert
	d.Body = x.body
	d.Timeout = 0
}

func (c *conn) scheme() string {
	if c.tls != nil {
		return "https"
	}
	return "http"
}

// bytesString returns a string sharing b's memory. Only for bytes that are
// not modified while the string is in use (an exchange's arena).
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// methodString returns the method as a string: the interned constant of
// http1.KnownMethod for the registered methods (no allocation, and safe to keep,
// e.g. as a metric label), a fresh copy for any other token.
func methodString(m []byte) string {
	if name, ok := http1.KnownMethod(string(m)); ok {
		return name
	}
	return string(m)
}

// badPath reports whether a request path is refused before routing: it
// does not start with '/', or one of its segments is a dot segment ("." or
// "..", also percent-encoded as %2e). The router matches raw paths and
// never resolves dot segments; rejecting them here keeps a worker from ever
// seeing a path whose meaning depends on who normalises it.
func badPath(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return true
	}
	if strings.IndexByte(p, '.') < 0 && strings.IndexByte(p, '%') < 0 {
		return false
	}
	for i := 1; i <= len(p); {
		end := strings.IndexByte(p[i:], '/')
		if end < 0 {
			end = len(p)
		} else {
			end += i
		}
		if isDotSegment(p[i:end]) {
			return true
		}
		i = end + 1
	}
	return false
}

// isDotSegment reports whether s is "." or "..", each dot possibly written
// as %2e or %2E.
func isDotSegment(s string) bool {
	n := 0
	for len(s) > 0 {
		switch {
		case s[0] == '.':
			s = s[1:]
		case len(s) >= 3 && s[0] == '%' && s[1] == '2' && s[2]|0x20 == 'e':
			s = s[3:]
		default:
			return false
		}
		if n++; n > 2 {
			return false
		}
	}
	return n > 0
}

// saneRequestID accepts a client's X-Request-ID of 1 to 128 visible ASCII
// characters.
func saneRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// newRequestID writes a 16-hex-digit id into buf and returns it as a string
// aliasing buf (requestID with the connection's seed and counter).
func (c *conn) newRequestID(buf *[16]byte) string {
	c.ridN++
	return requestID(buf, c.ridSeed, c.ridN)
}

// requestID writes a 16-hex-digit id into buf and returns it as a string
// aliasing buf. Ids are a bijective mix of a random seed and a counter:
// unique for one seed, unpredictable enough to not collide across seeds in
// practice, and free of locks, atomics and crypto.
func requestID(buf *[16]byte, seed, n uint64) string {
	z := seed + n*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	const hexDigits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		buf[i] = hexDigits[z&15]
		z >>= 4
	}
	return unsafe.String(&buf[0], len(buf))
}
