package workerproto

import (
	"fmt"
	"unicode/utf8"
)

// Limits on what a worker may put in a RESP_HEAD (PROTOCOL.md 3.2 and 4). The
// assembled head is already bounded by MaxHead; these bound the work and memory one
// head can cost the gateway.
const (
	MaxHead             = 1 << 20 // assembled REQ_HEAD / RESP_HEAD / ERROR payload, bytes
	MaxResponseHeaders  = 1024    // header fields (name/value pairs) in one RESP_HEAD
	MaxHeaderNameLen    = 256     // bytes of one header name
	MaxHeaderValueLen   = 64 << 10
	minResponseStatus   = 200 // 1xx are not sent by workers (PROTOCOL.md 3.2)
	maxStatus           = 599
	requestHeadElements = 12 // 13 with client_cert, 14 with auth
	clientCertElements  = 3
	authElements        = 4
)

// Header is one HTTP field: a lower-case name and the value's raw bytes.
type Header struct {
	Name  []byte
	Value []byte
}

// Param is one path parameter: the pattern's name and the percent-decoded value.
type Param struct {
	Name  string
	Value string
}

// RequestHead is the REQ_HEAD payload (PROTOCOL.md 3.1), written by the gateway.
type RequestHead struct {
	Method      string   // GET, POST, ...
	Path        string   // raw path as sent, percent-encoding kept
	Query       string   // raw query without '?', may be empty
	Headers     []Header // in arrival order; names are lower-cased by Append
	Route       string   // matched route pattern, e.g. /users/{id:int}
	Params      []Param  // path parameters, percent-decoded, not converted
	HTTPVersion string   // 1.0, 1.1, 2, 3
	Scheme      string   // http or https
	Client      string   // peer address ip:port
	RequestID   string   // X-Request-ID
	Body        int64    // body length if known, -1 if unknown length follows, 0 if none
	TimeoutMS   int64    // time the handler has left in ms; 0 = none
	// ClientCert is the connection's verified TLS client certificate (mTLS), or
	// nil: then the payload has 12 elements, else 13.
	ClientCert *ClientCert
	// Auth is the identity the gateway verified from the request's bearer
	// token, or nil: with it the payload has 14 elements, the 13th being
	// ClientCert or nil.
	Auth *Auth
}

// Auth is a request's verified bearer token as the worker gets it: REQ_HEAD's
// optional 14th element (PROTOCOL.md 3.1). The worker never re-verifies it.
type Auth struct {
	Subject string   // the token's sub claim, "" when it has none
	Claims  []byte   // the token's claims set, the JSON object the gateway verified
	Roles   []string // from the roles claim (auth_roles_claim)
	Scopes  []string // from the scopes claim (auth_scopes_claim)
}

// ClientCert is a verified TLS client certificate as the worker gets it: the
// optional 13th REQ_HEAD element (PROTOCOL.md 3.1).
type ClientCert struct {
	Subject     string   // the subject's distinguished name, RFC 2253 style
	SANs        []string // subject alternative names: DNS names, e-mail addresses, URIs, IPs
	Fingerprint string   // SHA-256 of the certificate (DER), lower-case hex
}

// tokenLower maps a byte to its lower-case form if it is an RFC 9110 tchar, and to 0
// otherwise.
var tokenLower = func() (t [256]byte) {
	const extra = "!#$%&'*+-.^_`|~"
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c)
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = byte(c)
		t[c-'a'+'A'] = byte(c)
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = extra[i]
	}
	return t
}()

