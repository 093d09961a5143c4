package http1

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Framing says how the body of a response must be written after its head.
type Framing uint8

const (
	// FramingNone: no body follows (1xx, 204, 304, any response to HEAD).
	FramingNone Framing = iota
	// FramingLength: exactly ResponseHead.ContentLength bytes follow.
	FramingLength
	// FramingChunked: the body is written with AppendChunk and ends with
	// AppendLastChunk.
	FramingChunked
	// FramingClose: the body runs until the connection closes (a body of
	// unknown length for an HTTP/1.0 client).
	FramingClose
)

// ResponseHead is a response status line and header section to serialize.
type ResponseHead struct {
	Status int    // 100..999
	Reason string // reason phrase; "" means StatusText(Status)
	// Header holds end-to-end fields. The writer owns framing and
	// connection management: Content-Length, Transfer-Encoding and (but for
	// 1xx responses such as 101) Connection are rejected here.
	Header []Header
	// ContentLength is the body length, or -1 when unknown: the body is
	// then chunked for HTTP/1.1 clients and close-delimited for HTTP/1.0.
	ContentLength int64
	// Close asks for "Connection: close". Append sets it to true whenever
	// the connection must close after this response.
	Close bool
	// Date is the Date field value (see DateCache); nil writes no Date.
	Date []byte
}

// Append appends the status line and header section of the response to
// req (nil means an HTTP/1.1, non-HEAD, keep-alive request) and reports how
// the body must be framed. It writes Content-Length (also for HEAD, with no
// body), Transfer-Encoding: chunked, and Connection: close (when h.Close is
// set, the request did not keep the connection alive, or the body is
// close-delimited) or Connection: keep-alive (to an HTTP/1.0 keep-alive
// client). Fields are validated so a worker cannot split the response.
// On error dst is returned unchanged.
func (h *ResponseHead) Append(dst []byte, req *Request) ([]byte, Framing, error) {
	if h.Status < 100 || h.Status > 999 {
		return dst, FramingNone, ErrInvalidStatus
	}
	informational := h.Status < 200
	for i := range h.Header {
		f := &h.Header[i]
		if !validField(f) {
			return dst, FramingNone, ErrInvalidField
		}
		switch len(f.Name) {
		case 10:
			if !informational && equalFold(f.Name, "connection") {
				return dst, FramingNone, ErrReservedField
			}
		case 14:
			if equalFold(f.Name, "content-length") {
				return dst, FramingNone, ErrReservedField
			}
		case 17:
			if equalFold(f.Name, "transfer-encoding") {
				return dst, FramingNone, ErrReservedField
			}
		}
	}
	for _, c := range []byte(h.Reason) {
		if charClass[c]&cFieldVal == 0 {
			return dst, FramingNone, ErrInvalidField
		}
	}
	minor, head, keep := 1, false, true
	if req != nil {
		minor, head, keep = req.Minor, req.IsHead(), req.KeepAlive
	}

	framing := FramingNone
	switch {
	case informational, h.Status == 204, h.Status == 304:
	case head:
	case h.ContentLength >= 0:
		framing = FramingLength
	case minor >= 1:
		framing = FramingChunked
	default:
		framing = FramingClose
	}
	if !informational && (!keep || framing == FramingClose) {
		h.Close = true
	}

	dst = appendStatusLine(dst, h.Status, h.Reason)
	if h.Date != nil {
		dst = append(dst, "Date: "...)
		dst = append(dst, h.Date...)
		dst = append(dst, "\r\n"...)
	}
	for i := range h.Header {
		dst = append(dst, h.Header[i].Name...)
		dst = append(dst, ": "...)
		dst = append(dst, h.Header[i].Value...)
		dst = append(dst, "\r\n"...)
	}
	if !informational && h.Status != 204 && h.Status != 304 && h.ContentLength >= 0 {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, h.ContentLength, 10)
		dst = append(dst, "\r\n"...)
	}
	if framing == FramingChunked {
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	if !informational {
		if h.Close {
			dst = append(dst, "Connection: close\r\n"...)
		} else if minor == 0 {
			dst = append(dst, "Connection: keep-alive\r\n"...)
		}
	}
	return append(dst, "\r\n"...), framing, nil
}

func validField(f *Header) bool {
	if !isToken(f.Name) {
		return false
	}
	for _, c := range f.Value {
		if charClass[c]&cFieldVal == 0 {
			return false
		}
	}
	return true
}

