package workerproto

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// This file holds the package's one MessagePack reader and its appenders, used for
// the data-plane payloads (PROTOCOL.md 3) and the control-plane messages (1.3,
// control_codec.go). They are hand-written because the request path must not
// allocate: the appenders write straight into a caller's buffer, and the reader
// walks a byte slice without copying. They produce canonical MessagePack (smallest
// encodings, str for text, bin for bytes, float64 for floats), byte-identical to
// what vmihailenco/msgpack and Python's msgpack produce for the same values (the
// tests check the first).

// mpKind is a MessagePack value family, for type checks and error messages.
type mpKind uint8

const (
	kindInvalid mpKind = iota // 0xc1 (never used)
	kindNil
	kindBool
	kindInt
	kindFloat
	kindStr
	kindBin
	kindArray
	kindMap
	kindExt
)

var kindNames = [...]string{"invalid", "nil", "bool", "int", "float", "str", "bin", "array", "map", "ext"}

func (k mpKind) String() string { return kindNames[k] }

// kindOf classifies a MessagePack type byte.
func kindOf(c byte) mpKind {
	switch {
	case c <= 0x7f, c >= 0xe0:
		return kindInt
	case c <= 0x8f:
		return kindMap
	case c <= 0x9f:
		return kindArray
	case c <= 0xbf:
		return kindStr
	}
	switch c {
	case 0xc0:
		return kindNil
	case 0xc2, 0xc3:
		return kindBool
	case 0xc4, 0xc5, 0xc6:
		return kindBin
	case 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return kindExt
	case 0xca, 0xcb:
		return kindFloat
	case 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3:
		return kindInt
	case 0xd9, 0xda, 0xdb:
		return kindStr
	case 0xdc, 0xdd:
		return kindArray
	case 0xde, 0xdf:
		return kindMap
	}
	return kindInvalid
}

// mpReader walks MessagePack values in b. It never panics and never allocates; on
// error it returns a sentinel-wrapped error (ErrTruncated, ErrWrongType, ...), which
// callers wrap with the field it concerns.
type mpReader struct {
	b   []byte
	off int
}

// kindErr is the error for a value of the wrong family; detail reads "want X, got Y".
type kindErr struct{ want, got mpKind }

func (e kindErr) Error() string { return "want " + e.want.String() + ", got " + e.got.String() }

