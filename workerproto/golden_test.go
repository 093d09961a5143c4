package workerproto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden vectors and fuzz seed corpora from the encoders")

// goldenVector is one testdata/*.hex file: either a control frame (msg) or a
// data-plane payload (one of the others).
type goldenVector struct {
	file    string
	comment string
	msg     Message
	req     *RequestHead
	resp    *ResponseHead
	errp    *ErrorPayload
	win     *WindowPayload
	whole   *wholeResponse
	hints   *EarlyHints
	trail   *RespTrailers
	rfile   *RespFile
	wsOpen  *WSOpen
	wsAcc   *WSAccept
	wsClose *WSClose
}

// wholeResponse is a RESP payload: a head and the whole body.
type wholeResponse struct {
	head ResponseHead
	body []byte
}

func (w *wholeResponse) Append(b []byte) ([]byte, error) {
	b, err := w.head.Append(b)
	return append(b, w.body...), err
}

// goldenVectors are the source of the files in testdata/ (go test -run TestGolden -update).
func goldenVectors() []goldenVector {
	return []goldenVector{
		{file: "hello.hex", comment: "hello: worker -> gateway, three routes", msg: Hello{
			Version: 1, PID: 4242, App: "shop-api", Token: "s3cret",
			Routes: []Route{
				{Method: "GET", Path: "/users/{id:int}", Kind: "http", Options: map[string]any{
					"name": "user", "roles": []any{"admin", "staff"}, "timeout_ms": int64(2500)}},
				{Method: "POST", Path: "/users", Kind: "http", Options: map[string]any{}},
				{Method: "*", Path: "/ws/chat", Kind: "ws", Options: map[string]any{"name": "chat", "http": true}},
			},
		}},
		{file: "welcome.hex", comment: "welcome: gateway -> worker (sent with 3 fds), 1 MiB rings", msg: Welcome{
			Version: 1, WorkerID: 7, Epoch: 0x1122334455667788,
			SegmentSize: 4096 + 1024 + 1<<20 + 1024 + 1<<20, ReqCapacity: 1 << 20, RespCapacity: 1 << 20,
			HeartbeatMS: 100,
		}},
		{file: "ping.hex", comment: "ping: seq 300", msg: Ping{Seq: 300}},
		{file: "pong.hex", comment: "pong: seq 300", msg: Pong{Seq: 300}},
		{file: "drain.hex", comment: "drain: 30 s", msg: Drain{DeadlineMS: 30000}},
		{file: "bye.hex", comment: "bye", msg: Bye{Reason: "shutdown"}},
		{file: "error.hex", comment: "error: manifest refused", msg: &Error{
			Code: "manifest", Message: "workerproto: route 1 (POST /users): duplicate of route 0"}},
		{file: "req_head.hex", comment: "REQ_HEAD payload (frame type 16); a header value with non-ASCII bytes", req: &RequestHead{
			Method: "POST", Path: "/users/42/caf%C3%A9", Query: "x=1&y=%20",
			Headers: []Header{
				{Name: []byte("host"), Value: []byte("example.com")},
				{Name: []byte("content-type"), Value: []byte("application/json")},
				{Name: []byte("x-name"), Value: []byte("caf\xc3\xa9 \xff\xfe")},
			},
			Route:       "/users/{id:int}/{name}",
			Params:      []Param{{Name: "id", Value: "42"}, {Name: "name", Value: "café"}},
			HTTPVersion: "1.1", Scheme: "https", Client: "192.0.2.7:51234",
			RequestID: "01J9Z6T8K3", Body: 17, TimeoutMS: 30000,
		}},
		{file: "resp_head.hex", comment: "RESP_HEAD payload (frame type 32)", resp: &ResponseHead{
			Status: 201,
			Headers: []Header{
				{Name: []byte("content-type"), Value: []byte("application/json")},
				{Name: []byte("set-cookie"), Value: []byte("a=1; Path=/")},
				{Name: []byte("set-cookie"), Value: []byte("b=2")},
			},
			Body: 17,
		}},
		{file: "error_payload.hex", comment: "ERROR payload (frame type 49)", errp: &ErrorPayload{
			Status: 504, Message: "handler timed out"}},
		{file: "window_payload.hex", comment: "WINDOW payload (frame type 50): 256 KiB more", win: &WindowPayload{Grant: 256 << 10}},
		{file: "resp_payload.hex", comment: "RESP payload (frame type 34): a RESP_HEAD and the whole body", whole: &wholeResponse{
			head: ResponseHead{Status: 200, Headers: []Header{{Name: []byte("content-type"), Value: []byte("text/plain; charset=utf-8")}}, Body: 13},
			body: []byte("Hello, World!"),
		}},
		{file: "req_head_cert.hex", comment: "REQ_HEAD payload (frame type 16) with its 13th element, a verified client certificate", req: &RequestHead{
			Method: "GET", Path: "/me", Headers: []Header{{Name: []byte("host"), Value: []byte("api.example.com")}},
			Route: "/me", HTTPVersion: "2", Scheme: "https", Client: "[2001:db8::7]:443",
			RequestID: "01J9Z6T8K4", Body: 0, TimeoutMS: 5000,
			ClientCert: &ClientCert{
				Subject:     "CN=alice,OU=dev,O=Example Corp",
				SANs:        []string{"alice.example.com", "alice@example.com", "spiffe://example.com/alice", "192.0.2.9"},
				Fingerprint: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			},
		}},
		{file: "req_head_auth.hex", comment: "REQ_HEAD payload (frame type 16) with its 14th element, a verified bearer token (no client certificate: the 13th is nil)", req: &RequestHead{
			Method: "GET", Path: "/admin/reports", Query: "year=2026", Headers: []Header{{Name: []byte("host"), Value: []byte("api.example.com")}},
			Route: "/admin/reports", HTTPVersion: "1.1", Scheme: "https", Client: "192.0.2.10:50211",
			RequestID: "01J9Z6T8K5", Body: 0, TimeoutMS: 30000,
			Auth: &Auth{
				Subject: "alice",
				Claims:  []byte(`{"sub":"alice","iss":"https://id.example.com","exp":1893456000,"roles":["admin"],"scope":"reports:read reports:write"}`),
				Roles:   []string{"admin"},
				Scopes:  []string{"reports:read", "reports:write"},
			},
		}},
		{file: "early_hints.hex", comment: "EARLY_HINTS payload (frame type 35): two Link fields", hints: &EarlyHints{
			Headers: []Header{
				{Name: []byte("link"), Value: []byte("</style.css>; rel=preload; as=style")},
				{Name: []byte("link"), Value: []byte("</app.js>; rel=preload; as=script")},
			},
		}},
		{file: "hello_grpc.hex", comment: "hello: worker -> gateway, a gRPC route and two file descriptors", msg: Hello{
			Version: 1, PID: 4243, App: "greeter", Token: "",
			Routes: []Route{
				{Method: "POST", Path: "/helloworld.Greeter/SayHello", Kind: "grpc", Options: map[string]any{"timeout_ms": int64(5000)}},
			},
			// Stand-ins for serialized FileDescriptorProtos: the gateway
			// carries them as opaque bytes (field 1, name, of each).
			Descriptors: [][]byte{[]byte("\x0a\x10helloworld.proto"), []byte("\x0a\x1fgoogle/protobuf/timestamp.proto")},
		}},
		{file: "resp_trailers.hex", comment: "RESP_TRAILERS payload (frame type 96): a gRPC status and trailing metadata, one of it binary", trail: &RespTrailers{
			Headers: []Header{
				{Name: []byte("grpc-status"), Value: []byte("5")},
				{Name: []byte("grpc-message"), Value: []byte("user 42 not found: caf%C3%A9")},
				{Name: []byte("x-trace-bin"), Value: []byte("AAECAw")},
			},
		}},
		{file: "resp_file.hex", comment: "RESP_FILE payload (frame type 36): a file the gateway sends itself", rfile: &RespFile{
			Status: 200,
			Headers: []Header{
				{Name: []byte("content-type"), Value: []byte("application/pdf")},
				{Name: []byte("content-disposition"), Value: []byte("attachment; filename=\"report.pdf\"")},
			},
			Path: "/srv/files/report.pdf",
		}},
		{file: "ws_open.hex", comment: "WS_OPEN payload (frame type 80): the upgrade request, not resumed, a 64 KiB window", wsOpen: &WSOpen{
			Head: RequestHead{
				Method: "GET", Path: "/ws/rooms/blue", Query: "token=abc",
				Headers: []Header{
					{Name: []byte("host"), Value: []byte("chat.example.com")},
					{Name: []byte("upgrade"), Value: []byte("websocket")},
					{Name: []byte("sec-websocket-protocol"), Value: []byte("chat.v2, chat.v1")},
				},
				Route: "/ws/rooms/{room}", Params: []Param{{Name: "room", Value: "blue"}},
				HTTPVersion: "1.1", Scheme: "https", Client: "198.51.100.4:40000",
				RequestID: "01J9Z6T8K5", Body: 0, TimeoutMS: 0,
			},
			Resumed: false, Window: 64 << 10,
		}},
		{file: "ws_accept.hex", comment: "WS_ACCEPT payload (frame type 81): subprotocol chat.v2 and a cookie", wsAcc: &WSAccept{
			Subprotocol: "chat.v2",
			Headers:     []Header{{Name: []byte("set-cookie"), Value: []byte("seen=1; Path=/")}},
		}},
		{file: "ws_close.hex", comment: "WS_CLOSE payload (frame type 84): 4001 with a reason", wsClose: &WSClose{Code: 4001, Reason: "room closed"}},
	}
}

