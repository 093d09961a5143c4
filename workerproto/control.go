package workerproto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the protocol version this package speaks.
const Version = 1

// Message type names: the "type" key of every control-plane map (PROTOCOL.md 1.3).
const (
	TypeHello   = "hello"
	TypeWelcome = "welcome"
	TypePing    = "ping"
	TypePong    = "pong"
	TypeDrain   = "drain"
	TypeBye     = "bye"
	TypeError   = "error"
)

// Message is one control-plane message: Hello, Welcome, Ping, Pong, Drain, Bye or
// Error. The set is closed.
type Message interface {
	// Type returns the message's "type" key.
	Type() string
	// encode writes the message as a MessagePack map, keys in the spec's order.
	encode(e *msgpack.Encoder) error
}

// Hello is the worker's first message: who it is and what it serves.
type Hello struct {
	Version int     // protocol version; must be 1
	PID     int64   // the worker's pid, in its own pid namespace
	App     string  // 1..64 chars of [A-Za-z0-9_.-]
	Token   string  // shared token for an external worker; may be empty
	Routes  []Route // the route manifest, 0 ..= MaxRoutes routes
}

// Route is one entry of a hello's manifest.
type Route struct {
	Method string // GET POST PUT PATCH DELETE HEAD OPTIONS, or * for any
	Path   string // pattern; starts with '/', at most MaxRoutePath bytes
	Kind   string // http, ws or grpc
	// Options holds per-route options. Known keys: "name" (string), "timeout_ms"
	// (integer), "roles" (array of strings). Decoded values are nil, bool, int64,
	// uint64 (only above math.MaxInt64), float64, string, []byte, []any or
	// map[string]any. Encoding writes keys in sorted order.
	Options map[string]any
}

// Welcome is the gateway's answer to a valid hello; it travels with the segment memfd
// and the two doorbell eventfds (SendWelcome).
type Welcome struct {
	Version      int
	WorkerID     int64
	Epoch        uint64 // non-zero; also stored in the segment header
	SegmentSize  int64
	ReqCapacity  int64
	RespCapacity int64
	HeartbeatMS  int64
}

// Ping asks the peer to answer Pong with the same Seq.
type Ping struct{ Seq uint64 }

// Pong answers a Ping.
type Pong struct{ Seq uint64 }

// Drain asks the worker to finish in-flight work within DeadlineMS and accept none.
type Drain struct{ DeadlineMS int64 }

// Bye announces that the worker is leaving; it sends nothing after it.
type Bye struct{ Reason string }

// Error reports a failure to the peer; the sender closes the socket after it. It is
// also a Go error: a received error frame is returned as one (see RecvWelcome).
type Error struct {
	Code    string // version, auth, manifest, conflict, protocol or internal
	Message string
}

// Error implements error for a received error frame.
func (e *Error) Error() string {
	return "workerproto: peer sent error " + e.Code + ": " + e.Message
}

func (Hello) Type() string   { return TypeHello }
func (Welcome) Type() string { return TypeWelcome }
func (Ping) Type() string    { return TypePing }
func (Pong) Type() string    { return TypePong }
func (Drain) Type() string   { return TypeDrain }
func (Bye) Type() string     { return TypeBye }
func (*Error) Type() string  { return TypeError }

// encoding

type encoder struct {
	e   *msgpack.Encoder
	err error
}

func (w *encoder) mapLen(n int) {
	if w.err == nil {
		w.err = w.e.EncodeMapLen(n)
	}
}

func (w *encoder) str(s string) {
	if w.err == nil && !utf8.ValidString(s) {
		w.err = fmt.Errorf("%w: str is not valid UTF-8: %q", ErrBadValue, s)
	}
	if w.err == nil {
		w.err = w.e.EncodeString(s)
	}
}

func (w *encoder) int(n int64) {
	if w.err == nil {
		w.err = w.e.EncodeInt(n)
	}
}

func (w *encoder) uint(n uint64) {
	if w.err == nil {
		w.err = w.e.EncodeUint(n)
	}
}

func (w *encoder) kstr(k, v string)       { w.str(k); w.str(v) }
func (w *encoder) kint(k string, v int64) { w.str(k); w.int(v) }

func (m Hello) encode(e *msgpack.Encoder) error {
	w := encoder{e: e}
	w.mapLen(6)
	w.kstr("type", TypeHello)
	w.kint("version", int64(m.Version))
	w.kint("pid", m.PID)
	w.kstr("app", m.App)
	w.kstr("token", m.Token)
	w.str("routes")
	if w.err == nil {
		w.err = e.EncodeArrayLen(len(m.Routes))
	}
	for _, r := range m.Routes {
		w.mapLen(4)
		w.kstr("method", r.Method)
		w.kstr("path", r.Path)
		w.kstr("kind", r.Kind)
		w.str("options")
		if w.err == nil {
			w.err = encodeAny(&w, r.Options, 0)
		}
	}
	return w.err
}

