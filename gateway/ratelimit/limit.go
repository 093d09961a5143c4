package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limit is a rate: at most N requests per Per, with a burst of N (see the package
// comment for the algorithm). The zero Limit is no limit.
type Limit struct {
	N   int64
	Per time.Duration
}

// MaxRate is the highest rate a Limit may have, per second: one request per
// microsecond, the resolution of the shared store's clock.
const MaxRate = 1_000_000

// IsZero reports whether l is no limit.
func (l Limit) IsZero() bool { return l.N <= 0 || l.Per <= 0 }

// interval is the GCRA emission interval Per/N in nanoseconds: the time one request
// uses up. At least 1.
func (l Limit) interval() int64 {
	t := int64(l.Per) / l.N
	if t < 1 {
		t = 1
	}
	return t
}

var units = [...]struct {
	long, short string
	d           time.Duration
}{
	{"second", "s", time.Second},
	{"minute", "m", time.Minute},
	{"hour", "h", time.Hour},
	{"day", "d", 24 * time.Hour},
}

// String is the canonical spelling of l, which ParseLimit reads back: "5/minute",
// "100/second", "none" for the zero Limit; a Per that is not one of the units is
// written as a Go duration ("3/10s").
func (l Limit) String() string {
	if l.IsZero() {
		return "none"
	}
	for _, u := range units {
		if l.Per == u.d {
			return strconv.FormatInt(l.N, 10) + "/" + u.long
		}
	}
	return strconv.FormatInt(l.N, 10) + "/" + l.Per.String()
}

// ParseLimit reads a rate limit: "N/unit" with N a positive integer and unit one
// of second, minute, hour, day (or s, m, h, d), e.g. "5/minute", "100/s"; "none"
// is the zero Limit (no limit). At most MaxRate per second. The error quotes s and
// says what is wrong with it, without the setting's name, which the caller puts in
// front: `rate_limit "5/fortnight": unit must be second, minute, hour or day (or
// s, m, h, d)`.
func ParseLimit(s string) (Limit, error) {
	if s == "none" {
		return Limit{}, nil
	}
	n, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("%q: want N/unit, e.g. 5/minute, or none", s)
	}
	var per time.Duration
	for _, u := range units {
		if unit == u.long || unit == u.short {
			per = u.d
			break
		}
	}
	if per == 0 {
		return Limit{}, fmt.Errorf("%q: unit must be second, minute, hour or day (or s, m, h, d)", s)
	}
	if n == "" || strings.TrimLeft(n, "0123456789") != "" {
		return Limit{}, fmt.Errorf("%q: count must be a positive integer", s)
	}
	v, err := strconv.ParseInt(n, 10, 64)
	if err != nil || v > MaxRate*int64(per/time.Second) {
		return Limit{}, fmt.Errorf("%q: at most %d per second", s, MaxRate)
	}
	if v == 0 {
		return Limit{}, fmt.Errorf("%q: count must be at least 1 (\"none\" for no limit)", s)
	}
	return Limit{N: v, Per: per}, nil
}

// KeyKind is what a limit counts requests by.
type KeyKind uint8

const (
	KeyIP      KeyKind = iota // the client address
	KeySubject                // the verified token's subject
	KeyHeader                 // a request header's value
)

// Key is what a limit counts requests by: the client address, the token's subject
// or a request header (Header, lower-case, for KeyHeader). The zero Key is KeyIP.
type Key struct {
	Kind   KeyKind
	Header string
}

// String is the spelling ParseKey reads back: "ip", "subject", "header:x-api-key".
func (k Key) String() string {
	switch k.Kind {
	case KeySubject:
		return "subject"
	case KeyHeader:
		return "header:" + k.Header
	}
	return "ip"
}

// ParseKey reads what a limit counts by: "ip", "subject" or "header:<Name>" with
// Name an HTTP field name (kept lower-case). Errors quote s, as ParseLimit's do.
func ParseKey(s string) (Key, error) {
	switch s {
	case "ip":
		return Key{Kind: KeyIP}, nil
	case "subject":
		return Key{Kind: KeySubject}, nil
	}
	name, ok := strings.CutPrefix(s, "header:")
	if !ok {
		return Key{}, fmt.Errorf("%q: must be ip, subject or header:<Name>", s)
	}
	if name == "" {
		return Key{}, fmt.Errorf("%q: header name is empty", s)
	}
	for i := 0; i < len(name); i++ {
		if !isTchar(name[i]) {
			return Key{}, fmt.Errorf("%q: %q is not allowed in a header name", s, name[i])
		}
	}
	return Key{Kind: KeyHeader, Header: strings.ToLower(name)}, nil
}

// isTchar reports whether c may appear in a field name (RFC 9110 5.1, token).
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
