package router

import (
	"fmt"
	"strings"
)

// MaxParams is the most parameters (typed, untyped and catch-all together)
// one pattern may declare. It is the capacity of [Params].
const MaxParams = 16

// tokenKind says what one piece of a parsed pattern matches.
type tokenKind uint8

const (
	tokStatic   tokenKind = iota // literal bytes
	tokParam                     // one non-empty path segment accepted by typ
	tokCatchAll                  // the rest of the path, possibly empty
)

// token is one piece of a parsed pattern. Static text may span several
// segments ("/repos/"); a parameter is always a whole segment.
type token struct {
	kind tokenKind
	text string     // tokStatic: the literal bytes
	name string     // tokParam, tokCatchAll: the parameter name
	typ  *paramType // tokParam: the segment matcher
}

// pattern is a parsed, validated route pattern. It is immutable once built
// and shared by every snapshot that holds the route.
type pattern struct {
	raw    string
	tokens []token
	names  []string // parameter names in path order; names[i] labels Params.p[i]
}

// paramType is one entry of the segment-matcher registry.
type paramType struct {
	name string
	// match reports whether a non-empty raw segment (no '/') is accepted.
	// nil means every non-empty segment is (the str type).
	match func(seg string) bool
	// order ranks sibling parameter nodes: lower is tried first. str is last.
	order int
	// disjoint lists the other typed matchers that accept no common segment
	// with this one. Two typed parameters at the same tree position may
	// coexist only if one lists the other here.
	disjoint []string
}

func (t *paramType) disjointFrom(u *paramType) bool {
	for _, n := range t.disjoint {
		if n == u.name {
			return true
		}
	}
	for _, n := range u.disjoint {
		if n == t.name {
			return true
		}
	}
	return false
}

// typeStr is the default type of {name}: any non-empty segment.
var typeStr = &paramType{name: "str", order: 1 << 30}

// builtinTypes is the registry of segment matchers. To add one: give it a
// match function over the raw (still percent-encoded) segment, an order, and
// the names of the existing typed matchers it can never agree with; then
// teach the Python SDK the same conversion.
var builtinTypes = map[string]*paramType{
	"str":  typeStr,
	"int":  {name: "int", match: matchInt, order: 10, disjoint: []string{"uuid"}},
	"uuid": {name: "uuid", match: matchUUID, order: 20, disjoint: []string{"int"}},
}

// matchInt accepts an optional '-' then 1..19 decimal digits whose value fits
// in an int64 (Python's int() accepts the same strings).
func matchInt(s string) bool {
	neg := false
	if s != "" && s[0] == '-' {
		neg = true
		s = s[1:]
	}
	if s == "" || len(s) > 19 {
		return false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		v = v*10 + uint64(c-'0') // 19 digits fit in uint64
	}
	if neg {
		return v <= 1<<63
	}
	return v <= 1<<63-1
}

// matchUUID accepts the canonical 8-4-4-4-12 hex form, either case.
func matchUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isPathByte reports whether c may appear literally in a pattern: an RFC 3986
// pchar other than '%' (checked separately), or '/'.
func isPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("/-._~!$&'()*+,;=:@", c) >= 0
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// parsePattern validates s and splits it into tokens. types is the matcher
// registry (builtinTypes outside tests).
func parsePattern(s string, types map[string]*paramType) (*pattern, error) {
	bad := func(off int, format string, args ...any) error {
		return &PatternError{Pattern: s, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	if s == "" || s[0] != '/' {
		return nil, bad(0, "must start with '/'")
	}
	p := &pattern{raw: s}
	start := 0 // start of the pending static run
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '{':
			if s[i-1] != '/' {
				return nil, bad(i, "a parameter must be a whole path segment")
			}
			end := strings.IndexAny(s[i+1:], "{}/")
			if end < 0 || s[i+1+end] != '}' {
				return nil, bad(i, "unclosed '{'")
			}
			end += i + 1 // index of '}'
			if end+1 < len(s) && s[end+1] != '/' {
				return nil, bad(i, "a parameter must be a whole path segment")
			}
			if start < i {
				p.tokens = append(p.tokens, token{kind: tokStatic, text: canonicalText(s[start:i])})
			}
			tok, err := parseParam(s[i+1:end], types)
			if err != nil {
				return nil, bad(i, "%s", err.Error())
			}
			for _, n := range p.names {
				if n == tok.name {
					return nil, bad(i, "duplicate parameter name %q", n)
				}
			}
			if tok.kind == tokCatchAll && end+1 != len(s) {
				return nil, bad(i, "catch-all {%s...} must be the last segment", tok.name)
			}
			if len(p.names) == MaxParams {
				return nil, bad(i, "more than %d parameters", MaxParams)
			}
			p.names = append(p.names, tok.name)
			p.tokens = append(p.tokens, tok)
			i = end + 1
			start = i
		case c == '}':
			return nil, bad(i, "unexpected '}'")
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return nil, bad(i, "'%%' must be followed by two hex digits")
			}
			i += 3
		case isPathByte(c):
			i++
		default:
			return nil, bad(i, "byte %q is not allowed in a path; percent-encode it", c)
		}
	}
	if start < len(s) {
		p.tokens = append(p.tokens, token{kind: tokStatic, text: canonicalText(s[start:])})
	}
	return p, nil
}

// parseParam parses the text between '{' and '}'.
func parseParam(body string, types map[string]*paramType) (token, error) {
	if name, ok := strings.CutSuffix(body, "..."); ok {
		if !isIdent(name) {
			return token{}, paramNameError(name)
		}
		return token{kind: tokCatchAll, name: name}, nil
	}
	name, typName, typed := strings.Cut(body, ":")
	if !isIdent(name) {
		return token{}, paramNameError(name)
	}
	if !typed {
		return token{kind: tokParam, name: name, typ: typeStr}, nil
	}
	if typName == "path" { // Starlette's spelling of a catch-all
		return token{kind: tokCatchAll, name: name}, nil
	}
	t := types[typName]
	if t == nil {
		return token{}, fmt.Errorf("unknown parameter type %q in {%s}", typName, body)
	}
	return token{kind: tokParam, name: name, typ: t}, nil
}

func paramNameError(name string) error {
	if name == "" {
		return fmt.Errorf("empty parameter name")
	}
	return fmt.Errorf("invalid parameter name %q (want [A-Za-z_][A-Za-z0-9_]*)", name)
}
