package workerproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// frameOf wraps a map's bytes in a length prefix.
func frameOf(m []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(m)))
	return append(b, m...)
}

// mapBytes encodes v (a map built with ordered keys) with vmihailenco/msgpack.
func mapBytes(t testing.TB, kvs ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
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

func TestRoundTripMessages(t *testing.T) {
	for _, v := range goldenVectors() {
		if v.msg == nil {
			continue
		}
		b, err := AppendFrame([]byte("prefix"), v.msg)
		if err != nil {
			t.Fatal(err)
		}
		m, n, err := ParseFrame(b[6:])
		if err != nil || n != len(b)-6 {
			t.Fatalf("%s: n=%d err=%v", v.file, n, err)
		}
		if !reflect.DeepEqual(normalize(t, messageJSON(m)), normalize(t, messageJSON(v.msg))) {
			t.Fatalf("%s: round trip changed the message: %#v", v.file, m)
		}
		// ReadMessage over a stream, and WriteMessage.
		var w bytes.Buffer
		if err := WriteMessage(&w, v.msg); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.Bytes(), b[6:]) {
			t.Fatalf("%s: WriteMessage differs from AppendFrame", v.file)
		}
		if _, err := ReadMessage(&w); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadMessage(&w); err != io.EOF {
			t.Fatalf("empty stream: got %v, want io.EOF", err)
		}
	}
}

// Every proper prefix of a valid frame is "need more", never another error.
func TestParseFrameTruncated(t *testing.T) {
	for _, v := range goldenVectors() {
		if v.msg == nil {
			continue
		}
		b, _ := AppendFrame(nil, v.msg)
		for i := 0; i < len(b); i++ {
			if _, _, err := ParseFrame(b[:i]); !errors.Is(err, ErrTruncated) {
				t.Fatalf("%s: prefix %d: got %v, want ErrTruncated", v.file, i, err)
			}
			if _, err := ReadMessage(bytes.NewReader(b[:i])); i > 0 && !errors.Is(err, ErrTruncated) {
				t.Fatalf("%s: stream cut at %d: got %v, want ErrTruncated", v.file, i, err)
			}
		}
		// A frame whose length claims fewer bytes than the map holds.
		short := append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(short, uint32(len(b)-5))
		if _, _, err := ParseFrame(short); !errors.Is(err, ErrTruncated) {
			t.Fatalf("%s: short length: got %v", v.file, err)
		}
	}
}

func TestFrameErrors(t *testing.T) {
	ping := mapBytes(t, "type", "ping", "seq", 1)
	big := binary.LittleEndian.AppendUint32(nil, MaxFrame+1)
	cases := []struct {
		name string
		b    []byte
		want error
		text string
	}{
		{"zero length", []byte{0, 0, 0, 0}, ErrZeroLength, ""},
		{"too large", big, ErrFrameTooLarge, "1048577"},
		{"not a map", frameOf([]byte{0x91, 0x01}), ErrWrongType, "want map, got array"},
		{"unknown type", frameOf(mapBytes(t, "type", "hug")), ErrUnknownType, `"hug"`},
		{"no type", frameOf(mapBytes(t, "seq", 1)), ErrMissingKey, `"type"`},
		{"type not str", frameOf(mapBytes(t, "type", 5)), ErrWrongType, "want str, got int"},
		{"type is bin", frameOf(mapBytes(t, "type", []byte("ping"), "seq", 1)), ErrWrongType, "want str, got bin"},
		{"missing seq", frameOf(mapBytes(t, "type", "ping")), ErrMissingKey, `ping: missing key "seq"`},
		{"seq is str", frameOf(mapBytes(t, "type", "ping", "seq", "1")), ErrWrongType, `"seq": want int, got str`},
		{"seq negative", frameOf(mapBytes(t, "type", "pong", "seq", -1)), ErrBadValue, "negative"},
		{"seq float", frameOf(mapBytes(t, "type", "ping", "seq", 1.0)), ErrWrongType, "want int, got float"},
		{"trailing", frameOf(append(append([]byte(nil), ping...), 0xc0)), ErrTrailingBytes, ""},
		{"duplicate key", frameOf(mapBytes(t, "type", "ping", "seq", 1, "seq", 2)), ErrBadValue, "twice"},
		{"non-str key", frameOf(mapBytes(t, "type", "ping", 7, 1, "seq", 1)), ErrWrongType, "want str, got int"},
		{"invalid utf8", frameOf(mapBytes(t, "type", "bye", "reason", "\xff")), ErrBadValue, "UTF-8"},
		{"welcome epoch 0", frameOf(mapBytes(t, "type", "welcome", "version", 1, "worker_id", 1, "epoch", 0,
			"segment_size", 1, "req_capacity", 1, "resp_capacity", 1, "heartbeat_ms", 1)), ErrBadValue, "epoch is zero"},
		{"hello version 2", frameOf(mapBytes(t, "type", "hello", "version", 2, "future", true)), ErrVersion, "version 2"},
		{"drain negative", frameOf(mapBytes(t, "type", "drain", "deadline_ms", -5)), ErrBadValue, "-5 < 0"},
		{"error missing message", frameOf(mapBytes(t, "type", "error", "code", "auth")), ErrMissingKey, `"message"`},
		{"deep unknown key", frameOf(append(mapBytes(t, "type", "ping", "seq", 1)[:0:0],
			append([]byte{0x83, 0xa4, 't', 'y', 'p', 'e', 0xa4, 'p', 'i', 'n', 'g', 0xa3, 's', 'e', 'q', 0x01, 0xa1, 'x'},
				append(bytes.Repeat([]byte{0x91}, 100), 0xc0)...)...)), ErrLimit, "nested"},
		{"reserved code", frameOf([]byte{0x82, 0xa4, 't', 'y', 'p', 'e', 0xa4, 'p', 'i', 'n', 'g', 0xa1, 'x', 0xc1}), ErrMalformed, ""},
		{"ext value", frameOf([]byte{0x82, 0xa4, 't', 'y', 'p', 'e', 0xa3, 'b', 'y', 'e', 0xa6, 'r', 'e', 'a', 's', 'o', 'n', 0xd4, 1, 1}), ErrWrongType, "got ext"},
		{"huge array count", frameOf([]byte{0x82, 0xa4, 't', 'y', 'p', 'e', 0xa4, 'p', 'i', 'n', 'g', 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff}), ErrTruncated, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ParseFrame(c.b)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "workerproto: ") || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("error %q lacks the prefix or %q", err, c.text)
			}
		})
	}
}