// Append appends h's MessagePack encoding (a 12-element array, 13 with a
// ClientCert, 14 with Auth) to b. It does not allocate when b has room. Header names are written lower-cased; a header name that
// is empty or not an HTTP token, or a str field that is not valid UTF-8, is an error
// (wrapping ErrBadValue), so that the gateway answers the client 400 rather than send
// the worker a payload it must refuse.
func (h *RequestHead) Append(b []byte) ([]byte, error) {
	start := len(b)
	switch {
	case h.Auth != nil:
		b = append(b, 0x9e) // fixarray of 14
	case h.ClientCert != nil:
		b = append(b, 0x9d) // fixarray of 13
	default:
		b = append(b, 0x9c) // fixarray of 12
	}
	b = appendStr(b, h.Method)
	b = appendStr(b, h.Path)
	b = appendStr(b, h.Query)
	b = appendArrayLen(b, 2*len(h.Headers))
	for i := range h.Headers {
		f := &h.Headers[i]
		if len(f.Name) == 0 {
			return b[:start], &FieldError{Where: "req_head", Field: "headers", Err: ErrBadValue, Detail: "empty header name"}
		}
		b = appendStrLen(b, len(f.Name))
		n := len(b)
		b = append(b, f.Name...)
		for j := n; j < len(b); j++ {
			c := tokenLower[b[j]]
			if c == 0 {
				return b[:start], &FieldError{Where: "req_head", Field: "headers", Err: ErrBadValue, Detail: "header name is not an HTTP token"}
			}
			b[j] = c
		}
		b = appendBin(b, f.Value)
	}
	b = appendStr(b, h.Route)
	b = appendArrayLen(b, 2*len(h.Params))
	for i := range h.Params {
		b = appendStr(b, h.Params[i].Name)
		b = appendStr(b, h.Params[i].Value)
	}
	b = appendStr(b, h.HTTPVersion)
	b = appendStr(b, h.Scheme)
	b = appendStr(b, h.Client)
	b = appendStr(b, h.RequestID)
	b = appendInt(b, h.Body)
	b = appendInt(b, h.TimeoutMS)
	if cc := h.ClientCert; cc != nil {
		b = append(b, 0x93)
		b = appendStr(b, cc.Subject)
		b = appendArrayLen(b, len(cc.SANs))
		for _, s := range cc.SANs {
			b = appendStr(b, s)
		}
		b = appendStr(b, cc.Fingerprint)
	} else if h.Auth != nil {
		b = append(b, 0xc0) // nil: no client certificate
	}
	if a := h.Auth; a != nil {
		b = append(b, 0x94)
		b = appendStr(b, a.Subject)
		b = appendBin(b, a.Claims)
		b = appendArrayLen(b, len(a.Roles))
		for _, s := range a.Roles {
			b = appendStr(b, s)
		}
		b = appendArrayLen(b, len(a.Scopes))
		for _, s := range a.Scopes {
			b = appendStr(b, s)
		}
	}
	if !h.validUTF8() {
		return b[:start], &FieldError{Where: "req_head", Field: "str", Err: ErrBadValue, Detail: "a str field is not valid UTF-8"}
	}
	return b, nil
}

func (h *RequestHead) validUTF8() bool {
	ok := utf8.ValidString(h.Method) && utf8.ValidString(h.Path) && utf8.ValidString(h.Query) &&
		utf8.ValidString(h.Route) && utf8.ValidString(h.HTTPVersion) && utf8.ValidString(h.Scheme) &&
		utf8.ValidString(h.Client) && utf8.ValidString(h.RequestID)
	for i := 0; ok && i < len(h.Params); i++ {
		ok = utf8.ValidString(h.Params[i].Name) && utf8.ValidString(h.Params[i].Value)
	}
	if cc := h.ClientCert; ok && cc != nil {
		ok = utf8.ValidString(cc.Subject) && utf8.ValidString(cc.Fingerprint)
		for i := 0; ok && i < len(cc.SANs); i++ {
			ok = utf8.ValidString(cc.SANs[i])
		}
	}
	if a := h.Auth; ok && a != nil {
		ok = utf8.ValidString(a.Subject)
		for i := 0; ok && i < len(a.Roles); i++ {
			ok = utf8.ValidString(a.Roles[i])
		}
		for i := 0; ok && i < len(a.Scopes); i++ {
			ok = utf8.ValidString(a.Scopes[i])
		}
	}
	return ok
}