func (m Welcome) encode(e *msgpack.Encoder) error {
	w := encoder{e: e}
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
	return w.err
}

func encodeSeq(e *msgpack.Encoder, typ string, seq uint64) error {
	w := encoder{e: e}
	w.mapLen(2)
	w.kstr("type", typ)
	w.str("seq")
	w.uint(seq)
	return w.err
}

func (m Ping) encode(e *msgpack.Encoder) error { return encodeSeq(e, TypePing, m.Seq) }
func (m Pong) encode(e *msgpack.Encoder) error { return encodeSeq(e, TypePong, m.Seq) }

func (m Drain) encode(e *msgpack.Encoder) error {
	w := encoder{e: e}
	w.mapLen(2)
	w.kstr("type", TypeDrain)
	w.kint("deadline_ms", m.DeadlineMS)
	return w.err
}

func (m Bye) encode(e *msgpack.Encoder) error {
	w := encoder{e: e}
	w.mapLen(2)
	w.kstr("type", TypeBye)
	w.kstr("reason", m.Reason)
	return w.err
}

func (m *Error) encode(e *msgpack.Encoder) error {
	w := encoder{e: e}
	w.mapLen(3)
	w.kstr("type", TypeError)
	w.kstr("code", m.Code)
	w.kstr("message", m.Message)
	return w.err
}

// maxAnyDepth bounds the nesting of route option values (a map inside a list inside
// the options map is depth 3).
const maxAnyDepth = 8