// Unknown keys, in any position and of any type, are ignored; keys may come in any
// order.
func TestUnknownKeysIgnored(t *testing.T) {
	b := frameOf(mapBytes(t, "future", map[string]any{"a": []any{1, "x", nil}}, "seq", 9, "type", "pong", "z", []byte{1}))
	m, _, err := ParseFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if m != (Pong{Seq: 9}) {
		t.Fatalf("got %#v", m)
	}
}

func TestDecodeManifestErrors(t *testing.T) {
	route := func(kvs ...any) msgpack.RawMessage { return mapBytes(t, kvs...) }
	hello := func(routes ...any) []byte {
		return frameOf(mapBytes(t, "type", "hello", "version", 1, "pid", 10, "app", "a", "token", "", "routes", routes))
	}
	ok := route("method", "GET", "path", "/", "kind", "http", "options", map[string]any{})
	cases := []struct {
		name string
		b    []byte
		text string
	}{
		{"method not str", hello(ok, route("method", 1, "path", "/x", "kind", "http", "options", map[string]any{})),
			`workerproto: route 1: wrong MessagePack type "method": want str, got int`},
		{"missing kind", hello(route("method", "GET", "path", "/a", "options", map[string]any{})),
			`workerproto: route 0 (GET /a): missing key "kind"`},
		{"options not map", hello(route("method", "GET", "path", "/a", "kind", "http", "options", []any{})),
			`workerproto: route 0 (GET /a): wrong MessagePack type "options": want map, got array`},
		{"routes not array", frameOf(mapBytes(t, "type", "hello", "version", 1, "pid", 10, "app", "a", "token", "", "routes", "x")),
			`workerproto: manifest: wrong MessagePack type "routes": want array, got str`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ParseFrame(c.b)
			var me *ManifestError
			if !errors.Is(err, ErrManifest) || !errors.As(err, &me) {
				t.Fatalf("got %v, want a ManifestError", err)
			}
			if err.Error() != c.text {
				t.Fatalf("message\n got: %s\nwant: %s", err, c.text)
			}
			if ErrorCode(err) != CodeManifest {
				t.Fatalf("code %q", ErrorCode(err))
			}
		})
	}
	// More than MaxRoutes routes is refused before they are read.
	many := make([]any, MaxRoutes+1)
	for i := range many {
		many[i] = nil
	}
	if _, _, err := ParseFrame(hello(many...)); !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), "4097 routes") {
		t.Fatalf("too many routes: %v", err)
	}
}