// Len returns the length of h's encoding.
func (h *RequestHead) Len() int {
	n := 1 + strSize(len(h.Method)) + strSize(len(h.Path)) + strSize(len(h.Query)) +
		arraySize(2*len(h.Headers)) + strSize(len(h.Route)) + arraySize(2*len(h.Params)) +
		strSize(len(h.HTTPVersion)) + strSize(len(h.Scheme)) + strSize(len(h.Client)) +
		strSize(len(h.RequestID)) + intSize(h.Body) + intSize(h.TimeoutMS)
	for i := range h.Headers {
		n += strSize(len(h.Headers[i].Name)) + binSize(len(h.Headers[i].Value))
	}
	for i := range h.Params {
		n += strSize(len(h.Params[i].Name)) + strSize(len(h.Params[i].Value))
	}
	if cc := h.ClientCert; cc != nil {
		n += 1 + strSize(len(cc.Subject)) + arraySize(len(cc.SANs)) + strSize(len(cc.Fingerprint))
		for _, s := range cc.SANs {
			n += strSize(len(s))
		}
	} else if h.Auth != nil {
		n++ // nil
	}
	if a := h.Auth; a != nil {
		n += 1 + strSize(len(a.Subject)) + binSize(len(a.Claims)) + arraySize(len(a.Roles)) + arraySize(len(a.Scopes))
		for _, s := range a.Roles {
			n += strSize(len(s))
		}
		for _, s := range a.Scopes {
			n += strSize(len(s))
		}
	}
	return n
}

func strSize(n int) int {
	switch {
	case n < 32:
		return 1 + n
	case n <= 0xff:
		return 2 + n
	case n <= 0xffff:
		return 3 + n
	}
	return 5 + n
}

func binSize(n int) int {
	switch {
	case n <= 0xff:
		return 2 + n
	case n <= 0xffff:
		return 3 + n
	}
	return 5 + n
}

func arraySize(n int) int {
	switch {
	case n < 16:
		return 1
	case n <= 0xffff:
		return 3
	}
	return 5
}

func intSize(v int64) int { return len(appendInt(make([]byte, 0, 9), v)) }