// take returns the next n bytes.
func (r *mpReader) take(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.off) {
		return nil, ErrTruncated
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// lenPrefixed reads the length that follows a 1/2/4-byte length prefix code.
func (r *mpReader) lenN(size int) (uint64, error) {
	p, err := r.take(uint64(size))
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	default:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
}

// header reads a type byte and returns its kind and, for str/bin/array/map/ext, the
// length it announces (element count for containers, byte count otherwise).
func (r *mpReader) header() (mpKind, uint64, error) {
	if r.off >= len(r.b) {
		return 0, 0, ErrTruncated
	}
	c := r.b[r.off]
	r.off++
	k := kindOf(c)
	switch {
	case c >= 0x80 && c <= 0x8f:
		return k, uint64(c & 0x0f), nil
	case c >= 0x90 && c <= 0x9f:
		return k, uint64(c & 0x0f), nil
	case c >= 0xa0 && c <= 0xbf:
		return k, uint64(c & 0x1f), nil
	}
	var n uint64
	var err error
	switch c {
	case 0xc4, 0xd9, 0xc7:
		n, err = r.lenN(1)
	case 0xc5, 0xda, 0xdc, 0xde, 0xc8:
		n, err = r.lenN(2)
	case 0xc6, 0xdb, 0xdd, 0xdf, 0xc9:
		n, err = r.lenN(4)
	case 0xd4:
		n = 1
	case 0xd5:
		n = 2
	case 0xd6:
		n = 4
	case 0xd7:
		n = 8
	case 0xd8:
		n = 16
	}
	if err != nil {
		return 0, 0, err
	}
	if c >= 0xc7 && c <= 0xc9 || c >= 0xd4 && c <= 0xd8 {
		n++ // ext: the type byte precedes the data
	}
	return k, n, nil
}

// container reads an array or map header of kind want, and checks the announced
// count against the bytes left (each element takes at least one byte), so that no
// caller can be made to allocate for elements that are not there.
func (r *mpReader) container(want mpKind) (int, error) {
	k, n, err := r.header()
	if err != nil {
		return 0, err
	}
	if k != want {
		return 0, kindErr{want, k}
	}
	per := uint64(1)
	if want == kindMap {
		per = 2
	}
	if n*per > uint64(len(r.b)-r.off) {
		return 0, ErrTruncated
	}
	return int(n), nil
}

func (r *mpReader) arrayLen() (int, error) { return r.container(kindArray) }

// bytesOf reads a str or bin (want) and returns its bytes, aliasing r.b. A str must
// be valid UTF-8.
func (r *mpReader) bytesOf(want mpKind) ([]byte, error) {
	start := r.off
	k, n, err := r.header()
	if err != nil {
		return nil, err
	}
	if k != want {
		r.off = start
		return nil, kindErr{want, k}
	}
	p, err := r.take(n)
	if err != nil {
		return nil, err
	}
	if want == kindStr && !utf8.Valid(p) {
		return nil, errInvalidUTF8
	}
	return p, nil
}

func (r *mpReader) str() ([]byte, error) { return r.bytesOf(kindStr) }
func (r *mpReader) bin() ([]byte, error) { return r.bytesOf(kindBin) }

// int reads an integer that fits an int64.
func (r *mpReader) int() (int64, error) {
	if r.off >= len(r.b) {
		return 0, ErrTruncated
	}
	c := r.b[r.off]
	if c <= 0x7f {
		r.off++
		return int64(c), nil
	}
	if c >= 0xe0 {
		r.off++
		return int64(int8(c)), nil
	}
	if k := kindOf(c); k != kindInt {
		return 0, kindErr{kindInt, k}
	}
	p, err := r.fixed(scalarSize(c))
	if err != nil {
		return 0, err
	}
	switch c {
	case 0xcc:
		return int64(p[0]), nil
	case 0xcd:
		return int64(binary.BigEndian.Uint16(p)), nil
	case 0xce:
		return int64(binary.BigEndian.Uint32(p)), nil
	case 0xcf:
		u := binary.BigEndian.Uint64(p)
		if u > math.MaxInt64 {
			return 0, errIntRange
		}
		return int64(u), nil
	case 0xd0:
		return int64(int8(p[0])), nil
	case 0xd1:
		return int64(int16(binary.BigEndian.Uint16(p))), nil
	case 0xd2:
		return int64(int32(binary.BigEndian.Uint32(p))), nil
	default:
		return int64(binary.BigEndian.Uint64(p)), nil
	}
}

// uint reads a non-negative integer in any integer encoding.
func (r *mpReader) uint() (uint64, error) {
	if r.off < len(r.b) && r.b[r.off] == 0xcf {
		p, err := r.fixed(8)
		if err != nil {
			return 0, err
		}
		return binary.BigEndian.Uint64(p), nil
	}
	n, err := r.int()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errNegative
	}
	return uint64(n), nil
}

// fixed consumes a type byte followed by n bytes and returns those n bytes.
func (r *mpReader) fixed(n int) ([]byte, error) {
	if len(r.b)-r.off-1 < n {
		return nil, ErrTruncated
	}
	p := r.b[r.off+1 : r.off+1+n]
	r.off += 1 + n
	return p, nil
}

// float reads a float32 or float64.
func (r *mpReader) float() (float64, error) {
	if r.off >= len(r.b) {
		return 0, ErrTruncated
	}
	switch c := r.b[r.off]; c {
	case 0xca:
		p, err := r.fixed(4)
		if err != nil {
			return 0, err
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(p))), nil
	case 0xcb:
		p, err := r.fixed(8)
		if err != nil {
			return 0, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(p)), nil
	default:
		return 0, kindErr{kindFloat, kindOf(c)}
	}
}

