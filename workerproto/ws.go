package workerproto

import (
	"unicode/utf8"
)

// RequestWindow is the request body the gateway may send for one exchange before the
// worker grants more with REQ_WINDOW (PROTOCOL.md 2.8).
const RequestWindow = 1 << 20

// WebSocket constants (PROTOCOL.md 2.9 and 3.9).
const (
	// WSFrameCost is what a WS_TEXT or WS_BINARY frame costs beyond its payload
	// bytes, so that a flood of empty frames spends credit too.
	WSFrameCost = 64
	// WSMinWindow is the smallest initial window the gateway sends in WS_OPEN.
	WSMinWindow = 64 << 10
	// MaxCloseReason is the longest WS_CLOSE reason, in bytes (RFC 6455 5.5: a
	// control frame's payload is at most 125 bytes, two of them the code).
	MaxCloseReason = 123
	// MaxFilePath bounds RESP_FILE's path.
	MaxFilePath = 4096
)

// WSCost is what a WS_TEXT or WS_BINARY frame with an n-byte payload costs against
// its sender's window (PROTOCOL.md 2.9).
func WSCost(n int) int64 { return int64(n) + WSFrameCost }

// RespFile is the RESP_FILE payload (PROTOCOL.md 3.6): answer with a file the gateway
// reads from disk. Headers and Path alias the decoded payload.
type RespFile struct {
	Status  int
	Headers []Header
	Path    string
}

// Append appends f's MessagePack encoding (a 3-element array) to b.
func (f *RespFile) Append(b []byte) ([]byte, error) {
	start := len(b)
	if err := checkFilePath(f.Path); err != nil {
		return b, err
	}
	b = append(b, 0x93)
	b = appendInt(b, int64(f.Status))
	b, err := appendHeaders(b, "resp_file", f.Headers)
	if err != nil {
		return b[:start], err
	}
	return appendStr(b, f.Path), nil
}

func checkFilePath(p string) error {
	if len(p) == 0 || len(p) > MaxFilePath || p[0] != '/' {
		return fieldErr("resp_file", "path", ErrBadValue, "want an absolute path of 1..%d bytes", MaxFilePath)
	}
	for i := 0; i < len(p); i++ {
		if p[i] == 0 {
			return fieldErr("resp_file", "path", ErrBadValue, "NUL byte")
		}
	}
	if !utf8.ValidString(p) {
		return fieldErr("resp_file", "path", ErrBadValue, "not valid UTF-8")
	}
	return nil
}

// DecodeRespFile decodes a RESP_FILE payload. The checks on status and headers are
// those of ResponseHead.Decode; the path is absolute, 1 ..= MaxFilePath bytes, without
// NUL. The result aliases b.
func DecodeRespFile(b []byte) (RespFile, error) {
	const where = "resp_file"
	var f RespFile
	if len(b) > MaxHead {
		return f, fieldErr(where, "payload", ErrLimit, "%d bytes > %d", len(b), MaxHead)
	}
	r := mpReader{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return f, wrapField(where, "array", err)
	}
	if n != 3 {
		return f, fieldErr(where, "array", ErrBadValue, "want 3 elements, got %d", n)
	}
	st, err := r.int()
	if err != nil {
		return f, wrapField(where, "status", err)
	}
	if st < minResponseStatus || st > maxStatus {
		return f, fieldErr(where, "status", ErrBadValue, "%d not in 200..599", st)
	}
	if f.Headers, err = decodeHeaders(&r, where, nil); err != nil {
		return f, err
	}
	p, err := r.str()
	if err != nil {
		return f, wrapField(where, "path", err)
	}
	f.Path = string(p)
	if err := checkFilePath(f.Path); err != nil {
		return f, err
	}
	if r.off != len(b) {
		return f, ErrTrailingBytes
	}
	f.Status = int(st)
	return f, nil
}

// WSOpen is the WS_OPEN payload (PROTOCOL.md 3.7).
type WSOpen struct {
	Head    RequestHead
	Resumed bool
	Window  int64 // 1 ..= MaxWindowGrant
}

// Append appends o's MessagePack encoding to b.
func (o *WSOpen) Append(b []byte) ([]byte, error) {
	start := len(b)
	if o.Window < 1 || o.Window > MaxWindowGrant {
		return b, fieldErr("ws_open", "window", ErrBadValue, "%d not in 1..%d", o.Window, MaxWindowGrant)
	}
	b = append(b, 0x93)
	b, err := o.Head.Append(b)
	if err != nil {
		return b[:start], err
	}
	b = appendBool(b, o.Resumed)
	return appendInt(b, o.Window), nil
}