// DecodeRequestHead decodes a REQ_HEAD payload. The result does not alias b. It is
// strict: exactly 12 elements of the listed types, or 13 with a client_cert of
// exactly [str, array of str, str]; flat pairs of even length, body >= -1,
// timeout_ms >= 0; anything else is an error naming the element.
func DecodeRequestHead(b []byte) (RequestHead, error) {
	const where = "req_head"
	var h RequestHead
	r := mpReader{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return h, wrapField(where, "array", err)
	}
	if n < requestHeadElements || n > requestHeadElements+2 {
		return h, fieldErr(where, "array", ErrBadValue, "want 12, 13 or 14 elements, got %d", n)
	}
	withCert, withAuth := n >= requestHeadElements+1, n == requestHeadElements+2
	strs := [...]struct {
		name string
		dst  *string
	}{{"method", &h.Method}, {"path", &h.Path}, {"query", &h.Query}}
	for _, s := range strs {
		v, err := r.str()
		if err != nil {
			return h, wrapField(where, s.name, err)
		}
		*s.dst = string(v)
	}
	n, err = r.arrayLen()
	if err != nil {
		return h, wrapField(where, "headers", err)
	}
	if n%2 != 0 {
		return h, fieldErr(where, "headers", ErrBadValue, "odd length %d", n)
	}
	if n > 0 {
		h.Headers = make([]Header, n/2)
	}
	for i := range h.Headers {
		name, err := r.str()
		if err != nil {
			return h, wrapField(where, "headers", err)
		}
		val, err := r.bin()
		if err != nil {
			return h, wrapField(where, "headers", err)
		}
		buf := make([]byte, len(name)+len(val))
		copy(buf, name)
		copy(buf[len(name):], val)
		h.Headers[i] = Header{Name: buf[:len(name):len(name)], Value: buf[len(name):]}
	}
	v, err := r.str()
	if err != nil {
		return h, wrapField(where, "route", err)
	}
	h.Route = string(v)
	n, err = r.arrayLen()
	if err != nil {
		return h, wrapField(where, "params", err)
	}
	if n%2 != 0 {
		return h, fieldErr(where, "params", ErrBadValue, "odd length %d", n)
	}
	if n > 0 {
		h.Params = make([]Param, n/2)
	}
	for i := range h.Params {
		name, err := r.str()
		if err != nil {
			return h, wrapField(where, "params", err)
		}
		val, err := r.str()
		if err != nil {
			return h, wrapField(where, "params", err)
		}
		h.Params[i] = Param{Name: string(name), Value: string(val)}
	}
	strs2 := [...]struct {
		name string
		dst  *string
	}{{"http_version", &h.HTTPVersion}, {"scheme", &h.Scheme}, {"client", &h.Client}, {"request_id", &h.RequestID}}
	for _, s := range strs2 {
		v, err := r.str()
		if err != nil {
			return h, wrapField(where, s.name, err)
		}
		*s.dst = string(v)
	}
	if h.Body, err = r.int(); err != nil {
		return h, wrapField(where, "body", err)
	}
	if h.Body < -1 {
		return h, fieldErr(where, "body", ErrBadValue, "%d < -1", h.Body)
	}
	if h.TimeoutMS, err = r.int(); err != nil {
		return h, wrapField(where, "timeout_ms", err)
	}
	if h.TimeoutMS < 0 {
		return h, fieldErr(where, "timeout_ms", ErrBadValue, "negative (%d)", h.TimeoutMS)
	}
	switch {
	case withAuth && r.off < len(b) && b[r.off] == 0xc0: // nil: no client certificate
		r.off++
	case withCert:
		if h.ClientCert, err = decodeClientCert(&r); err != nil {
			return h, err
		}
	}
	if withAuth {
		if h.Auth, err = decodeAuth(&r); err != nil {
			return h, err
		}
	}
	if r.off != len(b) {
		return h, ErrTrailingBytes
	}
	return h, nil
}

// decodeClientCert decodes REQ_HEAD's client_cert element: [subject str, sans
// array of str, fingerprint str]. Errors name the element.
func decodeClientCert(r *mpReader) (*ClientCert, error) {
	const where, field = "req_head", "client_cert"
	n, err := r.arrayLen()
	if err != nil {
		return nil, wrapField(where, field, err)
	}
	if n != clientCertElements {
		return nil, fieldErr(where, field, ErrBadValue, "want 3 elements, got %d", n)
	}
	cc := new(ClientCert)
	v, err := r.str()
	if err != nil {
		return nil, wrapField(where, field+".subject", err)
	}
	cc.Subject = string(v)
	if n, err = r.arrayLen(); err != nil { // bounded by the bytes left
		return nil, wrapField(where, field+".sans", err)
	}
	if n > 0 {
		cc.SANs = make([]string, n)
	}
	for i := range cc.SANs {
		if v, err = r.str(); err != nil {
			return nil, wrapField(where, field+".sans", err)
		}
		cc.SANs[i] = string(v)
	}
	if v, err = r.str(); err != nil {
		return nil, wrapField(where, field+".fingerprint", err)
	}
	cc.Fingerprint = string(v)
	return cc, nil
}

// ResponseHead is the RESP_HEAD payload (PROTOCOL.md 3.2), written by a worker.
//
// Decode fills a ResponseHead in place and reuses its memory: after it returns,
// Headers' names and values point into the ResponseHead's own arena (a copy of the
// payload), never into the caller's buffer, and stay valid until the next Decode.
type ResponseHead struct {
	Status  int
	Headers []Header
	Body    int64 // body length if known, -1 if streamed, 0 if none

	arena []byte
}

