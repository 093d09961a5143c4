package workerproto

import (
	"bytes"
	"errors"
	"go/parser"
	"go/token"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The package has one MessagePack reading path (mp.go's mpReader), for the control
// and the data plane; vmihailenco/msgpack is used only by tests, as an independent
// reference.
func TestOneMessagePackCodec(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files: %v", err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.Contains(p, "msgpack") {
				t.Errorf("%s imports %s: encode and decode with mp.go", name, p)
			}
		}
	}
}

// libMap encodes an ordered map with vmihailenco/msgpack (compact integers, sorted
// map keys for nested maps), the reference the hand-written codec must match.
func libMap(t *testing.T, kvs ...any) msgpack.RawMessage { return libEncode(t, true, kvs...) }

// libEncode is libMap, with integers of sized Go types (int8, uint16, int64, ...)
// written in their fixed width unless compact.
func libEncode(t *testing.T, compact bool, kvs ...any) msgpack.RawMessage {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.UseCompactInts(compact)
	e.SetSortMapKeys(true)
	if err := e.EncodeMapLen(len(kvs) / 2); err != nil {
		t.Fatal(err)
	}
	for _, x := range kvs {
		if err := e.Encode(x); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// optionValues has a value of every option type at every encoding boundary.
func optionValues() map[string]any {
	m := map[string]any{
		"nil": nil, "false": false, "true": true, "f": 1.25, "nan": math.Inf(-1),
		"bin0": []byte{}, "bin": bytes.Repeat([]byte{7}, 300), "bin16": bytes.Repeat([]byte{1}, 70000),
		"list": []any{int64(1), "a", []any{}, map[string]any{}},
		"big":  make([]any, 20), "map": map[string]any{"k": int64(3), "n": map[string]any{"x": nil}},
		"u64": uint64(math.MaxUint64),
	}
	for i, n := range []int64{0, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, -1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64} {
		m["i"+strconv.Itoa(i)] = n
	}
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		m["s"+strconv.Itoa(n)] = strings.Repeat("é", n/2) + strings.Repeat("x", n%2)
	}
	wide := map[string]any{}
	for i := 0; i < 17; i++ {
		wide[strconv.Itoa(i)] = int64(i)
	}
	m["wide"] = wide
	for i := range m["big"].([]any) {
		m["big"].([]any)[i] = int64(i)
	}
	return m
}

// The encoder writes what vmihailenco/msgpack writes, byte for byte, and the decoder
// reads back exactly the values, for every message and option type.
func TestControlCodecMatchesLibrary(t *testing.T) {
	opts := optionValues()
	h := Hello{Version: 1, PID: 42, App: "shop", Token: "t", Routes: []Route{
		{Method: "GET", Path: "/a", Kind: "http", Options: opts},
		{Method: "*", Path: "/b", Kind: "ws"},
	}}
	cases := []struct {
		msg Message
		lib msgpack.RawMessage
	}{
		{h, libMap(t, "type", "hello", "version", 1, "pid", 42, "app", "shop", "token", "t", "routes", []msgpack.RawMessage{
			libMap(t, "method", "GET", "path", "/a", "kind", "http", "options", opts),
			libMap(t, "method", "*", "path", "/b", "kind", "ws", "options", map[string]any{}),
		})},
		{Welcome{Version: 1, WorkerID: 7, Epoch: math.MaxUint64, SegmentSize: 1 << 33, ReqCapacity: 1 << 20, RespCapacity: 1 << 16, HeartbeatMS: 250},
			libMap(t, "type", "welcome", "version", 1, "worker_id", 7, "epoch", uint64(math.MaxUint64), "segment_size", int64(1<<33),
				"req_capacity", 1<<20, "resp_capacity", 1<<16, "heartbeat_ms", 250)},
		{Ping{Seq: 1 << 40}, libMap(t, "type", "ping", "seq", uint64(1<<40))},
		{Pong{Seq: 0}, libMap(t, "type", "pong", "seq", 0)},
		{Drain{DeadlineMS: 30000}, libMap(t, "type", "drain", "deadline_ms", 30000)},
		{Bye{Reason: strings.Repeat("r", 40)}, libMap(t, "type", "bye", "reason", strings.Repeat("r", 40))},
		{&Error{Code: "conflict", Message: "é"}, libMap(t, "type", "error", "code", "conflict", "message", "é")},
	}
	for _, c := range cases {
		b, err := AppendMessage([]byte("x"), c.msg)
		if err != nil {
			t.Fatalf("%s: %v", c.msg.Type(), err)
		}
		if !bytes.Equal(b[1:], c.lib) {
			t.Fatalf("%s: encoding differs from vmihailenco/msgpack's\n got %x\nwant %x", c.msg.Type(), b[1:], []byte(c.lib))
		}
		m, err := DecodeMessage(c.lib)
		if err != nil {
			t.Fatalf("%s: %v", c.msg.Type(), err)
		}
		if h, ok := m.(Hello); ok && h.Routes[1].Options != nil && len(h.Routes[1].Options) == 0 {
			h.Routes[1].Options = nil // an empty map encodes as a nil one
			m = h
		}
		if !reflect.DeepEqual(m, c.msg) {
			t.Fatalf("%s: decoded %#v\nwant %#v", c.msg.Type(), m, c.msg)
		}
	}
	// Encodings the library writes and this package never does decode too:
	// float32, fixed-width integers, str8 for a short string, ext values in a skipped key.
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	_ = e.EncodeMapLen(4)
	_ = e.EncodeString("type")
	_ = e.EncodeString("ping")
	_ = e.EncodeString("seq")
	_ = e.EncodeUint64(5) // 0xcf, 8 bytes
	_ = e.EncodeString("f")
	_ = e.EncodeFloat32(1.5)
	_ = e.EncodeString("ext")
	_ = e.EncodeExtHeader(9, 3)
	buf.Write([]byte{1, 2, 3})
	m, err := DecodeMessage(buf.Bytes())
	if err != nil || m != (Ping{Seq: 5}) {
		t.Fatalf("fixed-width seq, float32 and ext skipped: %#v, %v", m, err)
	}
	route := libEncode(t, false, "method", "GET", "path", "/", "kind", "http", "options", map[string]any{"f": float32(0.5), "i": int8(-3), "u": uint32(1)})
	hb := libEncode(t, false, "type", "hello", "version", int8(1), "pid", uint16(9), "app", "a", "token", "", "routes", []msgpack.RawMessage{route})
	if !bytes.Contains(hb, []byte{0xd0, 0x01}) {
		t.Fatalf("reference did not write a fixed-width int8: %x", []byte(hb))
	}
	m, err = DecodeMessage(hb)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(Hello).Routes[0].Options; !reflect.DeepEqual(got, map[string]any{"f": 0.5, "i": int64(-3), "u": int64(1)}) {
		t.Fatalf("options %#v", got)
	}
}

// Every proper prefix of an encoded message is a clean ErrTruncated, never a panic
// or another error.
func TestDecodeMessageTruncated(t *testing.T) {
	for _, typ := range []string{TypeHello, TypeWelcome, TypePing, TypePong, TypeDrain, TypeBye, TypeError} {
		for _, b := range controlSeeds(t, typ) {
			for i := 0; i < len(b); i++ {
				if _, err := DecodeMessage(b[:i]); !errors.Is(err, ErrTruncated) {
					t.Fatalf("%s: prefix %d of %d: got %v, want ErrTruncated", typ, i, len(b), err)
				}
			}
		}
	}
}

// The golden hello (three routes with options), decoded and encoded.
func BenchmarkDecodeHello(b *testing.B) {
	m, err := AppendMessage(nil, goldenVectors()[0].msg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMessage(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendHello(b *testing.B) {
	h := goldenVectors()[0].msg
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AppendMessage(buf[:0], h); err != nil {
			b.Fatal(err)
		}
	}
}