// DecodeWSOpen decodes a WS_OPEN payload: exactly [REQ_HEAD array, bool, int in 1
// ..= MaxWindowGrant], the head checked as DecodeRequestHead checks it.
func DecodeWSOpen(b []byte) (WSOpen, error) {
	const where = "ws_open"
	var o WSOpen
	r := mpReader{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return o, wrapField(where, "array", err)
	}
	if n != 3 {
		return o, fieldErr(where, "array", ErrBadValue, "want 3 elements, got %d", n)
	}
	start := r.off
	if err := r.skip(1); err != nil {
		return o, wrapField(where, "head", err)
	}
	if o.Head, err = DecodeRequestHead(b[start:r.off]); err != nil {
		return o, err
	}
	if r.off >= len(b) {
		return o, wrapField(where, "resumed", ErrTruncated)
	}
	if c := b[r.off]; c != 0xc2 && c != 0xc3 {
		return o, wrapField(where, "resumed", kindErr{want: kindBool, got: kindOf(c)})
	}
	o.Resumed = b[r.off] == 0xc3
	r.off++
	if o.Window, err = r.int(); err != nil {
		return o, wrapField(where, "window", err)
	}
	if o.Window < 1 || o.Window > MaxWindowGrant {
		return o, fieldErr(where, "window", ErrBadValue, "%d not in 1..%d", o.Window, MaxWindowGrant)
	}
	if r.off != len(b) {
		return o, ErrTrailingBytes
	}
	return o, nil
}

// WSAccept is the WS_ACCEPT payload (PROTOCOL.md 3.8). Decoded fields alias the
// payload.
type WSAccept struct {
	Subprotocol string
	Headers     []Header
}

// Append appends a's MessagePack encoding to b.
func (a *WSAccept) Append(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, 0x92)
	b = appendStr(b, a.Subprotocol)
	b, err := appendHeaders(b, "ws_accept", a.Headers)
	if err != nil {
		return b[:start], err
	}
	return b, nil
}

// DecodeWSAccept decodes a WS_ACCEPT payload: [str, headers], the headers checked as
// ResponseHead.Decode checks them, the subprotocol an HTTP token or empty.
func DecodeWSAccept(b []byte) (WSAccept, error) {
	const where = "ws_accept"
	var a WSAccept
	if len(b) > MaxHead {
		return a, fieldErr(where, "payload", ErrLimit, "%d bytes > %d", len(b), MaxHead)
	}
	r := mpReader{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return a, wrapField(where, "array", err)
	}
	if n != 2 {
		return a, fieldErr(where, "array", ErrBadValue, "want 2 elements, got %d", n)
	}
	sp, err := r.str()
	if err != nil {
		return a, wrapField(where, "subprotocol", err)
	}
	for _, c := range sp {
		if tokenLower[c] == 0 {
			return a, fieldErr(where, "subprotocol", ErrBadValue, "not an HTTP token")
		}
	}
	a.Subprotocol = string(sp)
	if a.Headers, err = decodeHeaders(&r, where, nil); err != nil {
		return a, err
	}
	if r.off != len(b) {
		return a, ErrTrailingBytes
	}
	return a, nil
}

// WSClose is the WS_CLOSE payload (PROTOCOL.md 3.9).
type WSClose struct {
	Code   int
	Reason string
}

// Append appends c's MessagePack encoding to b.
func (c *WSClose) Append(b []byte) ([]byte, error) {
	if err := c.check(); err != nil {
		return b, err
	}
	b = append(b, 0x92)
	b = appendInt(b, int64(c.Code))
	return appendStr(b, c.Reason), nil
}

func (c *WSClose) check() error {
	if c.Code < 1000 || c.Code > 4999 {
		return fieldErr("ws_close", "code", ErrBadValue, "%d not in 1000..4999", c.Code)
	}
	if len(c.Reason) > MaxCloseReason || !utf8.ValidString(c.Reason) {
		return fieldErr("ws_close", "reason", ErrBadValue, "want at most %d bytes of UTF-8", MaxCloseReason)
	}
	return nil
}

// DecodeWSClose decodes a WS_CLOSE payload: [int 1000 ..= 4999, str of at most
// MaxCloseReason bytes of UTF-8].
func DecodeWSClose(b []byte) (WSClose, error) {
	const where = "ws_close"
	var c WSClose
	r := mpReader{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return c, wrapField(where, "array", err)
	}
	if n != 2 {
		return c, fieldErr(where, "array", ErrBadValue, "want 2 elements, got %d", n)
	}
	code, err := r.int()
	if err != nil {
		return c, wrapField(where, "code", err)
	}
	reason, err := r.str()
	if err != nil {
		return c, wrapField(where, "reason", err)
	}
	if code < 1000 || code > 4999 {
		return c, fieldErr(where, "code", ErrBadValue, "%d not in 1000..4999", code)
	}
	c.Code, c.Reason = int(code), string(reason)
	if err := c.check(); err != nil {
		return c, err
	}
	if r.off != len(b) {
		return c, ErrTrailingBytes
	}
	return c, nil
}