// encode returns the vector's bytes.
func (v goldenVector) encode() ([]byte, error) {
	switch {
	case v.msg != nil:
		return AppendFrame(nil, v.msg)
	case v.req != nil:
		return v.req.Append(nil)
	case v.resp != nil:
		return v.resp.Append(nil)
	case v.win != nil:
		return v.win.Append(nil)
	case v.whole != nil:
		return v.whole.Append(nil)
	case v.hints != nil:
		return v.hints.Append(nil)
	case v.trail != nil:
		return v.trail.Append(nil)
	case v.rfile != nil:
		return v.rfile.Append(nil)
	case v.wsOpen != nil:
		return v.wsOpen.Append(nil)
	case v.wsAcc != nil:
		return v.wsAcc.Append(nil)
	case v.wsClose != nil:
		return v.wsClose.Append(nil)
	default:
		return v.errp.Append(nil)
	}
}

func (v goldenVector) kind() string {
	switch {
	case v.msg != nil:
		return "frame"
	case v.req != nil:
		return "req_head"
	case v.resp != nil:
		return "resp_head"
	case v.win != nil:
		return "window_payload"
	case v.whole != nil:
		return "resp_payload"
	case v.hints != nil:
		return "early_hints"
	case v.trail != nil:
		return "resp_trailers"
	case v.rfile != nil:
		return "resp_file"
	case v.wsOpen != nil:
		return "ws_open"
	case v.wsAcc != nil:
		return "ws_accept"
	case v.wsClose != nil:
		return "ws_close"
	}
	return "error_payload"
}