func TestHelloDescriptors(t *testing.T) {
	base := []any{"type", "hello", "version", 1, "pid", 10, "app", "a", "token", "", "routes", []any{}}
	// Absent: none, and a hello without them encodes without the key.
	m, _, err := ParseFrame(frameOf(mapBytes(t, base...)))
	if err != nil || m.(Hello).Descriptors != nil {
		t.Fatalf("absent: %v %#v", err, m)
	}
	if b, err := AppendMessage(nil, m); err != nil || bytes.Contains(b, []byte("descriptors")) {
		t.Fatalf("encoded an absent key: %q %v", b, err)
	}
	// Present: decoded as copies, in order.
	raw := frameOf(mapBytes(t, append(base, "descriptors", []any{[]byte("\x0a\x01a"), []byte{}})...))
	m, _, err = ParseFrame(raw)
	if err != nil {
		t.Fatal(err)
	}
	d := m.(Hello).Descriptors
	if len(d) != 2 || string(d[0]) != "\x0a\x01a" || len(d[1]) != 0 {
		t.Fatalf("got %q", d)
	}
	raw[len(raw)-2] = 'X'
	if string(d[0]) != "\x0a\x01a" {
		t.Fatal("descriptors alias the frame")
	}
	for _, c := range []struct {
		v    any
		text string
	}{
		{"x", `"descriptors": want array, got str`},
		{[]any{"x"}, `"descriptors": want bin, got str`},
	} {
		_, _, err := ParseFrame(frameOf(mapBytes(t, append(base, "descriptors", c.v)...)))
		if err == nil || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%v: got %v, want %q", c.v, err, c.text)
		}
	}
	dup := frameOf(mapBytes(t, append(base, "descriptors", []any{}, "descriptors", []any{})...))
	if _, _, err := ParseFrame(dup); err == nil || !strings.Contains(err.Error(), "key appears twice") {
		t.Errorf("duplicate: %v", err)
	}
	// The control-frame limit bounds them.
	big := Hello{Version: 1, PID: 1, App: "a", Descriptors: [][]byte{make([]byte, MaxFrame)}}
	if _, err := AppendFrame(nil, big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("too large: %v", err)
	}
}

func validHello() Hello {
	return Hello{Version: 1, PID: 99, App: "app_1.x-y", Routes: []Route{
		{Method: "GET", Path: "/users/{id:int}", Kind: "http", Options: map[string]any{"roles": []any{"a"}, "timeout_ms": int64(5), "name": "n"}},
		{Method: "POST", Path: "/users", Kind: "http"},
		{Method: "*", Path: "/ws", Kind: "ws", Options: map[string]any{"http": true, "resumable": false}},
		{Method: "GET", Path: "/users", Kind: "grpc"},
	}}
}

