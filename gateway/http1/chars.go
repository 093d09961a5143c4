package http1

const (
	cTchar    uint8 = 1 << iota // token character (RFC 9110 §5.6.2)
	cFieldVal                   // field-vchar, SP or HTAB (RFC 9110 §5.5)
	cTarget                     // allowed in a request-target: VCHAR except '#'
	cHost                       // allowed in uri-host [":" port]
	cScheme                     // scheme characters after the first ALPHA
	cHex                        // HEXDIG
)

var charClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alpha := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
		digit := b >= '0' && b <= '9'
		if alpha || digit || stringHas("!#$%&'*+-.^_`|~", b) {
			t[c] |= cTchar
		}
		if b == '\t' || b >= 0x20 && b != 0x7f {
			t[c] |= cFieldVal
		}
		if b > 0x20 && b < 0x7f && b != '#' {
			t[c] |= cTarget
		}
		// unreserved / pct-encoded / sub-delims / ":" / IP-literal brackets
		if alpha || digit || stringHas("-._~%!$&'()*+,;=:[]", b) {
			t[c] |= cHost
		}
		if alpha || digit || b == '+' || b == '-' || b == '.' {
			t[c] |= cScheme
		}
		if digit || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F' {
			t[c] |= cHex
		}
	}
	return t
}()

func stringHas(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

func isTchar(b byte) bool { return charClass[b]&cTchar != 0 }

func isToken(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if charClass[c]&cTchar == 0 {
			return false
		}
	}
	return true
}

// equalFold reports whether b equals the lower-case ASCII string s,
// ignoring ASCII case in b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