// jsonFields gives the JSON form of a decoded value, as vectors.json holds it: control
// messages as their map (keys in wire order), payloads as objects named after the
// spec's element names, bin values as lower-case hex, header and param lists as
// [name, value] pairs.
func jsonFields(kind string, b []byte) (any, error) {
	switch kind {
	case "frame":
		m, n, err := ParseFrame(b)
		if err != nil {
			return nil, err
		}
		if n != len(b) {
			return nil, fmt.Errorf("frame took %d of %d bytes", n, len(b))
		}
		return messageJSON(m), nil
	case "req_head":
		h, err := DecodeRequestHead(b)
		if err != nil {
			return nil, err
		}
		return headJSON(h), nil
	case "ws_open":
		o, err := DecodeWSOpen(b)
		if err != nil {
			return nil, err
		}
		return ordered{{"head", headJSON(o.Head)}, {"resumed", o.Resumed}, {"window", o.Window}}, nil
	case "ws_accept":
		a, err := DecodeWSAccept(b)
		if err != nil {
			return nil, err
		}
		return ordered{{"subprotocol", a.Subprotocol}, {"headers", headersJSON(a.Headers)}}, nil
	case "ws_close":
		c, err := DecodeWSClose(b)
		if err != nil {
			return nil, err
		}
		return ordered{{"code", c.Code}, {"reason", c.Reason}}, nil
	case "resp_file":
		f, err := DecodeRespFile(b)
		if err != nil {
			return nil, err
		}
		return ordered{{"status", f.Status}, {"headers", headersJSON(f.Headers)}, {"path", f.Path}}, nil
	case "early_hints":
		var h EarlyHints
		if err := h.Decode(b); err != nil {
			return nil, err
		}
		hs := [][]string{}
		for _, f := range h.Headers {
			hs = append(hs, []string{string(f.Name), hex.EncodeToString(f.Value)})
		}
		return ordered{{"headers", hs}}, nil
	case "resp_trailers":
		var h RespTrailers
		if err := h.Decode(b); err != nil {
			return nil, err
		}
		return ordered{{"headers", headersJSON(h.Headers)}}, nil
	case "resp_head":
		var h ResponseHead
		if err := h.Decode(b); err != nil {
			return nil, err
		}
		hs := [][]string{}
		for _, f := range h.Headers {
			hs = append(hs, []string{string(f.Name), hex.EncodeToString(f.Value)})
		}
		return ordered{{"status", h.Status}, {"headers", hs}, {"body", h.Body}}, nil
	case "error_payload":
		e, err := DecodeErrorPayload(b)
		if err != nil {
			return nil, err
		}
		return ordered{{"status", e.Status}, {"message", e.Message}}, nil
	case "window_payload":
		w, err := DecodeWindowPayload(b)
		if err != nil {
			return nil, err
		}
		return ordered{{"grant", w.Grant}}, nil
	case "resp_payload":
		var h ResponseHead
		body, err := h.DecodeWithBody(b)
		if err != nil {
			return nil, err
		}
		hs := [][]string{}
		for _, f := range h.Headers {
			hs = append(hs, []string{string(f.Name), hex.EncodeToString(f.Value)})
		}
		return ordered{{"status", h.Status}, {"headers", hs}, {"body", h.Body}, {"content", hex.EncodeToString(body)}}, nil
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

// headJSON is a REQ_HEAD's JSON form in vectors.json.
func headJSON(h RequestHead) ordered {
	hs := [][]string{}
	for _, f := range h.Headers {
		hs = append(hs, []string{string(f.Name), hex.EncodeToString(f.Value)})
	}
	ps := [][]string{}
	for _, p := range h.Params {
		ps = append(ps, []string{p.Name, p.Value})
	}
	o := ordered{{"method", h.Method}, {"path", h.Path}, {"query", h.Query}, {"headers", hs},
		{"route", h.Route}, {"params", ps}, {"http_version", h.HTTPVersion}, {"scheme", h.Scheme},
		{"client", h.Client}, {"request_id", h.RequestID}, {"body", h.Body}, {"timeout_ms", h.TimeoutMS}}
	if cc := h.ClientCert; cc != nil {
		sans := append([]string{}, cc.SANs...)
		o = append(o, kv{"client_cert", ordered{{"subject", cc.Subject}, {"sans", sans}, {"fingerprint", cc.Fingerprint}}})
	}
	if a := h.Auth; a != nil {
		roles := append([]string{}, a.Roles...)
		scopes := append([]string{}, a.Scopes...)
		o = append(o, kv{"auth", ordered{{"subject", a.Subject}, {"claims", hex.EncodeToString(a.Claims)},
			{"roles", roles}, {"scopes", scopes}}})
	}
	return o
}

// headersJSON is a header list's JSON form: [name, hex value] pairs.
func headersJSON(fields []Header) [][]string {
	hs := [][]string{}
	for _, f := range fields {
		hs = append(hs, []string{string(f.Name), hex.EncodeToString(f.Value)})
	}
	return hs
}

func messageJSON(m Message) ordered {
	switch m := m.(type) {
	case Hello:
		routes := []ordered{}
		for _, r := range m.Routes {
			routes = append(routes, ordered{{"method", r.Method}, {"path", r.Path}, {"kind", r.Kind}, {"options", anyJSON(r.Options)}})
		}
		o := ordered{{"type", "hello"}, {"version", m.Version}, {"pid", m.PID}, {"app", m.App}, {"token", m.Token}, {"routes", routes}}
		if len(m.Descriptors) > 0 {
			ds := []string{}
			for _, d := range m.Descriptors {
				ds = append(ds, hex.EncodeToString(d))
			}
			o = append(o, kv{"descriptors", ds})
		}
		return o
	case Welcome:
		return ordered{{"type", "welcome"}, {"version", m.Version}, {"worker_id", m.WorkerID}, {"epoch", m.Epoch},
			{"segment_size", m.SegmentSize}, {"req_capacity", m.ReqCapacity}, {"resp_capacity", m.RespCapacity}, {"heartbeat_ms", m.HeartbeatMS}}
	case Ping:
		return ordered{{"type", "ping"}, {"seq", m.Seq}}
	case Pong:
		return ordered{{"type", "pong"}, {"seq", m.Seq}}
	case Drain:
		return ordered{{"type", "drain"}, {"deadline_ms", m.DeadlineMS}}
	case Bye:
		return ordered{{"type", "bye"}, {"reason", m.Reason}}
	case *Error:
		return ordered{{"type", "error"}, {"code", m.Code}, {"message", m.Message}}
	}
	panic(fmt.Sprintf("unknown message %T", m))
}

// anyJSON converts an option value; maps get sorted keys (the wire order Go writes).
func anyJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sortStrings(keys)
		o := ordered{}
		for _, k := range keys {
			o = append(o, kv{k, anyJSON(v[k])})
		}
		return o
	case []any:
		out := []any{}
		for _, x := range v {
			out = append(out, anyJSON(x))
		}
		return out
	case []byte:
		return hex.EncodeToString(v)
	}
	return v
}