func TestValidateHello(t *testing.T) {
	h := validHello()
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(h *Hello)
		want   error
		text   string
	}{
		{"version", func(h *Hello) { h.Version = 2 }, ErrVersion, "version 2"},
		{"pid", func(h *Hello) { h.PID = 0 }, ErrProtocol, "pid 0"},
		{"app empty", func(h *Hello) { h.App = "" }, ErrProtocol, "app name of 0 bytes"},
		{"app long", func(h *Hello) { h.App = strings.Repeat("a", 65) }, ErrProtocol, "65 bytes"},
		{"app charset", func(h *Hello) { h.App = "a/b" }, ErrProtocol, `app name "a/b": byte 1`},
		{"duplicate", func(h *Hello) { h.Routes = append(h.Routes, Route{Method: "POST", Path: "/users", Kind: "ws"}) },
			ErrManifest, "workerproto: route 4 (POST /users): duplicate of route 1"},
		{"method", func(h *Hello) { h.Routes[2].Method = "get" }, ErrManifest, `workerproto: route 2 (get /ws): method "get" is not one of`},
		{"path slash", func(h *Hello) { h.Routes[1].Path = "users" }, ErrManifest, "workerproto: route 1 (POST users): path does not start with '/'"},
		{"path empty", func(h *Hello) { h.Routes[1].Path = "" }, ErrManifest, "route 1 (POST ): path does not start"},
		{"path long", func(h *Hello) { h.Routes[0].Path = "/" + strings.Repeat("a", 2048) }, ErrManifest, "path of 2049 bytes, at most 2048"},
		{"kind", func(h *Hello) { h.Routes[3].Kind = "udp" }, ErrManifest, `route 3 (GET /users): kind "udp" is not one of http ws grpc`},
		{"option name", func(h *Hello) { h.Routes[0].Options["name"] = int64(1) }, ErrManifest, "option name is int64, want string"},
		{"option timeout", func(h *Hello) { h.Routes[0].Options["timeout_ms"] = "5" }, ErrManifest, "option timeout_ms is string"},
		{"option roles", func(h *Hello) { h.Routes[0].Options["roles"] = []any{"a", int64(1)} }, ErrManifest, "option roles[1] is int64"},
		{"option scopes", func(h *Hello) { h.Routes[0].Options["scopes"] = "read" }, ErrManifest, "option scopes is string, want array of strings"},
		{"option auth", func(h *Hello) { h.Routes[0].Options["auth"] = "yes" }, ErrManifest, "option auth is string, want bool"},
		{"option http", func(h *Hello) { h.Routes[2].Options["http"] = int64(1) }, ErrManifest, "route 2 (* /ws): option http is int64, want bool"},
		{"option http off ws", func(h *Hello) { h.Routes[1].Options = map[string]any{"http": false} }, ErrManifest,
			"route 1 (POST /users): option http is for a ws route, not a http one"},
		{"option rate_limit", func(h *Hello) { h.Routes[0].Options["rate_limit"] = int64(5) }, ErrManifest, "option rate_limit is int64, want string"},
		{"option cors true", func(h *Hello) { h.Routes[0].Options["cors"] = true }, ErrManifest, "option cors is true, want false or a map"},
		{"option security_headers", func(h *Hello) { h.Routes[0].Options["security_headers"] = []any{} }, ErrManifest, "option security_headers is []interface {}, want false or a map"},
		{"too many", func(h *Hello) { h.Routes = make([]Route, MaxRoutes+1) }, ErrManifest, "workerproto: manifest: 4097 routes, at most 4096 allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := validHello()
			c.mutate(&h)
			err := h.Validate()
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("got %v, want %v containing %q", err, c.want, c.text)
			}
		})
	}
	// Exactly MaxRoutes distinct routes are fine.
	h = Hello{Version: 1, PID: 1, App: "a"}
	for i := 0; i < MaxRoutes; i++ {
		h.Routes = append(h.Routes, Route{Method: "GET", Path: "/r/" + strconv.Itoa(i), Kind: "http"})
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := AppendFrame(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ParseFrame(b); err != nil {
		t.Fatal(err)
	}
}

func TestValidateWelcome(t *testing.T) {
	ok := goldenVectors()[1].msg.(Welcome)
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(w *Welcome){
		"version":   func(w *Welcome) { w.Version = 3 },
		"epoch":     func(w *Welcome) { w.Epoch = 0 },
		"req pow2":  func(w *Welcome) { w.ReqCapacity = 5000 },
		"resp big":  func(w *Welcome) { w.RespCapacity = 2 << 30 },
		"resp tiny": func(w *Welcome) { w.RespCapacity = 2048 },
		"size":      func(w *Welcome) { w.SegmentSize++ },
		"heartbeat": func(w *Welcome) { w.HeartbeatMS = 0 },
	} {
		w := ok
		mut(&w)
		if err := w.Validate(); err == nil || !strings.HasPrefix(err.Error(), "workerproto: ") {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := AppendFrame(nil, Bye{Reason: "\xff"}); !errors.Is(err, ErrBadValue) {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	h := validHello()
	h.Routes[0].Options["bad"] = struct{}{}
	if _, err := AppendFrame(nil, h); !errors.Is(err, ErrBadValue) {
		t.Fatalf("bad option type: %v", err)
	}
	if _, err := AppendFrame(nil, Bye{Reason: strings.Repeat("x", MaxFrame)}); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("too large: %v", err)
	}
}

func TestErrorCode(t *testing.T) {
	for err, want := range map[error]string{
		ErrVersion: "version", ErrAuth: "auth", ErrManifest: "manifest", ErrTruncated: "protocol",
		ErrUnexpectedFDs: "protocol", io.ErrClosedPipe: "internal",
		&ManifestError{Index: 1, Problem: "x"}: "manifest",
	} {
		if got := ErrorCode(err); got != want {
			t.Errorf("%v: %q, want %q", err, got, want)
		}
	}
}

// Options of every supported type survive a round trip with keys in sorted order.
func TestOptionsRoundTrip(t *testing.T) {
	opts := map[string]any{
		"z": nil, "b": true, "i": int64(-70000), "u": uint64(1 << 63), "f": 1.5, "s": "x",
		"bin": []byte{0, 1}, "l": []any{int64(1), "a", []any{}}, "m": map[string]any{"k": int64(3)},
	}
	h := Hello{Version: 1, PID: 1, App: "a", Routes: []Route{{Method: "GET", Path: "/", Kind: "http", Options: opts}}}
	b, err := AppendFrame(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := ParseFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(Hello).Routes[0].Options; !reflect.DeepEqual(got, opts) {
		t.Fatalf("got %#v", got)
	}
	b2, _ := AppendFrame(nil, m)
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
	r := m.(Hello).Routes[0]
	if r.Name() != "" || r.TimeoutMS() != 0 || r.Roles() != nil {
		t.Fatal("accessors on absent options")
	}
	r = goldenVectors()[0].msg.(Hello).Routes[0]
	if r.Name() != "user" || r.TimeoutMS() != 2500 || !reflect.DeepEqual(r.Roles(), []string{"admin", "staff"}) {
		t.Fatal("accessors")
	}
}
