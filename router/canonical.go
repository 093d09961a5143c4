package router

import "strings"

// AppendCanonicalPath appends the canonical form of a request path to dst, the form
// that static pattern text is held in and that Lookup expects: the syntax-based
// normalisation of RFC 3986 section 6.2.2, so that equivalent spellings of one path
// match the same routes. The hex digits of every percent-encoding are upper-cased
// ("%c3%a9" becomes "%C3%A9") and a percent-encoded unreserved character (a letter,
// a digit, '-', '.', '_' or '~') is decoded ("%7E" becomes "~"). Other escapes,
// "%2F" among them, stay encoded, so they never change how the path splits into
// segments. A '%' not followed by two hex digits is copied as it is.
//
// When path is canonical already it returns dst unchanged and false, without
// copying: the caller then looks up path itself. A path without '%' costs one
// byte search.
func AppendCanonicalPath(dst []byte, path string) ([]byte, bool) {
	i := strings.IndexByte(path, '%')
	if i < 0 {
		return dst, false
	}
	start := len(dst)
	changed := false
	dst = append(dst, path[:i]...)
	for ; i < len(path); i++ {
		c := path[i]
		if c != '%' || i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2]) {
			dst = append(dst, c)
			continue
		}
		hi, lo := upperHex(path[i+1]), upperHex(path[i+2])
		if b := unhex(hi)<<4 | unhex(lo); isUnreserved(b) {
			dst = append(dst, b)
			changed = true
		} else {
			dst = append(dst, '%', hi, lo)
			changed = changed || hi != path[i+1] || lo != path[i+2]
		}
		i += 2
	}
	if !changed {
		return dst[:start], false
	}
	return dst, true
}

// canonicalText is AppendCanonicalPath for pattern text, as a string.
func canonicalText(s string) string {
	if b, ok := AppendCanonicalPath(nil, s); ok {
		return string(b)
	}
	return s
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// unhex is the value of an upper-case hex digit.
func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