// Append appends h's MessagePack encoding (a 3-element array) to b.
func (h *ResponseHead) Append(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, 0x93)
	b = appendInt(b, int64(h.Status))
	b, err := appendHeaders(b, "resp_head", h.Headers)
	if err != nil {
		return b[:start], err
	}
	b = appendInt(b, h.Body)
	return b, nil
}

// Decode decodes a RESP_HEAD payload into h, replacing its contents. The payload is
// untrusted and checked strictly: exactly 3 elements; status 200 ..= 599; at most
// MaxResponseHeaders headers, each a non-empty lower-case HTTP token of at most
// MaxHeaderNameLen bytes with a value of at most MaxHeaderValueLen bytes containing
// no NUL, CR or LF; body >= -1. It never panics and, once h's memory has grown to
// fit, does not allocate.
func (h *ResponseHead) Decode(b []byte) error {
	n, err := h.decode(b)
	if err == nil && n != len(b) {
		return ErrTrailingBytes
	}
	return err
}

// DecodeWithBody decodes a RESP payload (PROTOCOL.md 3.2): a RESP_HEAD encoding
// followed by exactly Body bytes of body, which it returns (a part of b). The checks
// are those of Decode; a head that is not of known length, or a body of another
// length, is an error.
func (h *ResponseHead) DecodeWithBody(b []byte) ([]byte, error) {
	n, err := h.decode(b)
	if err != nil {
		return nil, err
	}
	if h.Body != int64(len(b)-n) {
		return nil, fieldErr("resp", "body", ErrBadValue, "head says %d bytes, %d follow", h.Body, len(b)-n)
	}
	return b[n:], nil
}

// decode decodes the RESP_HEAD encoding at the start of b and reports its length.
func (h *ResponseHead) decode(b []byte) (int, error) {
	const where = "resp_head"
	h.Status, h.Headers, h.Body = 0, h.Headers[:0], 0
	if len(b) > MaxHead {
		return 0, fieldErr(where, "payload", ErrLimit, "%d bytes > %d", len(b), MaxHead)
	}
	h.arena = append(h.arena[:0], b...)
	r := mpReader{b: h.arena}
	n, err := r.arrayLen()
	if err != nil {
		return 0, wrapField(where, "array", err)
	}
	if n != 3 {
		return 0, fieldErr(where, "array", ErrBadValue, "want 3 elements, got %d", n)
	}
	st, err := r.int()
	if err != nil {
		return 0, wrapField(where, "status", err)
	}
	if st < minResponseStatus || st > maxStatus {
		return 0, fieldErr(where, "status", ErrBadValue, "%d not in 200..599", st)
	}
	if h.Headers, err = decodeHeaders(&r, where, h.Headers); err != nil {
		return 0, err
	}
	if h.Body, err = r.int(); err != nil {
		return 0, wrapField(where, "body", err)
	}
	if h.Body < -1 {
		return 0, fieldErr(where, "body", ErrBadValue, "%d < -1", h.Body)
	}
	h.Status = int(st)
	return r.off, nil
}

// decodeHeaders decodes a response's flat header array [name str, value bin, ...]
// (RESP_HEAD's headers, an EARLY_HINTS payload) and appends the fields to dst,
// aliasing r.b. The checks are those of ResponseHead.Decode.
func decodeHeaders(r *mpReader, where string, dst []Header) ([]Header, error) {
	n, err := r.arrayLen()
	if err != nil {
		return dst, wrapField(where, "headers", err)
	}
	if n%2 != 0 {
		return dst, fieldErr(where, "headers", ErrBadValue, "odd length %d", n)
	}
	if n/2 > MaxResponseHeaders {
		return dst, fieldErr(where, "headers", ErrLimit, "%d fields > %d", n/2, MaxResponseHeaders)
	}
	for i := 0; i < n/2; i++ {
		name, err := r.str()
		if err != nil {
			return dst, wrapField(where, "headers", err)
		}
		if len(name) == 0 || len(name) > MaxHeaderNameLen {
			return dst, fieldErr(where, "headers", ErrBadValue, "field %d: name length %d not in 1..%d", i, len(name), MaxHeaderNameLen)
		}
		for _, c := range name {
			if tokenLower[c] != c {
				return dst, fieldErr(where, "headers", ErrBadValue, "field %d: name is not a lower-case HTTP token", i)
			}
		}
		val, err := r.bin()
		if err != nil {
			return dst, wrapField(where, "headers", err)
		}
		if len(val) > MaxHeaderValueLen {
			return dst, fieldErr(where, "headers", ErrLimit, "field %d: value of %d bytes > %d", i, len(val), MaxHeaderValueLen)
		}
		for _, c := range val {
			if c == 0 || c == '\r' || c == '\n' {
				return dst, fieldErr(where, "headers", ErrBadValue, "field %d: value contains NUL, CR or LF", i)
			}
		}
		dst = append(dst, Header{Name: name[:len(name):len(name)], Value: val[:len(val):len(val)]})
	}
	return dst, nil
}