type kv struct {
	k string
	v any
}

// ordered is a JSON object that keeps its key order.
type ordered []kv

func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// normalize round-trips a JSON-able value through encoding/json with numbers kept
// exact, so that values built in Go and values read from vectors.json compare equal.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// readHex reads a testdata .hex file: lines starting with '#' are comments,
// whitespace is ignored, the rest is lower-case hex.
func readHex(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var digits strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, r := range line {
			if r == ' ' || r == '\t' || r == '\r' {
				continue
			}
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				return nil, fmt.Errorf("%s: %q is not lower-case hex", path, r)
			}
			digits.WriteRune(r)
		}
	}
	return hex.DecodeString(digits.String())
}

func writeHex(path, comment string, b []byte) error {
	var s strings.Builder
	fmt.Fprintf(&s, "# %s\n# %d bytes; see README.md for the format\n", comment, len(b))
	for i := 0; i < len(b); i += 32 {
		s.WriteString(hex.EncodeToString(b[i:min(i+32, len(b))]))
		s.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(s.String()), 0o644)
}

type vectorsFile struct {
	Format  int           `json:"format"`
	Vectors []vectorEntry `json:"vectors"`
}

type vectorEntry struct {
	File   string          `json:"file"`
	Kind   string          `json:"kind"`
	Fields json.RawMessage `json:"fields"`
}

