package http1

import (
	"errors"
	"fmt"
	"strings"
)

// msg is a self-contained copy of one parsed message.
type msg struct {
	Method, Target, Path, Query, Host string
	HasQuery                          bool
	Form                              TargetForm
	Minor                             int
	Headers, Trailers                 []string // "name: value"
	Body                              string
	ContentLength                     int64
	Chunked, KeepAlive, Expect, Upg   bool
}

// result is the whole transcript of a connection.
type result struct {
	Msgs     []msg
	Errs     []string // rejections, "status reason close=..."
	Closed   bool     // ErrClosed or a closing *Error ended the parse
	Consumed int
	Pending  int   // bytes left unconsumed at the end
	Final    State // parser state at the end
}

func (r result) String() string {
	return fmt.Sprintf("%+v", r.Msgs) + fmt.Sprint(r.Errs, r.Closed, r.Consumed, r.Final)
}

func hdrs(h []Header) []string {
	out := make([]string, len(h))
	for i, f := range h {
		out[i] = string(f.Name) + ": " + string(f.Value)
	}
	return out
}

// drive feeds data to a fresh parser step bytes at a time (step <= 0: all at
// once), like a connection driver: it keeps the unconsumed bytes in its own
// buffer, which it overwrites between calls to catch any aliasing. Invariant
// violations are reported through fail.
func drive(data []byte, lim Limits, step int, fail func(string, ...any)) result {
	p := NewParser(lim)
	var res result
	var req Request
	var cur *msg
	var buf []byte
	fed := 0
	if step <= 0 {
		step = len(data) + 1
	}
	feed := func() bool {
		if fed >= len(data) {
			return false
		}
		k := min(step, len(data)-fed)
		buf = append(buf, data[fed:fed+k]...)
		fed += k
		return true
	}
	feed()
	for iter := 0; ; iter++ {
		if iter > 10*len(data)+100 {
			fail("parser does not progress")
			return res
		}
		b := make([]byte, len(buf))
		copy(b, buf)
		ev, n, err := p.Next(b, &req)
		if n < 0 || n > len(b) {
			fail("consumed %d of %d", n, len(b))
			return res
		}
		if err == nil {
			switch ev.Kind {
			case EventHead:
				res.Msgs = append(res.Msgs, msg{
					Method: string(req.Method), Target: string(req.Target), Path: string(req.Path),
					Query: string(req.Query), HasQuery: req.Query != nil, Form: req.Form,
					Host: string(req.Host), Minor: req.Minor, Headers: hdrs(req.Headers),
					ContentLength: req.ContentLength, Chunked: req.Chunked, KeepAlive: req.KeepAlive,
					Expect: req.ExpectContinue, Upg: req.Upgrade,
				})
				cur = &res.Msgs[len(res.Msgs)-1]
				if p.State() != StateBody {
					fail("state after head %v", p.State())
				}
			case EventBody:
				if cur == nil || len(ev.Data) == 0 {
					fail("body event without head or empty")
					return res
				}
				cur.Body += string(ev.Data)
			case EventEnd:
				if cur == nil {
					fail("end without head")
					return res
				}
				cur.Trailers = hdrs(req.Trailers)
				if !cur.Chunked && int64(len(cur.Body)) != cur.ContentLength {
					fail("body %d bytes, Content-Length %d", len(cur.Body), cur.ContentLength)
				}
				if cur.Chunked && int64(len(cur.Body)) > lim.WithDefaults().MaxBodyBytes {
					fail("chunked body over limit")
				}
				cur = nil
			default:
				fail("no event kind with nil error")
				return res
			}
			for i := range b {
				b[i] = 0xFF // scribble: nothing may alias the caller's buffer
			}
			buf = buf[n:]
			res.Consumed += n
			continue
		}
		if errors.Is(err, ErrNeedMore) {
			if n != 0 {
				fail("need more with n=%d", n)
			}
			if p.State() == StateClosed {
				fail("need more in closed state")
			}
			if !feed() {
				res.Pending = len(buf)
				res.Final = p.State()
				return res
			}
			continue
		}
		if errors.Is(err, ErrClosed) {
			res.Closed = true
			res.Pending = len(buf)
			return res
		}
		var pe *Error
		if !errors.As(err, &pe) {
			fail("unexpected error %v", err)
			return res
		}
		res.Errs = append(res.Errs, fmt.Sprintf("%d %s close=%v", pe.Status, pe.Reason, pe.Close))
		if pe.Close {
			if p.State() != StateClosed {
				fail("closing error but state %v", p.State())
			}
			res.Closed = true
			res.Pending = len(buf)
			return res
		}
		if n == 0 {
			fail("non-closing error consumed nothing")
			return res
		}
		buf = buf[n:]
		res.Consumed += n
	}
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