// appendHeaders appends a flat header array [name str, value bin, ...].
func appendHeaders(b []byte, where string, hs []Header) ([]byte, error) {
	b = appendArrayLen(b, 2*len(hs))
	for i := range hs {
		if !utf8.Valid(hs[i].Name) {
			return b, &FieldError{Where: where, Field: "headers", Err: ErrBadValue, Detail: "header name is not valid UTF-8"}
		}
		b = appendStrLen(b, len(hs[i].Name))
		b = append(b, hs[i].Name...)
		b = appendBin(b, hs[i].Value)
	}
	return b, nil
}

// MaxEarlyHints is how many EARLY_HINTS messages a worker may send for one
// exchange (PROTOCOL.md 4); one more is a violation.
const MaxEarlyHints = 16

// EarlyHints is the EARLY_HINTS payload (PROTOCOL.md 3.5): the header fields of a
// 103 (Early Hints) interim response, which a worker may send for an exchange
// before its RESP_HEAD or RESP.
//
// Decode fills an EarlyHints in place and reuses its memory as ResponseHead.Decode
// does: Headers point into the EarlyHints' own copy of the payload and stay valid
// until the next Decode.
type EarlyHints struct {
	Headers []Header

	arena []byte
}

// Append appends h's MessagePack encoding (the flat header array) to b.
func (h *EarlyHints) Append(b []byte) ([]byte, error) {
	start := len(b)
	b, err := appendHeaders(b, "early_hints", h.Headers)
	if err != nil {
		return b[:start], err
	}
	return b, nil
}

// Decode decodes an EARLY_HINTS payload into h, replacing its contents. The checks
// are those of ResponseHead.Decode's headers: at most MaxResponseHeaders fields,
// names lower-case HTTP tokens of at most MaxHeaderNameLen bytes, values of at most
// MaxHeaderValueLen bytes without NUL, CR or LF. It never panics.
func (h *EarlyHints) Decode(b []byte) error {
	const where = "early_hints"
	h.Headers = h.Headers[:0]
	if len(b) > MaxHead {
		return fieldErr(where, "payload", ErrLimit, "%d bytes > %d", len(b), MaxHead)
	}
	h.arena = append(h.arena[:0], b...)
	r := mpReader{b: h.arena}
	var err error
	if h.Headers, err = decodeHeaders(&r, where, h.Headers); err != nil {
		h.Headers = h.Headers[:0]
		return err
	}
	if r.off != len(b) {
		h.Headers = h.Headers[:0]
		return ErrTrailingBytes
	}
	return nil
}

// RespTrailers is the RESP_TRAILERS payload (PROTOCOL.md 3.10): the trailer
// fields that end a streamed response body (a gRPC call's grpc-status,
// grpc-message and trailing metadata, 2.10).
//
// Decode fills a RespTrailers in place and reuses its memory as
// ResponseHead.Decode does: Headers point into the RespTrailers' own copy of the
// payload and stay valid until the next Decode.
type RespTrailers struct {
	Headers []Header

	arena []byte
}

