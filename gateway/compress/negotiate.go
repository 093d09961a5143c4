package compress

// negotiate picks the coding of offer that an Accept-Encoding value prefers
// (RFC 9110 12.5.3): each coding's weight is its own element's q-value, else
// that of "*", else 0 (not acceptable); the highest weight above 0 wins, ties
// going to the earlier coding of offer. "identity" and its weight play no part:
// identity is always the fallback (ok false). An element with a malformed
// q-value is ignored; a coding listed twice counts with its higher weight.
// An absent or empty value accepts identity alone.
func negotiate(ae []byte, offer []coding) (coding, bool) {
	var q [numCodings]int // -1: not named
	for i := range q {
		q[i] = -1
	}
	star := -1
	for len(ae) > 0 {
		var elem []byte
		elem, ae = cut(ae, ',')
		name, params := cut(elem, ';')
		name = trim(name)
		if len(name) == 0 {
			continue
		}
		w, ok := weight(params)
		if !ok {
			continue
		}
		if len(name) == 1 && name[0] == '*' {
			star = max(star, w)
			continue
		}
		if k, ok := parseCoding(name); ok {
			q[k] = max(q[k], w)
		}
	}
	best, bestQ := coding(0), 0
	for _, k := range offer {
		w := q[k]
		if w < 0 {
			w = star
		}
		if w > bestQ {
			best, bestQ = k, w
		}
	}
	return best, bestQ > 0
}

// weight reads the q-value among an element's parameters (";q=0.5;..."),
// in thousandths: 1000 without one, ok false when it is malformed.
func weight(params []byte) (int, bool) {
	w := 1000
	for len(params) > 0 {
		var p []byte
		p, params = cut(params, ';')
		p = trim(p)
		if len(p) < 2 || (p[0] != 'q' && p[0] != 'Q') {
			continue // another parameter: none is defined, so it is ignored
		}
		rest := trim(p[1:])
		if len(rest) == 0 || rest[0] != '=' {
			continue
		}
		v, ok := qvalue(trim(rest[1:]))
		if !ok {
			return 0, false
		}
		w = v
	}
	return w, true
}

// qvalue parses RFC 9110 12.4.2's qvalue: "0" [ "." 0*3DIGIT ] or
// "1" [ "." 0*3("0") ], in thousandths.
func qvalue(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 5 || (b[0] != '0' && b[0] != '1') {
		return 0, false
	}
	v := int(b[0]-'0') * 1000
	if len(b) == 1 {
		return v, true
	}
	if b[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, d := range b[2:] {
		if d < '0' || d > '9' {
			return 0, false
		}
		v += int(d-'0') * scale
		scale /= 10
	}
	if v > 1000 {
		return 0, false
	}
	return v, true
}

// cut splits b at the first sep.
func cut(b []byte, sep byte) (before, after []byte) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// trim drops optional whitespace (SP, HTAB) at both ends.
func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
