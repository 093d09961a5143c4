package workerproto

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func sampleRequestHead() *RequestHead { return goldenVectors()[7].req }

func TestRequestHeadAppendAllocs(t *testing.T) {
	h := sampleRequestHead()
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(1000, func() {
		var err error
		buf, err = h.Append(buf[:0])
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("RequestHead.Append allocates %v times per call, want 0", allocs)
	}
}

func TestResponseHeadDecodeAllocs(t *testing.T) {
	b, _ := goldenVectors()[8].resp.Append(nil)
	var h ResponseHead
	if err := h.Decode(b); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := h.Decode(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ResponseHead.Decode allocates %v times per call on a reused head, want 0", allocs)
	}
}

// The hand-written encoder agrees with vmihailenco/msgpack, value for value and byte
// for byte, and Len is exact.
func TestRequestHeadMatchesLibrary(t *testing.T) {
	long := strings.Repeat("p", 70000)
	heads := []*RequestHead{
		sampleRequestHead(),
		{},
		{Method: "GET", Path: "/" + long, Query: strings.Repeat("q", 300), Body: -1, TimeoutMS: 1 << 40,
			Headers: make([]Header, 40), Params: make([]Param, 9)},
	}
	for i := range heads[2].Headers {
		heads[2].Headers[i] = Header{Name: []byte("x-big"), Value: bytes.Repeat([]byte{0xfe}, 70000*(i%2))}
	}
	for i, h := range heads {
		b, err := h.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != h.Len() {
			t.Fatalf("head %d: Len %d, encoding %d bytes", i, h.Len(), len(b))
		}
		var generic []any
		if err := msgpack.Unmarshal(b, &generic); err != nil {
			t.Fatal(err)
		}
		hs := make([]any, 0)
		for _, f := range h.Headers {
			hs = append(hs, string(f.Name), f.Value)
		}
		ps := make([]any, 0)
		for _, p := range h.Params {
			ps = append(ps, p.Name, p.Value)
		}
		want := []any{h.Method, h.Path, h.Query, hs, h.Route, ps, h.HTTPVersion, h.Scheme, h.Client, h.RequestID, h.Body, h.TimeoutMS}
		var lib bytes.Buffer
		enc := msgpack.NewEncoder(&lib)
		enc.UseCompactInts(true)
		if err := enc.Encode(want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(lib.Bytes(), b) {
			t.Fatalf("head %d: differs from vmihailenco/msgpack's encoding", i)
		}
		got, err := DecodeRequestHead(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normHead(&got), normHead(h)) {
			t.Fatalf("head %d: round trip\n got %#v\nwant %#v", i, got, *h)
		}
	}
}

func normHead(h *RequestHead) RequestHead {
	c := *h
	if len(c.Headers) == 0 {
		c.Headers = nil
	}
	if len(c.Params) == 0 {
		c.Params = nil
	}
	for i := range c.Headers {
		if len(c.Headers[i].Value) == 0 {
			c.Headers[i].Value = nil
		}
	}
	if c.ClientCert != nil && len(c.ClientCert.SANs) == 0 {
		cc := *c.ClientCert
		cc.SANs = nil
		c.ClientCert = &cc
	}
	return c
}

func TestRequestHeadAppendLowercases(t *testing.T) {
	h := RequestHead{Headers: []Header{{Name: []byte("Content-Type"), Value: []byte("x")}}}
	name := string(h.Headers[0].Name)
	b, err := h.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := DecodeRequestHead(b)
	if string(got.Headers[0].Name) != "content-type" || string(h.Headers[0].Name) != name {
		t.Fatalf("got %q; input changed to %q", got.Headers[0].Name, h.Headers[0].Name)
	}
	for _, bad := range []RequestHead{
		{Headers: []Header{{Name: []byte("a b")}}},
		{Headers: []Header{{Name: nil}}},
		{Path: "/\xff"},
		{Params: []Param{{Name: "x", Value: "\xc3"}}},
	} {
		if out, err := bad.Append([]byte("keep")); !errors.Is(err, ErrBadValue) || string(out) != "keep" {
			t.Fatalf("%+v: got %v, %q", bad, err, out)
		}
	}
}

func TestPayloadTruncated(t *testing.T) {
	for _, v := range goldenVectors() {
		if v.msg != nil {
			continue
		}
		b, _ := v.encode()
		for i := 0; i < len(b); i++ {
			var err error
			switch v.kind() {
			case "req_head":
				_, err = DecodeRequestHead(b[:i])
			case "resp_head":
				var h ResponseHead
				err = h.Decode(b[:i])
			case "window_payload":
				_, err = DecodeWindowPayload(b[:i])
			case "early_hints":
				var h EarlyHints
				err = h.Decode(b[:i])
			case "resp_trailers":
				var h RespTrailers
				err = h.Decode(b[:i])
			case "resp_payload":
				var h ResponseHead
				if _, err = h.DecodeWithBody(b[:i]); i >= len(b)-len(v.whole.body) && errors.Is(err, ErrBadValue) {
					continue // the head is whole: a short body is a length mismatch
				}
			case "resp_file":
				_, err = DecodeRespFile(b[:i])
			case "ws_open":
				_, err = DecodeWSOpen(b[:i])
			case "ws_accept":
				_, err = DecodeWSAccept(b[:i])
			case "ws_close":
				_, err = DecodeWSClose(b[:i])
			default:
				_, err = DecodeErrorPayload(b[:i])
			}
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("%s: prefix %d: got %v, want ErrTruncated", v.file, i, err)
			}
		}
		want := ErrTrailingBytes
		if v.whole != nil {
			want = ErrBadValue // one byte more than the head announced
		}
		if _, err := reencode(v.kind(), append(b, 0)); !errors.Is(err, want) {
			t.Fatalf("%s: trailing byte: %v", v.file, err)
		}
	}
}

func TestDecodeWithBody(t *testing.T) {
	head := func(body int64) []byte {
		b, err := (&ResponseHead{Status: 200, Body: body}).Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var h ResponseHead
	for _, c := range []struct {
		payload []byte
		body    string
		text    string
	}{
		{append(head(3), "abc"...), "abc", ""},
		{head(0), "", ""},
		{append(head(3), "ab"...), "", "head says 3 bytes, 2 follow"},
		{append(head(3), "abcd"...), "", "head says 3 bytes, 4 follow"},
		{append(head(-1), "abc"...), "", "head says -1 bytes, 3 follow"},
		{append([]byte{0x93, 0xcc}, "x"...), "", "truncated"},
		{make([]byte, MaxHead+1), "", "1048577 bytes > 1048576"},
	} {
		body, err := h.DecodeWithBody(c.payload)
		if c.text == "" {
			if err != nil || string(body) != c.body || h.Body != int64(len(c.body)) || h.Status != 200 {
				t.Errorf("%x: got %q, %+v, %v", c.payload, body, h, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%x: got %v, want %q", c.payload, err, c.text)
		}
	}
}

func TestWindowPayload(t *testing.T) {
	for _, g := range []int64{1, 127, 256 << 10, MaxWindowGrant} {
		b, err := WindowPayload{Grant: g}.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if w, err := DecodeWindowPayload(b); err != nil || w.Grant != g {
			t.Fatalf("grant %d: got %+v, %v", g, w, err)
		}
	}
	for _, g := range []int64{0, -1, MaxWindowGrant + 1} {
		if out, err := (WindowPayload{Grant: g}).Append([]byte("keep")); !errors.Is(err, ErrBadValue) || string(out) != "keep" {
			t.Errorf("Append grant %d: got %v, %q", g, err, out)
		}
	}
	for _, c := range []struct {
		v    []any
		text string
	}{
		{[]any{0}, "0 not in 1..1073741824"},
		{[]any{-5}, "-5 not in"},
		{[]any{int64(MaxWindowGrant + 1)}, "not in 1.."},
		{[]any{"1"}, "want int, got str"},
		{[]any{1, 2}, "want 1 element, got 2"},
		{[]any{}, "want 1 element, got 0"},
	} {
		if _, err := DecodeWindowPayload(respBytes(t, c.v...)); err == nil || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%v: got %v, want %q", c.v, err, c.text)
		}
	}
}

func respBytes(t *testing.T, v ...any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResponseHeadDecodeErrors(t *testing.T) {
	many := make([]any, 0, 2*(MaxResponseHeaders+1))
	for i := 0; i <= MaxResponseHeaders; i++ {
		many = append(many, "x", []byte("y"))
	}
	cases := []struct {
		name string
		b    []byte
		want error
		text string
	}{
		{"not array", []byte{0x80}, ErrWrongType, "want array, got map"},
		{"4 elements", respBytes(t, 200, []any{}, 0, 0), ErrBadValue, "want 3 elements, got 4"},
		{"status str", respBytes(t, "200", []any{}, 0), ErrWrongType, `"status": want int, got str`},
		{"status 1xx", respBytes(t, 101, []any{}, 0), ErrBadValue, "101 not in 200..599"},
		{"status 600", respBytes(t, 600, []any{}, 0), ErrBadValue, "600"},
		{"status huge", []byte{0x93, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x90, 0x00}, ErrBadValue, "out of range"},
		{"odd headers", respBytes(t, 200, []any{"a"}, 0), ErrBadValue, "odd length 1"},
		{"value str", respBytes(t, 200, []any{"a", "b"}, 0), ErrWrongType, "want bin, got str"},
		{"name bin", respBytes(t, 200, []any{[]byte("a"), []byte("b")}, 0), ErrWrongType, "want str, got bin"},
		{"name upper", respBytes(t, 200, []any{"Content-Type", []byte("b")}, 0), ErrBadValue, "lower-case HTTP token"},
		{"name space", respBytes(t, 200, []any{"a b", []byte("b")}, 0), ErrBadValue, "lower-case HTTP token"},
		{"name empty", respBytes(t, 200, []any{"", []byte("b")}, 0), ErrBadValue, "name length 0"},
		{"name long", respBytes(t, 200, []any{strings.Repeat("a", 257), []byte("b")}, 0), ErrBadValue, "name length 257"},
		{"value CRLF", respBytes(t, 200, []any{"a", []byte("x\r\nset-cookie: y")}, 0), ErrBadValue, "NUL, CR or LF"},
		{"value long", respBytes(t, 200, []any{"a", make([]byte, MaxHeaderValueLen+1)}, 0), ErrLimit, "value of 65537 bytes"},
		{"too many", respBytes(t, 200, many, 0), ErrLimit, "1025 fields > 1024"},
		{"body -2", respBytes(t, 200, []any{}, -2), ErrBadValue, "-2 < -1"},
		{"body float", respBytes(t, 200, []any{}, 1.0), ErrWrongType, "want int, got float"},
		{"huge array", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, ErrTruncated, ""},
		{"too large", make([]byte, MaxHead+1), ErrLimit, "bytes >"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h ResponseHead
			h.Headers = append(h.Headers, Header{Name: []byte("stale")})
			err := h.Decode(c.b)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) || !strings.HasPrefix(err.Error(), "workerproto: ") {
				t.Fatalf("got %v, want %v containing %q", err, c.want, c.text)
			}
			if h.Status != 0 || len(h.Headers) > 0 && string(h.Headers[0].Name) == "stale" {
				t.Fatal("a failed Decode left stale contents")
			}
		})
	}
}

// Decode copies: the caller's buffer may be overwritten at once.
func TestResponseHeadOwnsMemory(t *testing.T) {
	b, _ := goldenVectors()[8].resp.Append(nil)
	var h ResponseHead
	if err := h.Decode(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if string(h.Headers[0].Value) != "application/json" {
		t.Fatal("ResponseHead aliases the input")
	}
}

func TestErrorPayloadErrors(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		text string
	}{
		{respBytes(t, 500), "want 2 elements, got 1"},
		{respBytes(t, 200, "x"), "200 not in 400..599"},
		{respBytes(t, 500, []byte("x")), "want str, got bin"},
		{respBytes(t, "500", "x"), "want int, got str"},
		{respBytes(t, 500, "\xff"), "UTF-8"},
	} {
		if _, err := DecodeErrorPayload(c.b); err == nil || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%x: got %v, want %q", c.b, err, c.text)
		}
	}
	e := ErrorPayload{Status: 499, Message: "cancelled"}
	b, _ := e.Append(nil)
	if got, err := DecodeErrorPayload(b); err != nil || got != e {
		t.Fatal(got, err)
	}
}

func TestRequestHeadDecodeErrors(t *testing.T) {
	base := func() []any {
		return []any{"GET", "/", "", []any{}, "/", []any{}, "1.1", "http", "1.2.3.4:5", "id", 0, 0}
	}
	for _, c := range []struct {
		i    int
		v    any
		text string
	}{
		{0, 1, `"method": want str, got int`},
		{3, []any{"a"}, `"headers": odd length 1`},
		{3, []any{"a", "b"}, "want bin, got str"},
		{5, []any{"a", []byte("b")}, "want str, got bin"},
		{10, -2, "-2 < -1"},
		{11, -1, "negative"},
		{9, nil, "want str, got nil"},
	} {
		v := base()
		v[c.i] = c.v
		if _, err := DecodeRequestHead(respBytes(t, v...)); err == nil || !strings.Contains(err.Error(), c.text) {
			t.Errorf("element %d = %v: got %v, want %q", c.i, c.v, err, c.text)
		}
	}
	if _, err := DecodeRequestHead(respBytes(t, base()[:11]...)); err == nil || !strings.Contains(err.Error(), "want 12, 13 or 14 elements, got 11") {
		t.Error(err)
	}
	if _, err := DecodeRequestHead(respBytes(t, append(base(), nil, []any{"s", []byte("{}"), []any{}, []any{}}, 1)...)); err == nil || !strings.Contains(err.Error(), "want 12, 13 or 14 elements, got 15") {
		t.Error(err)
	}
	// A 14th element must be the 4-element auth array; the 13th may then be nil.
	for _, c := range []struct {
		cert, auth any
		text       string
	}{
		{nil, 1, `"auth": want array, got int`},
		{nil, []any{"s", []byte("{}"), []any{}}, "want 4 elements, got 3"},
		{nil, []any{"s", "{}", []any{}, []any{}}, `"auth.claims": want bin, got str`},
		{nil, []any{"s", []byte("{}"), []any{1}, []any{}}, `"auth.roles": want str, got int`},
		{nil, []any{"s", []byte("{}"), []any{}, "read"}, `"auth.scopes": want array, got str`},
		{1, []any{"s", []byte("{}"), []any{}, []any{}}, `"client_cert": want array, got int`},
	} {
		if _, err := DecodeRequestHead(respBytes(t, append(base(), c.cert, c.auth)...)); err == nil || !strings.Contains(err.Error(), c.text) {
			t.Errorf("cert %v auth %v: got %v, want %q", c.cert, c.auth, err, c.text)
		}
	}
}

func TestRequestHeadAuth(t *testing.T) {
	a := &Auth{Subject: "alice", Claims: []byte(`{"sub":"alice"}`), Roles: []string{"admin"}, Scopes: []string{"a", "b"}}
	for _, cc := range []*ClientCert{nil, {Subject: "CN=a", Fingerprint: "00"}} {
		h := RequestHead{Method: "GET", Path: "/", Route: "/", HTTPVersion: "1.1", Scheme: "http", Auth: a, ClientCert: cc}
		b, err := h.Append(nil)
		if err != nil || b[0] != 0x9e || len(b) != h.Len() {
			t.Fatalf("14 elements: %x %v (len %d)", b, err, h.Len())
		}
		got, err := DecodeRequestHead(b)
		if err != nil || !reflect.DeepEqual(got.Auth, a) || !reflect.DeepEqual(got.ClientCert, cc) {
			t.Fatalf("round trip: %+v %+v %v", got.Auth, got.ClientCert, err)
		}
	}
	h := RequestHead{Method: "GET", Path: "/", Auth: &Auth{Subject: "\xff"}}
	h.Auth.Subject = string([]byte{0xff})
	if _, err := h.Append(nil); err == nil {
		t.Fatal("a subject that is not UTF-8 was encoded")
	}
}

func TestRequestHeadClientCert(t *testing.T) {
	base := func(cert any) []any {
		return []any{"GET", "/", "", []any{}, "/", []any{}, "2", "https", "1.2.3.4:5", "id", 0, 0, cert}
	}
	// Without a certificate: 12 elements, and the decoder gives nil.
	h := RequestHead{Method: "GET", Path: "/", Route: "/", HTTPVersion: "2", Scheme: "https"}
	b, err := h.Append(nil)
	if err != nil || b[0] != 0x9c || len(b) != h.Len() {
		t.Fatalf("12 elements: %x %v", b, err)
	}
	if got, err := DecodeRequestHead(b); err != nil || got.ClientCert != nil {
		t.Fatal(got.ClientCert, err)
	}
	// With one: 13, and it round-trips; an empty SAN list too.
	for _, cc := range []*ClientCert{
		{Subject: "CN=a", SANs: []string{"a.example", "b.example"}, Fingerprint: "ff00"},
		{Subject: "", Fingerprint: "00"},
	} {
		h.ClientCert = cc
		b, err := h.Append(nil)
		if err != nil || b[0] != 0x9d || len(b) != h.Len() {
			t.Fatalf("13 elements: %x %v (len %d, Len %d)", b, err, len(b), h.Len())
		}
		got, err := DecodeRequestHead(b)
		if err != nil || !reflect.DeepEqual(normHead(&got), normHead(&h)) {
			t.Fatalf("round trip: %+v %v", got.ClientCert, err)
		}
	}
	h.ClientCert = &ClientCert{Subject: "CN=\xff"}
	if _, err := h.Append(nil); !errors.Is(err, ErrBadValue) {
		t.Errorf("a subject that is not UTF-8: %v", err)
	}
	// A bad 13th element is refused, naming it.
	for _, c := range []struct {
		cert any
		text string
	}{
		{nil, `"client_cert": want array, got nil`},
		{"CN=a", `"client_cert": want array, got str`},
		{[]any{"CN=a", []any{}}, "want 3 elements, got 2"},
		{[]any{"CN=a", []any{}, "f", "x"}, "want 3 elements, got 4"},
		{[]any{1, []any{}, "f"}, `"client_cert.subject": want str, got int`},
		{[]any{"CN=a", "a.example", "f"}, `"client_cert.sans": want array, got str`},
		{[]any{"CN=a", []any{[]byte("a")}, "f"}, `"client_cert.sans": want str, got bin`},
		{[]any{"CN=a", []any{}, []byte("f")}, `"client_cert.fingerprint": want str, got bin`},
	} {
		if _, err := DecodeRequestHead(respBytes(t, base(c.cert)...)); err == nil || !strings.Contains(err.Error(), c.text) {
			t.Errorf("client_cert %v: got %v, want %q", c.cert, err, c.text)
		}
	}
}

func TestEarlyHints(t *testing.T) {
	h := EarlyHints{Headers: []Header{{Name: []byte("link"), Value: []byte("</a.css>; rel=preload")}}}
	b, err := h.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got EarlyHints
	if err := got.Decode(b); err != nil || len(got.Headers) != 1 || string(got.Headers[0].Value) != "</a.css>; rel=preload" {
		t.Fatal(got.Headers, err)
	}
	// The decoded fields are the EarlyHints' own: the caller's buffer may change.
	b[len(b)-1] = 'X'
	if string(got.Headers[0].Value) != "</a.css>; rel=preload" {
		t.Fatal("Decode aliases its input")
	}
	var empty EarlyHints
	if b, _ := empty.Append(nil); len(b) != 1 || b[0] != 0x90 || got.Decode(b) != nil || len(got.Headers) != 0 {
		t.Fatalf("no fields: %x", b)
	}
	many := make([]any, 0, 2*MaxResponseHeaders+2)
	for i := 0; i <= MaxResponseHeaders; i++ {
		many = append(many, "link", []byte("<x>"))
	}
	for _, c := range []struct {
		b    []byte
		text string
	}{
		{respBytes(t, "link"), "odd length 1"},
		{respBytes(t, "Link", []byte("<x>")), "not a lower-case HTTP token"},
		{respBytes(t, "link", "<x>"), "want bin, got str"},
		{respBytes(t, "link", []byte("<x>\r\nx: y")), "NUL, CR or LF"},
		{respBytes(t, many...), "1025 fields > 1024"},
		{[]byte{0x91}, "truncated"},
		{[]byte{0x90, 0x90}, "trailing"},
		{[]byte{0x80}, "want array, got map"},
	} {
		if err := got.Decode(c.b); err == nil || !strings.Contains(err.Error(), c.text) || len(got.Headers) != 0 {
			t.Errorf("%x: got %v (%d fields), want %q", c.b, err, len(got.Headers), c.text)
		}
	}
	if _, err := (&EarlyHints{Headers: []Header{{Name: []byte("\xff"), Value: nil}}}).Append(nil); !errors.Is(err, ErrBadValue) {
		t.Error(err)
	}
}

func TestRespTrailers(t *testing.T) {
	tr := RespTrailers{Headers: []Header{{Name: []byte("grpc-status"), Value: []byte("0")}, {Name: []byte("x-id-bin"), Value: []byte("AQI")}}}
	b, err := tr.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got RespTrailers
	if err := got.Decode(b); err != nil || len(got.Headers) != 2 || string(got.Headers[1].Value) != "AQI" {
		t.Fatal(got.Headers, err)
	}
	b[len(b)-1] = 'X'
	if string(got.Headers[1].Value) != "AQI" {
		t.Fatal("Decode aliases its input")
	}
	if err := got.Decode([]byte{0x90}); err != nil || len(got.Headers) != 0 {
		t.Fatalf("no fields: %v", err)
	}
	for _, c := range []struct {
		b    []byte
		text string
	}{
		{respBytes(t, "grpc-status"), "odd length 1"},
		{respBytes(t, ":status", []byte("200")), "not a lower-case HTTP token"},
		{respBytes(t, "Grpc-Status", []byte("0")), "not a lower-case HTTP token"},
		{respBytes(t, "grpc-status", "0"), "want bin, got str"},
		{respBytes(t, "grpc-message", []byte("a\nb")), "NUL, CR or LF"},
		{respBytes(t, "grpc-status", []byte("0"), "content-length", []byte("0")), "field 1: content-length is a framing field"},
		{respBytes(t, "transfer-encoding", []byte("chunked")), "transfer-encoding is a framing field"},
		{respBytes(t, "connection", []byte("close")), "connection is a framing field"},
		{respBytes(t, "keep-alive", []byte("1")), "keep-alive is a framing field"},
		{respBytes(t, "te", []byte("trailers")), "te is a framing field"},
		{respBytes(t, "trailer", []byte("x")), "trailer is a framing field"},
		{respBytes(t, "upgrade", []byte("h2c")), "upgrade is a framing field"},
		{[]byte{0x90, 0xc0}, "trailing bytes"},
		{[]byte{0x80}, "want array, got map"},
	} {
		if err := got.Decode(c.b); err == nil || !strings.Contains(err.Error(), c.text) || len(got.Headers) != 0 {
			t.Errorf("%x: got %v (%d fields), want %q", c.b, err, len(got.Headers), c.text)
		}
	}
}

func TestFrameTypes(t *testing.T) {
	for _, ft := range []FrameType{FrameReqHead, FrameReqBody, FrameCancel, FrameWindow, FrameWSOpen} {
		if !ft.Known() || !ft.FromGateway() || ft.FromWorker() {
			t.Errorf("%v", ft)
		}
	}
	for _, ft := range []FrameType{FrameRespHead, FrameRespBody, FrameResp, FrameEarlyHints, FrameRespFile, FrameReqWindow, FrameWSAccept, FrameRespTrailers} {
		if !ft.Known() || ft.FromGateway() || !ft.FromWorker() {
			t.Errorf("%v", ft)
		}
	}
	for _, ft := range []FrameType{FrameWSText, FrameWSBinary, FrameWSClose, FrameWSCredit} {
		if !ft.Known() || !ft.FromGateway() || !ft.FromWorker() {
			t.Errorf("%v", ft)
		}
	}
	for _, ft := range []FrameType{0, 2, 15, 86, 95, 97, 111, 65} {
		if ft.Known() || ft.FromGateway() || ft.FromWorker() {
			t.Errorf("%v should be unknown", ft)
		}
	}
	if FrameError.String() != "ERROR" || FrameEarlyHints.String() != "EARLY_HINTS" || FrameRespTrailers.String() != "RESP_TRAILERS" || FrameType(200).String() != "FrameType(200)" {
		t.Error("String")
	}
}

func BenchmarkRequestHeadAppend(b *testing.B) {
	h := sampleRequestHead()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = h.Append(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkResponseHeadDecode(b *testing.B) {
	p, _ := goldenVectors()[8].resp.Append(nil)
	var h ResponseHead
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := h.Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRequestHeadDecode(b *testing.B) {
	p, _ := sampleRequestHead().Append(nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeRequestHead(p); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNameIsAndTypeName(t *testing.T) {
	for _, c := range []struct {
		name, lower string
		want        bool
	}{{"Origin", "origin", true}, {"ORIGIN", "origin", true}, {"origin", "origin", true}, {"Origins", "origin", false}, {"Orig1n", "origin", false}, {"", "", true}} {
		if got := NameIs([]byte(c.name), c.lower); got != c.want {
			t.Errorf("NameIs(%q, %q) = %v", c.name, c.lower, got)
		}
	}
	for v, want := range map[any]string{nil: "nil", true: "bool", "s": "str", int64(1): "int", 1.5: "float"} {
		if got := TypeName(v); got != want {
			t.Errorf("TypeName(%#v) = %s, want %s", v, got, want)
		}
	}
	if TypeName([]any{}) != "array" || TypeName(map[string]any{}) != "map" || TypeName([]byte{}) != "bin" || TypeName(struct{}{}) != "struct {}" {
		t.Error("TypeName of containers")
	}
}