// trailerForbidden are the framing fields a RESP_TRAILERS payload may not hold
// (PROTOCOL.md 3.10); pseudo-fields are no HTTP token and fail earlier.
var trailerForbidden = [...]string{"content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade"}

// Append appends t's MessagePack encoding (the flat header array) to b.
func (t *RespTrailers) Append(b []byte) ([]byte, error) {
	start := len(b)
	b, err := appendHeaders(b, "resp_trailers", t.Headers)
	if err != nil {
		return b[:start], err
	}
	return b, nil
}

// Decode decodes a RESP_TRAILERS payload into t, replacing its contents. The
// checks are those of ResponseHead.Decode's headers (at most MaxResponseHeaders
// fields, names lower-case HTTP tokens of at most MaxHeaderNameLen bytes, values
// of at most MaxHeaderValueLen bytes without NUL, CR or LF), and no field may be
// one of the framing fields of PROTOCOL.md 3.10. It never panics.
func (t *RespTrailers) Decode(b []byte) error {
	const where = "resp_trailers"
	t.Headers = t.Headers[:0]
	if len(b) > MaxHead {
		return fieldErr(where, "payload", ErrLimit, "%d bytes > %d", len(b), MaxHead)
	}
	t.arena = append(t.arena[:0], b...)
	r := mpReader{b: t.arena}
	var err error
	if t.Headers, err = decodeHeaders(&r, where, t.Headers); err != nil {
		t.Headers = t.Headers[:0]
		return err
	}
	if r.off != len(b) {
		t.Headers = t.Headers[:0]
		return ErrTrailingBytes
	}
	for i, h := range t.Headers {
		for _, f := range trailerForbidden {
			if string(h.Name) == f {
				t.Headers = t.Headers[:0]
				return fieldErr(where, "headers", ErrBadValue, "field %d: %s is a framing field, not a trailer", i, f)
			}
		}
	}
	return nil
}

// ErrorPayload is the ERROR frame payload (PROTOCOL.md 3.3).
type ErrorPayload struct {
	Status  int    // status the gateway should answer with, 400 ..= 599 (499 = cancelled)
	Message string // for the gateway's log; never sent to the client
}

// Append appends e's MessagePack encoding (a 2-element array) to b.
func (e *ErrorPayload) Append(b []byte) ([]byte, error) {
	if !utf8.ValidString(e.Message) {
		return b, &FieldError{Where: "error", Field: "message", Err: ErrBadValue, Detail: "not valid UTF-8"}
	}
	b = append(b, 0x92)
	b = appendInt(b, int64(e.Status))
	return appendStr(b, e.Message), nil
}

// DecodeErrorPayload decodes an ERROR frame payload: exactly 2 elements, status in
// 400 ..= 599, message a str. The result does not alias b.
func DecodeErrorPayload(b []byte) (ErrorPayload, error) {
	const where = "error"
	var e ErrorPayload
	if len(b) > MaxHead {
		return e, fieldErr(where, "payload", ErrLimit, "%d bytes > %d", len(b), MaxHead)
	}
	r := mpReader{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return e, wrapField(where, "array", err)
	}
	if n != 2 {
		return e, fieldErr(where, "array", ErrBadValue, "want 2 elements, got %d", n)
	}
	st, err := r.int()
	if err != nil {
		return e, wrapField(where, "status", err)
	}
	if st < 400 || st > maxStatus {
		return e, fieldErr(where, "status", ErrBadValue, "%d not in 400..599", st)
	}
	msg, err := r.str()
	if err != nil {
		return e, wrapField(where, "message", err)
	}
	if r.off != len(b) {
		return e, ErrTrailingBytes
	}
	e.Status, e.Message = int(st), string(msg)
	return e, nil
}

