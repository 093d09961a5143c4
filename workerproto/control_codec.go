package workerproto

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"unicode/utf8"
)

// The MessagePack encoding of the control-plane messages (PROTOCOL.md 1.3), written
// with mp.go's appenders and read with its mpReader: one MessagePack reading path for
// the control and the data plane.

// encoding

// encoder appends to b; the first error sticks and stops further writes.
type encoder struct {
	b   []byte
	err error
}

func (w *encoder) mapLen(n int) {
	if w.err == nil {
		w.b = appendMapLen(w.b, n)
	}
}

func (w *encoder) arrayLen(n int) {
	if w.err == nil {
		w.b = appendArrayLen(w.b, n)
	}
}

func (w *encoder) str(s string) {
	if w.err == nil && !utf8.ValidString(s) {
		w.err = fmt.Errorf("%w: str is not valid UTF-8: %q", ErrBadValue, s)
	}
	if w.err == nil {
		w.b = appendStr(w.b, s)
	}
}

func (w *encoder) int(n int64) {
	if w.err == nil {
		w.b = appendInt(w.b, n)
	}
}

func (w *encoder) uint(n uint64) {
	if w.err == nil {
		w.b = appendUint(w.b, n)
	}
}

func (w *encoder) kstr(k, v string)       { w.str(k); w.str(v) }
func (w *encoder) kint(k string, v int64) { w.str(k); w.int(v) }

func (m Hello) appendTo(b []byte) ([]byte, error) {
	w := encoder{b: b}
	if len(m.Descriptors) > 0 {
		w.mapLen(7)
	} else {
		w.mapLen(6)
	}
	w.kstr("type", TypeHello)
	w.kint("version", int64(m.Version))
	w.kint("pid", m.PID)
	w.kstr("app", m.App)
	w.kstr("token", m.Token)
	w.str("routes")
	w.arrayLen(len(m.Routes))
	for _, r := range m.Routes {
		w.mapLen(4)
		w.kstr("method", r.Method)
		w.kstr("path", r.Path)
		w.kstr("kind", r.Kind)
		w.str("options")
		w.any(r.Options, 0)
	}
	if len(m.Descriptors) > 0 {
		w.str("descriptors")
		w.arrayLen(len(m.Descriptors))
		for _, d := range m.Descriptors {
			if w.err == nil {
				w.b = appendBin(w.b, d)
			}
		}
	}
	return w.b, w.err
}

func (m Welcome) appendTo(b []byte) ([]byte, error) {
	w := encoder{b: b}
	w.mapLen(8)
	w.kstr("type", TypeWelcome)
	w.kint("version", int64(m.Version))
	w.kint("worker_id", m.WorkerID)
	w.str("epoch")
	w.uint(m.Epoch)
	w.kint("segment_size", m.SegmentSize)
	w.kint("req_capacity", m.ReqCapacity)
	w.kint("resp_capacity", m.RespCapacity)
	w.kint("heartbeat_ms", m.HeartbeatMS)
	return w.b, w.err
}

func appendSeq(b []byte, typ string, seq uint64) ([]byte, error) {
	w := encoder{b: b}
	w.mapLen(2)
	w.kstr("type", typ)
	w.str("seq")
	w.uint(seq)
	return w.b, w.err
}

func (m Ping) appendTo(b []byte) ([]byte, error) { return appendSeq(b, TypePing, m.Seq) }
func (m Pong) appendTo(b []byte) ([]byte, error) { return appendSeq(b, TypePong, m.Seq) }

func (m Drain) appendTo(b []byte) ([]byte, error) {
	w := encoder{b: b}
	w.mapLen(2)
	w.kstr("type", TypeDrain)
	w.kint("deadline_ms", m.DeadlineMS)
	return w.b, w.err
}

func (m Bye) appendTo(b []byte) ([]byte, error) {
	w := encoder{b: b}
	w.mapLen(2)
	w.kstr("type", TypeBye)
	w.kstr("reason", m.Reason)
	return w.b, w.err
}