// encodeAny writes an option value; map keys are written in sorted order so that the
// encoding is deterministic.
func encodeAny(w *encoder, v any, depth int) error {
	if depth > maxAnyDepth {
		return fmt.Errorf("%w: option values nested deeper than %d", ErrLimit, maxAnyDepth)
	}
	e := w.e
	switch v := v.(type) {
	case nil:
		if depth == 0 { // a nil Options map is an empty map
			return e.EncodeMapLen(0)
		}
		return e.EncodeNil()
	case bool:
		return e.EncodeBool(v)
	case int:
		return e.EncodeInt(int64(v))
	case int8:
		return e.EncodeInt(int64(v))
	case int16:
		return e.EncodeInt(int64(v))
	case int32:
		return e.EncodeInt(int64(v))
	case int64:
		return e.EncodeInt(v)
	case uint:
		return e.EncodeUint(uint64(v))
	case uint8:
		return e.EncodeUint(uint64(v))
	case uint16:
		return e.EncodeUint(uint64(v))
	case uint32:
		return e.EncodeUint(uint64(v))
	case uint64:
		return e.EncodeUint(v)
	case float32:
		return e.EncodeFloat64(float64(v))
	case float64:
		return e.EncodeFloat64(v)
	case string:
		w.str(v)
		return w.err
	case []byte:
		return e.EncodeBytes(v)
	case []string:
		if err := e.EncodeArrayLen(len(v)); err != nil {
			return err
		}
		for _, s := range v {
			if w.str(s); w.err != nil {
				return w.err
			}
		}
		return nil
	case []any:
		if err := e.EncodeArrayLen(len(v)); err != nil {
			return err
		}
		for _, x := range v {
			if err := encodeAny(w, x, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if err := e.EncodeMapLen(len(keys)); err != nil {
			return err
		}
		for _, k := range keys {
			if w.str(k); w.err != nil {
				return w.err
			}
			if err := encodeAny(w, v[k], depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: option value of Go type %T cannot be encoded", ErrBadValue, v)
}

// AppendMessage appends m's MessagePack map (without the length prefix) to b.
func AppendMessage(b []byte, m Message) ([]byte, error) {
	buf := bytes.NewBuffer(b)
	if err := m.encode(msgpack.NewEncoder(buf)); err != nil {
		return b, err
	}
	return buf.Bytes(), nil
}

// decoding

// dec reads one control-plane map with vmihailenco/msgpack, checking the type of
// every value before decoding it (the library's own Decode* calls convert between
// types, which the spec forbids).
type dec struct {
	r     *bytes.Reader
	d     *msgpack.Decoder
	where string
}

func newDec(b []byte, where string) *dec {
	r := bytes.NewReader(b)
	return &dec{r: r, d: msgpack.NewDecoder(r), where: where}
}

// libErr maps an error of the library or the reader to this package's sentinels.
func libErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return detailErr{ErrMalformed, err.Error()}
}

func (d *dec) kind() (mpKind, error) {
	c, err := d.d.PeekCode()
	if err != nil {
		return 0, libErr(err)
	}
	return kindOf(c), nil
}

func (d *dec) want(k mpKind) error {
	got, err := d.kind()
	if err != nil {
		return err
	}
	if got != k {
		return kindErr{k, got}
	}
	return nil
}

func (d *dec) str() (string, error) {
	if err := d.want(kindStr); err != nil {
		return "", err
	}
	s, err := d.d.DecodeString()
	if err != nil {
		return "", libErr(err)
	}
	if !utf8.ValidString(s) {
		return "", errInvalidUTF8
	}
	return s, nil
}

func (d *dec) int() (int64, error) {
	c, err := d.d.PeekCode()
	if err != nil {
		return 0, libErr(err)
	}
	if k := kindOf(c); k != kindInt {
		return 0, kindErr{kindInt, k}
	}
	if c == 0xcf { // uint64
		u, err := d.d.DecodeUint64()
		if err != nil {
			return 0, libErr(err)
		}
		if u > math.MaxInt64 {
			return 0, errIntRange
		}
		return int64(u), nil
	}
	n, err := d.d.DecodeInt64()
	if err != nil {
		return 0, libErr(err)
	}
	return n, nil
}

// intMin reads an int >= min.
func (d *dec) intMin(min int64) (int64, error) {
	n, err := d.int()
	if err == nil && n < min {
		err = detailErr{ErrBadValue, fmt.Sprintf("%d < %d", n, min)}
	}
	return n, err
}

func (d *dec) uint() (uint64, error) {
	c, err := d.d.PeekCode()
	if err != nil {
		return 0, libErr(err)
	}
	if k := kindOf(c); k != kindInt {
		return 0, kindErr{kindInt, k}
	}
	if c >= 0xe0 || c >= 0xd0 && c <= 0xd3 {
		n, err := d.d.DecodeInt64()
		if err != nil {
			return 0, libErr(err)
		}
		if n < 0 {
			return 0, detailErr{ErrBadValue, fmt.Sprintf("negative (%d)", n)}
		}
		return uint64(n), nil
	}
	u, err := d.d.DecodeUint64()
	if err != nil {
		return 0, libErr(err)
	}
	return u, nil
}

// container reads an array or map length, checking it against the bytes left.
func (d *dec) container(k mpKind) (int, error) {
	if err := d.want(k); err != nil {
		return 0, err
	}
	var n int
	var err error
	if k == kindMap {
		n, err = d.d.DecodeMapLen()
	} else {
		n, err = d.d.DecodeArrayLen()
	}
	if err != nil {
		return 0, libErr(err)
	}
	per := 1
	if k == kindMap {
		per = 2
	}
	if n < 0 || int64(n)*int64(per) > int64(d.r.Len()) {
		return 0, ErrTruncated
	}
	return n, nil
}

func (d *dec) skip(depth int) error {
	if depth > maxSkipDepth {
		return errTooDeep
	}
	k, err := d.kind()
	if err != nil {
		return err
	}
	switch k {
	case kindArray, kindMap:
		n, err := d.container(k)
		if err != nil {
			return err
		}
		if k == kindMap {
			n *= 2
		}
		for i := 0; i < n; i++ {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case kindInvalid:
		return errInvalidCode
	}
	if err := d.d.Skip(); err != nil {
		return libErr(err)
	}
	return nil
}

// any decodes an option value.
func (d *dec) any(depth int) (any, error) {
	if depth > maxAnyDepth {
		return nil, errTooDeep
	}
	c, err := d.d.PeekCode()
	if err != nil {
		return nil, libErr(err)
	}
	switch k := kindOf(c); k {
	case kindNil:
		return nil, libErrOrNil(d.d.DecodeNil())
	case kindBool:
		v, err := d.d.DecodeBool()
		return v, libErrOrNil(err)
	case kindInt:
		if c == 0xcf {
			u, err := d.d.DecodeUint64()
			if err != nil {
				return nil, libErr(err)
			}
			if u > math.MaxInt64 {
				return u, nil
			}
			return int64(u), nil
		}
		v, err := d.d.DecodeInt64()
		return v, libErrOrNil(err)
	case kindFloat:
		v, err := d.d.DecodeFloat64()
		return v, libErrOrNil(err)
	case kindStr:
		return d.str()
	case kindBin:
		v, err := d.d.DecodeBytes()
		return v, libErrOrNil(err)
	case kindArray:
		n, err := d.container(kindArray)
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
	n, err := d.container(kindMap)
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

func libErrOrNil(err error) error {
	if err != nil {
		return libErr(err)
	}
	return nil
}

// walk reads a map and calls visit for each key; visit decodes the value and reports
// true, or reports false to have it skipped. A key seen twice is an error, and so is a
// key that is not a str.
func (d *dec) walk(visit func(key string) (bool, error)) error {
	n, err := d.container(kindMap)
	if err != nil {
		return wrapField(d.where, "map", err)
	}
	var seen [8]string
	ns := 0
	for i := 0; i < n; i++ {
		key, err := d.str()
		if err != nil {
			return wrapField(d.where, "key", err)
		}
		ok, err := visit(key)
		if err != nil {
			return wrapField(d.where, key, err)
		}
		if !ok {
			if err := d.skip(1); err != nil {
				return wrapField(d.where, key, err)
			}
			continue
		}
		for _, s := range seen[:ns] {
			if s == key {
				return fieldErr(d.where, key, ErrBadValue, "key appears twice")
			}
		}
		if ns < len(seen) {
			seen[ns] = key
			ns++
		}
	}
	return nil
}

// required checks that every key of want was seen.
func required(where string, have uint32, keys ...string) error {
	for i, k := range keys {
		if have&(1<<i) == 0 {
			return &FieldError{Where: where, Field: k, Err: ErrMissingKey}
		}
	}
	return nil
}

// messageType finds the "type" key of a control map.
func messageType(b []byte) (string, error) {
	d := newDec(b, "message")
	typ, found := "", false
	err := d.walk(func(key string) (bool, error) {
		if key != "type" {
			return false, nil
		}
		var err error
		typ, err = d.str()
		found = true
		return true, err
	})
	if err != nil {
		return "", err
	}
	if !found {
		return "", &FieldError{Where: "message", Field: "type", Err: ErrMissingKey}
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
	if d.r.Len() != 0 {
		return nil, ErrTrailingBytes
	}
	return m, nil
}

func (d *dec) hello() (Hello, error) {
	var m Hello
	var have uint32
	err := d.walk(func(key string) (bool, error) {
		var err error
		switch key {
		case "type":
			_, err = d.str()
			have |= 1
		case "version":
			var v int64
			v, err = d.int()
			m.Version = int(v)
			if err == nil && v != Version {
				// Refuse before reading further: a future version may change the rest.
				return true, fmt.Errorf("%w: hello version %d (this gateway speaks %d)", ErrVersion, v, Version)
			}
			have |= 2
		case "pid":
			m.PID, err = d.intMin(1)
			have |= 4
		case "app":
			m.App, err = d.str()
			have |= 8
		case "token":
			m.Token, err = d.str()
			have |= 16
		case "routes":
			m.Routes, err = d.routes()
			have |= 32
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil {
		var fe *FieldError
		if errors.Is(err, ErrVersion) && errors.As(err, &fe) {
			return m, fe.Err // the version error already names the field
		}
		return m, err
	}
	return m, required(TypeHello, have, "type", "version", "pid", "app", "token", "routes")
}

func (d *dec) routes() ([]Route, error) {
	n, err := d.container(kindArray)
	if err != nil {
		return nil, &ManifestError{Index: -1, Err: wrapField("hello", "routes", err)}
	}
	if n > MaxRoutes {
		return nil, &ManifestError{Index: -1, Problem: fmt.Sprintf("%d routes, at most %d allowed", n, MaxRoutes)}
	}
	routes := make([]Route, n)
	for i := range routes {
		r := &routes[i]
		var have uint32
		sub := &dec{r: d.r, d: d.d, where: "route"}
		err := sub.walk(func(key string) (bool, error) {
			var err error
			switch key {
			case "method":
				r.Method, err = d.str()
				have |= 1
			case "path":
				r.Path, err = d.str()
				have |= 2
			case "kind":
				r.Kind, err = d.str()
				have |= 4
			case "options":
				r.Options, err = d.anyMap(1)
				have |= 8
			default:
				return false, nil
			}
			return true, err
		})
		if err == nil {
			err = required("route", have, "method", "path", "kind", "options")
		}
		if err != nil {
			return nil, &ManifestError{Index: i, Method: r.Method, Path: r.Path, Err: err}
		}
	}
	return routes, nil
}

func (d *dec) welcome() (Welcome, error) {
	var m Welcome
	var have uint32
	err := d.walk(func(key string) (bool, error) {
		var err error
		var v int64
		switch key {
		case "type":
			_, err = d.str()
			have |= 1
		case "version":
			v, err = d.int()
			m.Version = int(v)
			have |= 2
		case "worker_id":
			m.WorkerID, err = d.intMin(0)
			have |= 4
		case "epoch":
			m.Epoch, err = d.uint()
			if err == nil && m.Epoch == 0 {
				err = detailErr{ErrBadValue, "epoch is zero"}
			}
			have |= 8
		case "segment_size":
			m.SegmentSize, err = d.intMin(0)
			have |= 16
		case "req_capacity":
			m.ReqCapacity, err = d.intMin(0)
			have |= 32
		case "resp_capacity":
			m.RespCapacity, err = d.intMin(0)
			have |= 64
		case "heartbeat_ms":
			m.HeartbeatMS, err = d.intMin(0)
			have |= 128
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil {
		return m, err
	}
	return m, required(TypeWelcome, have, "type", "version", "worker_id", "epoch",
		"segment_size", "req_capacity", "resp_capacity", "heartbeat_ms")
}

func (d *dec) seq(typ string) (Message, error) {
	var seq uint64
	var have uint32
	err := d.walk(func(key string) (bool, error) {
		var err error
		switch key {
		case "type":
			_, err = d.str()
			have |= 1
		case "seq":
			seq, err = d.uint()
			have |= 2
		default:
			return false, nil
		}
		return true, err
	})
	if err == nil {
		err = required(typ, have, "type", "seq")
	}
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
	var have uint32
	err := d.walk(func(key string) (bool, error) {
		var err error
		switch key {
		case "type":
			_, err = d.str()
			have |= 1
		case "deadline_ms":
			m.DeadlineMS, err = d.intMin(0)
			have |= 2
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil {
		return m, err
	}
	return m, required(TypeDrain, have, "type", "deadline_ms")
}

func (d *dec) bye() (Bye, error) {
	var m Bye
	var have uint32
	err := d.walk(func(key string) (bool, error) {
		var err error
		switch key {
		case "type":
			_, err = d.str()
			have |= 1
		case "reason":
			m.Reason, err = d.str()
			have |= 2
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil {
		return m, err
	}
	return m, required(TypeBye, have, "type", "reason")
}

func (d *dec) errorMsg() (*Error, error) {
	m := &Error{}
	var have uint32
	err := d.walk(func(key string) (bool, error) {
		var err error
		switch key {
		case "type":
			_, err = d.str()
			have |= 1
		case "code":
			m.Code, err = d.str()
			have |= 2
		case "message":
			m.Message, err = d.str()
			have |= 4
		default:
			return false, nil
		}
		return true, err
	})
	if err == nil {
		err = required(TypeError, have, "type", "code", "message")
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Segment geometry bounds (PROTOCOL.md 2.1).
const (
	SegmentHeaderSize = 4096
	RingControlSize   = 1024
	MinRingCapacity   = 4096
	MaxRingCapacity   = 1 << 30
)

// Validate checks a welcome as the worker must before mapping the segment: version
// 1, epoch non-zero, both capacities powers of two in 4096 ..= 1 GiB, segment_size
// equal to the geometry of PROTOCOL.md 2.1, heartbeat_ms > 0.
func (w *Welcome) Validate() error {
	if w.Version != Version {
		return fmt.Errorf("%w: welcome version %d (this worker speaks %d)", ErrVersion, w.Version, Version)
	}
	if w.Epoch == 0 {
		return fmt.Errorf("%w: welcome epoch is zero", ErrProtocol)
	}
	for _, c := range [...]struct {
		name string
		v    int64
	}{{"req_capacity", w.ReqCapacity}, {"resp_capacity", w.RespCapacity}} {
		if c.v < MinRingCapacity || c.v > MaxRingCapacity || c.v&(c.v-1) != 0 {
			return fmt.Errorf("%w: welcome %s %d is not a power of two in %d..%d", ErrProtocol, c.name, c.v, MinRingCapacity, MaxRingCapacity)
		}
	}
	if want := SegmentHeaderSize + 2*RingControlSize + w.ReqCapacity + w.RespCapacity; w.SegmentSize != want {
		return fmt.Errorf("%w: welcome segment_size %d, geometry gives %d", ErrProtocol, w.SegmentSize, want)
	}
	if w.HeartbeatMS <= 0 {
		return fmt.Errorf("%w: welcome heartbeat_ms %d is not positive", ErrProtocol, w.HeartbeatMS)
	}
	return nil
}