// ResponseWindow is the response body a worker may send for one request before the
// gateway grants more (PROTOCOL.md 2.7): the bytes of RESP_BODY payload of one
// exchange never exceed ResponseWindow plus the sum of the WINDOW grants received for
// it. MaxWindowGrant bounds one grant.
const (
	ResponseWindow = 2 << 20
	MaxWindowGrant = 1 << 30
)

// WindowPayload is the WINDOW frame payload (PROTOCOL.md 3.4): the gateway grants the
// worker Grant more bytes of one request's response body.
type WindowPayload struct {
	Grant int64 // 1 ..= MaxWindowGrant
}

// Append appends w's MessagePack encoding (a 1-element array) to b.
func (w WindowPayload) Append(b []byte) ([]byte, error) {
	if w.Grant < 1 || w.Grant > MaxWindowGrant {
		return b, fieldErr("window", "grant", ErrBadValue, "%d not in 1..%d", w.Grant, MaxWindowGrant)
	}
	return appendInt(append(b, 0x91), w.Grant), nil
}

// DecodeWindowPayload decodes a WINDOW frame payload: exactly 1 element, an int in
// 1 ..= MaxWindowGrant.
func DecodeWindowPayload(b []byte) (WindowPayload, error) {
	const where = "window"
	r := mpReader{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return WindowPayload{}, wrapField(where, "array", err)
	}
	if n != 1 {
		return WindowPayload{}, fieldErr(where, "array", ErrBadValue, "want 1 element, got %d", n)
	}
	g, err := r.int()
	if err != nil {
		return WindowPayload{}, wrapField(where, "grant", err)
	}
	if g < 1 || g > MaxWindowGrant {
		return WindowPayload{}, fieldErr(where, "grant", ErrBadValue, "%d not in 1..%d", g, MaxWindowGrant)
	}
	if r.off != len(b) {
		return WindowPayload{}, ErrTrailingBytes
	}
	return WindowPayload{Grant: g}, nil
}

// decodeAuth decodes REQ_HEAD's auth element: [subject str, claims bin, roles
// array of str, scopes array of str]. Errors name the element.
func decodeAuth(r *mpReader) (*Auth, error) {
	const where, field = "req_head", "auth"
	n, err := r.arrayLen()
	if err != nil {
		return nil, wrapField(where, field, err)
	}
	if n != authElements {
		return nil, fieldErr(where, field, ErrBadValue, "want 4 elements, got %d", n)
	}
	a := new(Auth)
	v, err := r.str()
	if err != nil {
		return nil, wrapField(where, field+".subject", err)
	}
	a.Subject = string(v)
	if v, err = r.bin(); err != nil {
		return nil, wrapField(where, field+".claims", err)
	}
	a.Claims = append([]byte(nil), v...)
	for _, l := range [...]struct {
		name string
		dst  *[]string
	}{{"roles", &a.Roles}, {"scopes", &a.Scopes}} {
		if n, err = r.arrayLen(); err != nil { // bounded by the bytes left
			return nil, wrapField(where, field+"."+l.name, err)
		}
		if n > 0 {
			*l.dst = make([]string, n)
		}
		for i := range *l.dst {
			if v, err = r.str(); err != nil {
				return nil, wrapField(where, field+"."+l.name, err)
			}
			(*l.dst)[i] = string(v)
		}
	}
	return a, nil
}

// NameIs reports whether name equals lower, a lower-case ASCII string, without
// regard to case: request field names reach the gateway's middleware as the
// client spelled them over HTTP/1.1 and in Go's canonical form over HTTP/2. It
// allocates nothing.
func NameIs(name []byte, lower string) bool {
	if len(name) != len(lower) {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// TypeName names a decoded MessagePack value's type as PROTOCOL.md does (str,
// int, bin, array, map, ...), for errors about a manifest's option values.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case bool:
		return "bool"
	case string:
		return "str"
	case int, int64, uint64:
		return "int"
	case float32, float64:
		return "float"
	case []any, []string:
		return "array"
	case map[string]any:
		return "map"
	case []byte:
		return "bin"
	}
	return fmt.Sprintf("%T", v)
}