func TestGolden(t *testing.T) {
	vs := goldenVectors()
	if *update {
		out := vectorsFile{Format: 1}
		for _, v := range vs {
			b, err := v.encode()
			if err != nil {
				t.Fatalf("%s: %v", v.file, err)
			}
			if err := writeHex(filepath.Join("testdata", v.file), v.comment, b); err != nil {
				t.Fatal(err)
			}
			f, err := jsonFields(v.kind(), b)
			if err != nil {
				t.Fatalf("%s: %v", v.file, err)
			}
			raw, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			out.Vectors = append(out.Vectors, vectorEntry{File: v.file, Kind: v.kind(), Fields: raw})
		}
		js, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "vectors.json"), append(js, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	raw, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file vectorsFile
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) != len(vs) {
		t.Fatalf("vectors.json has %d vectors, the test defines %d (run with -update)", len(file.Vectors), len(vs))
	}
	for i, e := range file.Vectors {
		t.Run(e.File, func(t *testing.T) {
			b, err := readHex(filepath.Join("testdata", e.File))
			if err != nil {
				t.Fatal(err)
			}
			got, err := jsonFields(e.Kind, b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			var want any
			d := json.NewDecoder(bytes.NewReader(e.Fields))
			d.UseNumber()
			if err := d.Decode(&want); err != nil {
				t.Fatal(err)
			}
			if g := normalize(t, got); !reflect.DeepEqual(g, want) {
				t.Fatalf("decoded fields differ from vectors.json\n got: %v\nwant: %v", g, want)
			}
			// Re-encode what was decoded and compare byte for byte.
			re, err := reencode(e.Kind, b)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.Equal(re, b) {
				t.Fatalf("re-encoding differs\n got: %x\nwant: %x", re, b)
			}
			// And the test's own value encodes to the file.
			enc, err := vs[i].encode()
			if err != nil || !bytes.Equal(enc, b) || vs[i].file != e.File {
				t.Fatalf("%s: encoder output differs from the file (run with -update): %v", vs[i].file, err)
			}
		})
	}
}

func reencode(kind string, b []byte) ([]byte, error) {
	switch kind {
	case "frame":
		m, _, err := ParseFrame(b)
		if err != nil {
			return nil, err
		}
		return AppendFrame(nil, m)
	case "req_head":
		h, err := DecodeRequestHead(b)
		if err != nil {
			return nil, err
		}
		return h.Append(nil)
	case "resp_head":
		var h ResponseHead
		if err := h.Decode(b); err != nil {
			return nil, err
		}
		return h.Append(nil)
	case "window_payload":
		w, err := DecodeWindowPayload(b)
		if err != nil {
			return nil, err
		}
		return w.Append(nil)
	case "resp_payload":
		var w wholeResponse
		body, err := w.head.DecodeWithBody(b)
		if err != nil {
			return nil, err
		}
		w.body = body
		return w.Append(nil)
	case "early_hints":
		var h EarlyHints
		if err := h.Decode(b); err != nil {
			return nil, err
		}
		return h.Append(nil)
	case "resp_trailers":
		var h RespTrailers
		if err := h.Decode(b); err != nil {
			return nil, err
		}
		return h.Append(nil)
	case "ws_open":
		o, err := DecodeWSOpen(b)
		if err != nil {
			return nil, err
		}
		return o.Append(nil)
	case "ws_accept":
		a, err := DecodeWSAccept(b)
		if err != nil {
			return nil, err
		}
		return a.Append(nil)
	case "ws_close":
		c, err := DecodeWSClose(b)
		if err != nil {
			return nil, err
		}
		return c.Append(nil)
	case "resp_file":
		f, err := DecodeRespFile(b)
		if err != nil {
			return nil, err
		}
		return f.Append(nil)
	}
	e, err := DecodeErrorPayload(b)
	if err != nil {
		return nil, err
	}
	return e.Append(nil)
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
