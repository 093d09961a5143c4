// Package secheaders adds the gateway's security response headers: HSTS
// (Strict-Transport-Security, only on responses sent over TLS),
// X-Content-Type-Options: nosniff, X-Frame-Options and Referrer-Policy.
//
// They are off by default (security_headers). When on, each response gets
// every field of the Set that the response does not already carry: a worker's
// own value for a name always wins. The values come from Config, each with a
// default; "off" drops one. A route's "security_headers" option (PROTOCOL.md
// 1.3) adjusts them per route (ForRoute): false sends none; a map of header
// name -> str overrides them one by one, "" removing one, and may add other
// fields (content-security-policy, permissions-policy, ...). A route's map
// turns the headers on for that route even when the gateway's default is off,
// starting from the configured values.
//
// Values are checked when the Set is built, so a typo fails the gateway's
// start or the worker's manifest, not a browser: every value must be a valid
// field value (RFC 9110 5.5: no control characters, no leading or trailing
// whitespace), and the four known fields must make sense: HSTS has one
// max-age=<seconds> directive, X-Frame-Options is DENY or SAMEORIGIN,
// Referrer-Policy is a list of the policy tokens of the Referrer Policy spec,
// X-Content-Type-Options is nosniff. Framing fields (content-length,
// transfer-encoding, connection, ...) cannot be set.
//
// A Set is immutable and safe for concurrent use. The fields Append adds share
// the Set's byte slices: callers serialize them and never write into them.
// Append allocates nothing beyond growing the caller's slice.
package secheaders

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/covetpy/covetpy/workerproto"
)

// Defaults of Config's fields.
const (
	DefaultHSTS           = "max-age=63072000; includeSubDomains"
	DefaultFrameOptions   = "DENY"
	DefaultReferrerPolicy = "strict-origin-when-cross-origin"
)

// Off, as a value of Config's string fields, sends no such header.
const Off = "off"

// Config is the gateway's security headers (the security_* settings).
type Config struct {
	// Enabled: add the headers to every response (routes may still opt out,
	// or in when this is off). Default false.
	Enabled bool `config:"security_headers" help:"add security headers (HSTS over TLS, X-Content-Type-Options, X-Frame-Options, Referrer-Policy) to responses; routes may override"`
	// HSTS: the Strict-Transport-Security value, sent only over TLS;
	// "" = "max-age=63072000; includeSubDomains", "off" = none.
	HSTS string `config:"security_hsts" help:"Strict-Transport-Security value, sent only over TLS; empty = max-age=63072000; includeSubDomains, off = none"`
	// FrameOptions: the X-Frame-Options value; "" = DENY, "off" = none.
	FrameOptions string `config:"security_frame_options" help:"X-Frame-Options value (DENY or SAMEORIGIN); empty = DENY, off = none"`
	// ReferrerPolicy: the Referrer-Policy value; "" =
	// strict-origin-when-cross-origin, "off" = none.
	ReferrerPolicy string `config:"security_referrer_policy" help:"Referrer-Policy value; empty = strict-origin-when-cross-origin, off = none"`
}

// Set is a compiled list of security header fields. A nil *Set adds nothing.
type Set struct {
	on     bool
	fields []field // in the order they are added to a response
}

type field struct {
	name, value []byte
	tlsOnly     bool
}

const (
	hsts           = "strict-transport-security"
	contentTypeOpt = "x-content-type-options"
	frameOptions   = "x-frame-options"
	referrerPolicy = "referrer-policy"
)

// New compiles the gateway's default set. It validates the values whether or
// not Enabled is set (a route may turn the headers on); errors name the
// setting.
func New(cfg Config) (*Set, error) {
	s := &Set{on: cfg.Enabled}
	for _, c := range []struct{ key, name, val, def string }{
		{"security_hsts", hsts, cfg.HSTS, DefaultHSTS},
		{"", contentTypeOpt, "nosniff", ""},
		{"security_frame_options", frameOptions, cfg.FrameOptions, DefaultFrameOptions},
		{"security_referrer_policy", referrerPolicy, cfg.ReferrerPolicy, DefaultReferrerPolicy},
	} {
		v := strings.TrimSpace(c.val)
		if v == "" {
			v = c.def
		}
		if strings.EqualFold(v, Off) {
			continue
		}
		if err := checkValue(c.name, v); err != nil {
			return nil, fmt.Errorf("%s: %q: %s", c.key, c.val, err)
		}
		s.fields = append(s.fields, field{name: []byte(c.name), value: []byte(v), tlsOnly: c.name == hsts})
	}
	return s, nil
}

// Enabled reports whether Append adds anything at all.
func (s *Set) Enabled() bool { return s != nil && s.on && len(s.fields) > 0 }