func appendStatusLine(dst []byte, status int, reason string) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	if reason == "" {
		reason = StatusText(status)
	}
	dst = append(dst, reason...)
	return append(dst, "\r\n"...)
}

// AppendContinue appends the interim "HTTP/1.1 100 Continue" response.
func AppendContinue(dst []byte) []byte {
	return append(dst, "HTTP/1.1 100 Continue\r\n\r\n"...)
}

// AppendChunk appends data as one chunk. Empty data appends nothing (an
// empty chunk would end the body).
func AppendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = AppendChunkHeader(dst, len(data))
	dst = append(dst, data...)
	return append(dst, "\r\n"...)
}

// AppendChunkHeader appends the chunk-size line for a chunk of n > 0 bytes,
// for drivers that write the data from its own buffer (writev); the data
// must be followed by CRLF (AppendChunkEnd).
func AppendChunkHeader(dst []byte, n int) []byte {
	dst = strconv.AppendUint(dst, uint64(n), 16)
	return append(dst, "\r\n"...)
}

// AppendChunkEnd appends the CRLF that ends a chunk's data.
func AppendChunkEnd(dst []byte) []byte { return append(dst, "\r\n"...) }

// AppendLastChunk appends the last chunk, the trailer fields and the final
// CRLF. On an invalid trailer field dst is returned unchanged.
func AppendLastChunk(dst []byte, trailers []Header) ([]byte, error) {
	for i := range trailers {
		if !validField(&trailers[i]) {
			return dst, ErrInvalidField
		}
	}
	dst = append(dst, "0\r\n"...)
	for i := range trailers {
		dst = append(dst, trailers[i].Name...)
		dst = append(dst, ": "...)
		dst = append(dst, trailers[i].Value...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...), nil
}

// AppendError appends a complete response for a parse error: its status,
// a short text/plain body naming the status and reason, Content-Length,
// and Connection: close when e.Close is set. date may be nil.
func AppendError(dst []byte, e *Error, date []byte) []byte {
	text := StatusText(e.Status)
	dst = appendStatusLine(dst, e.Status, text)
	if date != nil {
		dst = append(dst, "Date: "...)
		dst = append(dst, date...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(text)+2+len(e.Reason)+1), 10)
	dst = append(dst, "\r\n"...)
	if e.Close {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	dst = append(dst, text...)
	dst = append(dst, ": "...)
	dst = append(dst, e.Reason...)
	return append(dst, '\n')
}

// StatusText returns the reason phrase for the common status codes, and
// "Status" for others (the phrase is informational, RFC 9112 §4).
func StatusText(code int) string {
	switch code {
	case 100:
		return "Continue"
	case 101:
		return "Switching Protocols"
	case 103:
		return "Early Hints"
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 202:
		return "Accepted"
	case 204:
		return "No Content"
	case 206:
		return "Partial Content"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 303:
		return "See Other"
	case 304:
		return "Not Modified"
	case 307:
		return "Temporary Redirect"
	case 308:
		return "Permanent Redirect"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 409:
		return "Conflict"
	case 410:
		return "Gone"
	case 411:
		return "Length Required"
	case 412:
		return "Precondition Failed"
	case 413:
		return "Content Too Large"
	case 414:
		return "URI Too Long"
	case 415:
		return "Unsupported Media Type"
	case 417:
		return "Expectation Failed"
	case 421:
		return "Misdirected Request"
	case 422:
		return "Unprocessable Content"
	case 426:
		return "Upgrade Required"
	case 425:
		return "Too Early"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Status"
}

// DateCache formats the Date field value (IMF-fixdate) at most once per
// second. It is safe for concurrent use; its zero value is ready. A value it
// returns is never modified afterwards, so callers may keep it.
type DateCache struct {
	v atomic.Pointer[dateEntry]
}

type dateEntry struct {
	sec int64
	val []byte
}

// Value returns the Date field value for now, e.g.
// "Sun, 06 Nov 1994 08:49:37 GMT". Read-only.
func (c *DateCache) Value(now time.Time) []byte {
	sec := now.Unix()
	if e := c.v.Load(); e != nil && e.sec == sec {
		return e.val
	}
	e := &dateEntry{sec: sec, val: now.UTC().AppendFormat(make([]byte, 0, 29), "Mon, 02 Jan 2006 15:04:05 GMT")}
	c.v.Store(e)
	return e.val
}