// scalarSize is the number of bytes after type byte c of a nil, bool, int or float.
func scalarSize(c byte) int {
	switch c {
	case 0xcc, 0xd0:
		return 1
	case 0xcd, 0xd1:
		return 2
	case 0xca, 0xce, 0xd2:
		return 4
	case 0xcb, 0xcf, 0xd3:
		return 8
	}
	return 0 // fixint, nil, false, true
}

// maxSkipDepth bounds the nesting skip will follow, so that a hostile payload of
// nested one-element arrays cannot exhaust the stack.
const maxSkipDepth = 32

// skip reads past one value of any type, depth levels below the top; containers
// nested deeper than maxSkipDepth and the reserved byte 0xc1 are errors.
func (r *mpReader) skip(depth int) error {
	if depth > maxSkipDepth {
		return errTooDeep
	}
	if r.off >= len(r.b) {
		return ErrTruncated
	}
	c := r.b[r.off]
	switch k := kindOf(c); k {
	case kindInvalid:
		return errInvalidCode
	case kindNil, kindBool, kindInt, kindFloat:
		_, err := r.fixed(scalarSize(c))
		return err
	case kindArray, kindMap:
		n, err := r.container(k)
		if err != nil {
			return err
		}
		if k == kindMap {
			n *= 2
		}
		for i := 0; i < n; i++ {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	}
	_, n, err := r.header() // str, bin, ext: n bytes follow
	if err == nil {
		_, err = r.take(n)
	}
	return err
}

// detailErr is a low-level decoding error: a sentinel plus a detail for FieldError.
type detailErr struct {
	err    error
	detail string
}

func (e detailErr) Error() string { return e.err.Error() + ": " + e.detail }
func (e detailErr) Unwrap() error { return e.err }

var (
	errInvalidUTF8 = detailErr{ErrBadValue, "str is not valid UTF-8"}
	errIntRange    = detailErr{ErrBadValue, "integer out of range"}
	errNegative    = detailErr{ErrBadValue, "negative integer"}
	errTooDeep     = detailErr{ErrLimit, "values nested too deeply"}
	errInvalidCode = detailErr{ErrMalformed, "reserved type byte 0xc1"}
)

// wrapField turns a low-level decoding error into a *FieldError naming the field.
func wrapField(where, field string, err error) error {
	switch e := err.(type) {
	case kindErr:
		return &FieldError{Where: where, Field: field, Err: ErrWrongType, Detail: e.Error()}
	case detailErr:
		return &FieldError{Where: where, Field: field, Err: e.err, Detail: e.detail}
	case *FieldError, *ManifestError:
		return err
	}
	return &FieldError{Where: where, Field: field, Err: err}
}

// Appenders. All produce the smallest encoding.

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	}
	return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xde, byte(n>>8), byte(n))
	}
	return append(b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendNil(b []byte) []byte { return append(b, 0xc0) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// appendFloat64 always writes a float64, as vmihailenco/msgpack and Python's msgpack
// do by default.
func appendFloat64(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(f))
}

func appendStrLen(b []byte, n int) []byte {
	switch {
	case n < 32:
		return append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xda, byte(n>>8), byte(n))
	}
	return append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendStr(b []byte, s string) []byte { return append(appendStrLen(b, len(s)), s...) }

func appendBin(b []byte, v []byte) []byte {
	n := len(v)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, v...)
}

func appendInt(b []byte, n int64) []byte {
	if n >= 0 {
		return appendUint(b, uint64(n))
	}
	switch {
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return append(b, 0xd1, byte(n>>8), byte(n))
	case n >= math.MinInt32:
		return append(b, 0xd2, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, 0xd3, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n <= 0x7f:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xcd, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		return append(b, 0xce, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, 0xcf, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}
