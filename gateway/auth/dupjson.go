package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"unsafe"
)

// errDuplicate reports a JSON object with the same member name twice. Go's
// encoding/json keeps the last one; another JOSE implementation may keep the
// first, so a token whose header or claims repeat a name is refused (RFC 7515
// 5.2 step 4 allows rejecting them, RFC 7519 7.2 step 9 likewise).
var errDuplicate = errors.New("duplicate member name")

var (
	errSyntax   = errors.New("invalid JSON")
	errDepth    = errors.New("JSON nested too deeply")
	errTrailing = errors.New("data after the JSON value")
)

// maxDepth bounds nesting so a hostile document cannot recurse deeply.
const maxDepth = 64

// checkDuplicates checks that data is one JSON value (RFC 8259, white space
// around it allowed) in which no object has the same member name twice. Names
// are compared as encoding/json decodes them: escapes resolved and invalid
// UTF-8 replaced, so "\u0061lg" repeats "alg". One pass, no allocation for
// names without escapes or non-ASCII bytes.
func checkDuplicates(data []byte) error {
	s := scanner{data: data}
	s.ws()
	if err := s.value(0); err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.data) {
		return errTrailing
	}
	return nil
}

type scanner struct {
	data []byte
	i    int
}

func (s *scanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) error {
	if s.i >= len(s.data) {
		return errSyntax
	}
	switch c := s.data[s.i]; {
	case c == '{':
		if depth >= maxDepth {
			return errDepth
		}
		return s.object(depth + 1)
	case c == '[':
		if depth >= maxDepth {
			return errDepth
		}
		return s.array(depth + 1)
	case c == '"':
		_, _, err := s.str()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return errSyntax
}

func (s *scanner) literal(lit string) error {
	if len(s.data)-s.i < len(lit) || string(s.data[s.i:s.i+len(lit)]) != lit {
		return errSyntax
	}
	s.i += len(lit)
	return nil
}

func (s *scanner) number() error {
	if s.data[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.data) {
		return errSyntax
	}
	if s.data[s.i] == '0' {
		s.i++
	} else if !s.digits() {
		return errSyntax
	}
	if s.i < len(s.data) && s.data[s.i] == '.' {
		s.i++
		if !s.digits() {
			return errSyntax
		}
	}
	if s.i < len(s.data) && (s.data[s.i] == 'e' || s.data[s.i] == 'E') {
		s.i++
		if s.i < len(s.data) && (s.data[s.i] == '+' || s.data[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return errSyntax
		}
	}
	return nil
}

// digits consumes one or more decimal digits.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.data) && '0' <= s.data[s.i] && s.data[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// str consumes a string and returns its raw contents (between the quotes)
// and whether those need decoding (an escape or a non-ASCII byte) before two
// names can be compared.
func (s *scanner) str() (raw []byte, decode bool, err error) {
	s.i++ // the opening quote
	start := s.i
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			raw = s.data[start:s.i]
			s.i++
			return raw, decode, nil
		case c == '\\':
			decode = true
			s.i++
			if s.i >= len(s.data) {
				return nil, false, errSyntax
			}
			switch s.data[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.data)-s.i < 5 {
					return nil, false, errSyntax
				}
				for _, h := range s.data[s.i+1 : s.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return nil, false, errSyntax
					}
				}
				s.i += 5
			default:
				return nil, false, errSyntax
			}
		case c < 0x20:
			return nil, false, errSyntax
		default:
			if c >= 0x80 {
				decode = true
			}
			s.i++
		}
	}
	return nil, false, errSyntax
}

func (s *scanner) array(depth int) error {
	s.i++ // '['
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.data) {
			return errSyntax
		}
		switch s.data[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

func (s *scanner) object(depth int) error {
	s.i++ // '{'
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		return nil
	}
	// The names seen so far. JOSE headers and claims sets are small: a linear
	// search over a stack array beats a map until an object is large.
	var small [16]string
	names := small[:0]
	var many map[string]struct{}
	for {
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return errSyntax
		}
		raw, decode, err := s.str()
		if err != nil {
			return err
		}
		name := unsafeString(raw)
		if decode {
			if name, err = decodeName(s.data[s.i-len(raw)-2 : s.i]); err != nil {
				return err
			}
		}
		if many != nil {
			if _, dup := many[name]; dup {
				return fmt.Errorf("%w %q", errDuplicate, name)
			}
			many[name] = struct{}{}
		} else {
			for _, n := range names {
				if n == name {
					return fmt.Errorf("%w %q", errDuplicate, name)
				}
			}
			if len(names) < cap(small) {
				names = append(names, name)
			} else {
				many = make(map[string]struct{}, 2*len(names))
				for _, n := range names {
					many[n] = struct{}{}
				}
				many[name] = struct{}{}
			}
		}
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return errSyntax
		}
		s.i++
		s.ws()
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.data) {
			return errSyntax
		}
		switch s.data[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// unsafeString views b as a string without copying. The names it makes live
// only while checkDuplicates runs, over data it does not modify.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// decodeName decodes a quoted member name with escapes or non-ASCII bytes as
// encoding/json does.
func decodeName(quoted []byte) (string, error) {
	var name string
	if err := json.Unmarshal(quoted, &name); err != nil {
		return "", errSyntax
	}
	return name, nil
}