// ForRoute compiles a route's "security_headers" option against s: absent
// (nil) keeps s; false gives a set that adds nothing; a map of header name ->
// str overrides s's fields one by one ("" removes one; a new name is added
// after the others, in name order) and turns the set on. Errors name the
// option and the header ("security_headers.x-frame-options: ...").
func (s *Set) ForRoute(opt any) (*Set, error) {
	switch o := opt.(type) {
	case nil:
		return s, nil
	case bool:
		if o {
			return nil, fmt.Errorf("security_headers: true is not a set, want false or a map")
		}
		return &Set{}, nil
	case map[string]any:
		r := &Set{on: true}
		if s != nil {
			r.fields = slices.Clone(s.fields)
		}
		names := make([]string, 0, len(o))
		for k := range o {
			names = append(names, k)
		}
		slices.Sort(names) // deterministic errors and order
		for _, k := range names {
			name := strings.ToLower(k)
			if !isToken(name) {
				return nil, fmt.Errorf("security_headers.%s: not a header name (an HTTP token)", k)
			}
			if forbidden[name] {
				return nil, fmt.Errorf("security_headers.%s: a framing field, not a security header", k)
			}
			v, ok := o[k].(string)
			if !ok {
				return nil, fmt.Errorf("security_headers.%s is %s, want str", k, workerproto.TypeName(o[k]))
			}
			i := slices.IndexFunc(r.fields, func(f field) bool { return string(f.name) == name })
			if v == "" {
				if i >= 0 {
					r.fields = slices.Delete(r.fields, i, i+1)
				}
				continue
			}
			if err := checkValue(name, v); err != nil {
				return nil, fmt.Errorf("security_headers.%s: %q: %s", k, v, err)
			}
			f := field{name: []byte(name), value: []byte(v), tlsOnly: name == hsts}
			if i >= 0 {
				r.fields[i] = f
			} else {
				r.fields = append(r.fields, f)
			}
		}
		return r, nil
	default:
		return nil, fmt.Errorf("security_headers is %s, want false or a map", workerproto.TypeName(opt))
	}
}

// Append appends the set's fields to hs, a response's header fields, skipping
// any name hs already carries, in any case (the worker's own value wins),
// and HSTS unless tls (the response goes out over TLS). It returns the
// extended slice.
func (s *Set) Append(hs []workerproto.Header, tls bool) []workerproto.Header {
	if s == nil || !s.on {
		return hs
	}
	n := len(hs) // the response's own fields
	for i := range s.fields {
		f := &s.fields[i]
		if f.tlsOnly && !tls {
			continue
		}
		if has(hs[:n], f.name) {
			continue
		}
		hs = append(hs, workerproto.Header{Name: f.name, Value: f.value})
	}
	return hs
}

func has(hs []workerproto.Header, name []byte) bool {
	for i := range hs {
		if bytes.EqualFold(hs[i].Name, name) {
			return true
		}
	}
	return false
}

// forbidden are the fields that frame a message or a connection.
var forbidden = map[string]bool{
	"content-length": true, "transfer-encoding": true, "connection": true, "keep-alive": true,
	"upgrade": true, "te": true, "trailer": true, "host": true, "proxy-connection": true,
	"content-encoding": true, "content-range": true, "content-type": true,
}

// checkValue checks v as the value of field name.
func checkValue(name, v string) error {
	if v == "" {
		return fmt.Errorf("empty")
	}
	if v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t' {
		return fmt.Errorf("leading or trailing whitespace")
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("control character %#02x at %d (not a valid field value)", c, i)
		}
	}
	switch name {
	case hsts:
		return checkHSTS(v)
	case frameOptions:
		if !strings.EqualFold(v, "DENY") && !strings.EqualFold(v, "SAMEORIGIN") {
			return fmt.Errorf("want DENY or SAMEORIGIN (ALLOW-FROM is obsolete: use content-security-policy frame-ancestors)")
		}
	case contentTypeOpt:
		if !strings.EqualFold(v, "nosniff") {
			return fmt.Errorf("want nosniff")
		}
	case referrerPolicy:
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains(referrerPolicies, strings.ToLower(p)) {
				return fmt.Errorf("unknown policy %q (want one of %s)", p, strings.Join(referrerPolicies, ", "))
			}
		}
	}
	return nil
}

var referrerPolicies = []string{
	"no-referrer", "no-referrer-when-downgrade", "same-origin", "origin",
	"strict-origin", "origin-when-cross-origin", "strict-origin-when-cross-origin", "unsafe-url",
}

// checkHSTS: RFC 6797 6.1, directives separated by ";", exactly one
// max-age=<digits> (the value may be quoted), no directive twice.
func checkHSTS(v string) error {
	seen := map[string]bool{}
	maxAge := false
	for d := range strings.SplitSeq(v, ";") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		name, val, hasVal := strings.Cut(d, "=")
		name, val = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(val)
		if !isToken(name) {
			return fmt.Errorf("bad directive %q", d)
		}
		if seen[name] {
			return fmt.Errorf("directive %s twice", name)
		}
		seen[name] = true
		if name == "max-age" {
			val = strings.TrimSuffix(strings.TrimPrefix(val, `"`), `"`)
			if !hasVal || val == "" || strings.Trim(val, "0123456789") != "" {
				return fmt.Errorf("max-age wants a number of seconds")
			}
			maxAge = true
		}
	}
	if !maxAge {
		return fmt.Errorf("no max-age directive")
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