func (m *Error) appendTo(b []byte) ([]byte, error) {
	w := encoder{b: b}
	w.mapLen(3)
	w.kstr("type", TypeError)
	w.kstr("code", m.Code)
	w.kstr("message", m.Message)
	return w.b, w.err
}

// maxAnyDepth bounds the nesting of route option values (a map inside a list inside
// the options map is depth 3).
const maxAnyDepth = 8

// any writes an option value; map keys are written in sorted order so that the
// encoding is deterministic. A nil []byte is written as nil.
func (w *encoder) any(v any, depth int) {
	if w.err != nil {
		return
	}
	if depth > maxAnyDepth {
		w.err = fmt.Errorf("%w: option values nested deeper than %d", ErrLimit, maxAnyDepth)
		return
	}
	switch v := v.(type) {
	case nil:
		if depth == 0 { // a nil Options map is an empty map
			w.b = appendMapLen(w.b, 0)
		} else {
			w.b = appendNil(w.b)
		}
	case bool:
		w.b = appendBool(w.b, v)
	case int:
		w.int(int64(v))
	case int8:
		w.int(int64(v))
	case int16:
		w.int(int64(v))
	case int32:
		w.int(int64(v))
	case int64:
		w.int(v)
	case uint:
		w.uint(uint64(v))
	case uint8:
		w.uint(uint64(v))
	case uint16:
		w.uint(uint64(v))
	case uint32:
		w.uint(uint64(v))
	case uint64:
		w.uint(v)
	case float32:
		w.b = appendFloat64(w.b, float64(v))
	case float64:
		w.b = appendFloat64(w.b, v)
	case string:
		w.str(v)
	case []byte:
		if v == nil {
			w.b = appendNil(w.b)
		} else {
			w.b = appendBin(w.b, v)
		}
	case []string:
		w.arrayLen(len(v))
		for _, s := range v {
			w.str(s)
		}
	case []any:
		w.arrayLen(len(v))
		for _, x := range v {
			w.any(x, depth+1)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.mapLen(len(keys))
		for _, k := range keys {
			w.str(k)
			w.any(v[k], depth+1)
		}
	default:
		w.err = fmt.Errorf("%w: option value of Go type %T cannot be encoded", ErrBadValue, v)
	}
}

// AppendMessage appends m's MessagePack map (without the length prefix) to b. On
// error it returns b unchanged.
func AppendMessage(b []byte, m Message) ([]byte, error) {
	out, err := m.appendTo(b)
	if err != nil {
		return b, err
	}
	return out, nil
}

// decoding

// dec reads one control-plane map with an mpReader, checking the type of every
// value (the spec allows no conversions between types). where names the message
// or "route" in errors.
type dec struct {
	r     *mpReader
	where string
}

func newDec(b []byte, where string) *dec { return &dec{r: &mpReader{b: b}, where: where} }

// str reads a str as a Go string (a copy).
func (d *dec) str() (string, error) {
	p, err := d.r.str()
	return string(p), err
}

// intMin reads an int >= min.
func (d *dec) intMin(min int64) (int64, error) {
	n, err := d.r.int()
	if err == nil && n < min {
		err = detailErr{ErrBadValue, fmt.Sprintf("%d < %d", n, min)}
	}
	return n, err
}

// any decodes an option value: nil, bool, int64 (uint64 above math.MaxInt64),
// float64, string, []byte (a copy), []any or map[string]any.
func (d *dec) any(depth int) (any, error) {
	if depth > maxAnyDepth {
		return nil, errTooDeep
	}
	r := d.r
	if r.off >= len(r.b) {
		return nil, ErrTruncated
	}
	c := r.b[r.off]
	switch k := kindOf(c); k {
	case kindNil:
		r.off++
		return nil, nil
	case kindBool:
		r.off++
		return c == 0xc3, nil
	case kindInt:
		if c == 0xcf {
			u, err := r.uint()
			if err == nil && u <= math.MaxInt64 {
				return int64(u), nil
			}
			return u, err
		}
		return r.int()
	case kindFloat:
		return r.float()
	case kindStr:
		return d.str()
	case kindBin:
		p, err := r.bin()
		if err != nil {
			return nil, err
		}
		return append(make([]byte, 0, len(p)), p...), nil
	case kindArray:
		n, err := r.container(kindArray)
		if err != nil {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = d.any(depth + 1); err != nil {
				return nil, err
			}
		}
		return out, nil
	case kindMap:
		return d.anyMap(depth)
	default:
		return nil, kindErr{kindMap, k} // ext and 0xc1 are not option values
	}
}

func (d *dec) anyMap(depth int) (map[string]any, error) {
	n, err := d.r.container(kindMap)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, n)
	for i := 0; i < n; i++ {
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		if _, dup := out[k]; dup {
			return nil, detailErr{ErrBadValue, fmt.Sprintf("duplicate key %q", k)}
		}
		if out[k], err = d.any(depth + 1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// field is one key of a control map and how to read its value.
type field struct {
	key  string
	read func() error
}

// fields reads a map: each key of fs is read by its field, and other keys are
// skipped. A key that is not a str, a key of fs that appears twice, and a key of fs
// that does not appear (the first missing one, in the order of fs) are errors.
func (d *dec) fields(fs ...field) error { return d.fieldsOpt(nil, fs...) }

// fieldsOpt is fields with optional keys besides the required fs: each is read
// by its field when present, and may be absent.
func (d *dec) fieldsOpt(opt []field, fs ...field) error {
	required := len(fs)
	fs = append(fs[:required:required], opt...)
	n, err := d.r.container(kindMap)
	if err != nil {
		return wrapField(d.where, "map", err)
	}
	var have uint32
	for range n {
		key, err := d.str()
		if err != nil {
			return wrapField(d.where, "key", err)
		}
		i := slices.IndexFunc(fs, func(f field) bool { return f.key == key })
		if i < 0 {
			if err := d.r.skip(1); err != nil {
				return wrapField(d.where, key, err)
			}
			continue
		}
		if err := fs[i].read(); err != nil {
			return wrapField(d.where, key, err)
		}
		if have&(1<<i) != 0 {
			return fieldErr(d.where, key, ErrBadValue, "key appears twice")
		}
		have |= 1 << i
	}
	for i, f := range fs {
		if have&(1<<i) == 0 && i < required {
			return &FieldError{Where: d.where, Field: f.key, Err: ErrMissingKey}
		}
	}
	return nil
}

// typeField reads the "type" key, which DecodeMessage has already looked at.
func (d *dec) typeField() field {
	return field{"type", func() error { _, err := d.str(); return err }}
}

// strField reads key's str into p.
func (d *dec) strField(key string, p *string) field {
	return field{key, func() (err error) { *p, err = d.str(); return err }}
}

// intField reads key's int, which must be >= min, into p.
func (d *dec) intField(key string, p *int64, min int64) field {
	return field{key, func() (err error) { *p, err = d.intMin(min); return err }}
}

// messageType finds the "type" key of a control map.
func messageType(b []byte) (string, error) {
	var typ string
	d := newDec(b, "message")
	if err := d.fields(d.strField("type", &typ)); err != nil {
		return "", err
	}
	return typ, nil
}

// DecodeMessage decodes one control-plane map (the bytes after the length prefix).
// The result does not alias b. Unknown keys are skipped; a missing or mistyped key,
// an unknown "type", trailing bytes or over-deep nesting is an error. A hello whose
// version is not 1 gives an error wrapping ErrVersion; a hello whose routes cannot be
// read gives a *ManifestError. DecodeMessage does not validate the manifest beyond
// types (see Hello.Validate).
func DecodeMessage(b []byte) (Message, error) {
	if len(b) > MaxFrame {
		return nil, ErrFrameTooLarge
	}
	typ, err := messageType(b)
	if err != nil {
		return nil, err
	}
	d := newDec(b, typ)
	var m Message
	switch typ {
	case TypeHello:
		m, err = d.hello()
	case TypeWelcome:
		m, err = d.welcome()
	case TypePing, TypePong:
		m, err = d.seq(typ)
	case TypeDrain:
		m, err = d.drain()
	case TypeBye:
		m, err = d.bye()
	case TypeError:
		m, err = d.errorMsg()
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownType, printable(typ, 32))
	}
	if err != nil {
		return nil, err
	}
	if d.r.off != len(d.r.b) {
		return nil, ErrTrailingBytes
	}
	return m, nil
}

func (d *dec) hello() (Hello, error) {
	var m Hello
	descriptors := field{"descriptors", func() (err error) { m.Descriptors, err = d.bins(); return err }}
	err := d.fieldsOpt([]field{descriptors},
		d.typeField(),
		field{"version", func() error {
			v, err := d.r.int()
			m.Version = int(v)
			if err == nil && v != Version {
				// Refuse before reading further: a future version may change the rest.
				return fmt.Errorf("%w: hello version %d (this gateway speaks %d)", ErrVersion, v, Version)
			}
			return err
		}},
		d.intField("pid", &m.PID, 1),
		d.strField("app", &m.App),
		d.strField("token", &m.Token),
		field{"routes", func() (err error) { m.Routes, err = d.routes(); return err }},
	)
	var fe *FieldError
	if errors.Is(err, ErrVersion) && errors.As(err, &fe) {
		return m, fe.Err // the version error already names the field
	}
	return m, err
}

func (d *dec) routes() ([]Route, error) {
	n, err := d.r.container(kindArray)
	if err != nil {
		return nil, &ManifestError{Index: -1, Err: wrapField("hello", "routes", err)}
	}
	if n > MaxRoutes {
		return nil, &ManifestError{Index: -1, Problem: fmt.Sprintf("%d routes, at most %d allowed", n, MaxRoutes)}
	}
	routes := make([]Route, n)
	sub := &dec{r: d.r, where: "route"}
	for i := range routes {
		r := &routes[i]
		err := sub.fields(
			sub.strField("method", &r.Method),
			sub.strField("path", &r.Path),
			sub.strField("kind", &r.Kind),
			field{"options", func() (err error) { r.Options, err = sub.anyMap(1); return err }},
		)
		if err != nil {
			return nil, &ManifestError{Index: i, Method: r.Method, Path: r.Path, Err: err}
		}
	}
	return routes, nil
}

// bins reads an array of bin (copies).
func (d *dec) bins() ([][]byte, error) {
	n, err := d.r.container(kindArray)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for i := range out {
		p, err := d.r.bin()
		if err != nil {
			return nil, err
		}
		out[i] = append(make([]byte, 0, len(p)), p...)
	}
	return out, nil
}

func (d *dec) welcome() (Welcome, error) {
	var m Welcome
	err := d.fields(
		d.typeField(),
		field{"version", func() error {
			v, err := d.r.int()
			m.Version = int(v)
			return err
		}},
		d.intField("worker_id", &m.WorkerID, 0),
		field{"epoch", func() (err error) {
			m.Epoch, err = d.r.uint()
			if err == nil && m.Epoch == 0 {
				err = detailErr{ErrBadValue, "epoch is zero"}
			}
			return err
		}},
		d.intField("segment_size", &m.SegmentSize, 0),
		d.intField("req_capacity", &m.ReqCapacity, 0),
		d.intField("resp_capacity", &m.RespCapacity, 0),
		d.intField("heartbeat_ms", &m.HeartbeatMS, 0),
	)
	return m, err
}

func (d *dec) seq(typ string) (Message, error) {
	var seq uint64
	err := d.fields(d.typeField(), field{"seq", func() (err error) { seq, err = d.r.uint(); return err }})
	if err != nil {
		return nil, err
	}
	if typ == TypePing {
		return Ping{Seq: seq}, nil
	}
	return Pong{Seq: seq}, nil
}

func (d *dec) drain() (Drain, error) {
	var m Drain
	err := d.fields(d.typeField(), d.intField("deadline_ms", &m.DeadlineMS, 0))
	return m, err
}

func (d *dec) bye() (Bye, error) {
	var m Bye
	err := d.fields(d.typeField(), d.strField("reason", &m.Reason))
	return m, err
}

func (d *dec) errorMsg() (*Error, error) {
	m := &Error{}
	if err := d.fields(d.typeField(), d.strField("code", &m.Code), d.strField("message", &m.Message)); err != nil {
		return nil, err
	}
	return m, nil
}
