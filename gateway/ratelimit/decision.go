package ratelimit

import (
	"strconv"
	"time"

	"github.com/covetpy/covetpy/workerproto"
)

// Decision is the outcome of one request against a Limit.
type Decision struct {
	Allowed bool
	Limit   Limit // the limit decided against; zero: none (AppendHeaders adds nothing)
	// Remaining is how many more requests would be admitted right now.
	Remaining int64
	// Reset is how long until the limit is wholly restored (Remaining back to
	// Limit.N) if no request comes.
	Reset time.Duration
	// RetryAfter, when !Allowed, is how long until a request would be admitted.
	RetryAfter time.Duration
	// Unknown: the shared store could not decide (rate_limit_redis down);
	// Remaining and Reset mean nothing and AppendHeaders gives only the policy
	// (and Retry-After when !Allowed).
	Unknown bool
}

// AppendHeaders appends the response fields that describe d to hs, lower-case:
// the RateLimit-Policy and RateLimit fields of draft-ietf-httpapi-ratelimit-headers-10
// (structured-field lists: `"5/minute";q=5;w=60` and `"5/minute";r=4;t=12`,
// the policy named by the limit, t the whole seconds, rounded up, until Reset), and
// Retry-After (whole seconds, rounded up, at least 1) when the request was refused.
// With a zero Limit it appends nothing.
func (d *Decision) AppendHeaders(hs []workerproto.Header) []workerproto.Header {
	if d.Limit.IsZero() {
		return hs
	}
	// One buffer for the three values; the headers slice into it.
	b := make([]byte, 0, 96)
	name := d.Limit.String()
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `";q=`...)
	b = strconv.AppendInt(b, d.Limit.N, 10)
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, ceilSeconds(d.Limit.Per, 1), 10)
	hs = append(hs, workerproto.Header{Name: []byte("ratelimit-policy"), Value: b[:len(b):len(b)]})
	if !d.Unknown {
		start := len(b)
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `";r=`...)
		b = strconv.AppendInt(b, max(d.Remaining, 0), 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, ceilSeconds(d.Reset, 0), 10)
		hs = append(hs, workerproto.Header{Name: []byte("ratelimit"), Value: b[start:len(b):len(b)]})
	}
	if !d.Allowed {
		start := len(b)
		b = strconv.AppendInt(b, ceilSeconds(d.RetryAfter, 1), 10)
		hs = append(hs, workerproto.Header{Name: []byte("retry-after"), Value: b[start:len(b):len(b)]})
	}
	return hs
}

// ceilSeconds is d in whole seconds, rounded up, at least floor.
func ceilSeconds(d time.Duration, floor int64) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, floor)
}
