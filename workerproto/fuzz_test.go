package workerproto

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// Fuzz targets: every decoder that reads bytes from a peer. Each is seeded from the
// matching encoder (f.Add) and from the committed corpus in testdata/fuzz/<Name>/
// (rewritten by go test -run TestFuzzCorpus -update). Invariants: no panic; every
// error wraps a package sentinel; whatever decodes re-encodes and decodes to the same
// value.

// controlSeeds returns encoded control maps (without prefix) of the given type.
func controlSeeds(t testing.TB, typ string) [][]byte {
	var out [][]byte
	msgs := []Message{}
	for _, v := range goldenVectors() {
		if v.msg != nil && v.msg.Type() == typ {
			msgs = append(msgs, v.msg)
		}
	}
	switch typ {
	case TypeHello:
		msgs = append(msgs, validHello(), Hello{Version: 1, PID: 1, App: "a"})
	case TypeWelcome:
		msgs = append(msgs, Welcome{Version: 1, Epoch: ^uint64(0)})
	case TypePing:
		msgs = append(msgs, Ping{}, Ping{Seq: ^uint64(0)})
	case TypePong:
		msgs = append(msgs, Pong{Seq: 1 << 40})
	case TypeDrain:
		msgs = append(msgs, Drain{})
	case TypeBye:
		msgs = append(msgs, Bye{Reason: "é"})
	case TypeError:
		msgs = append(msgs, &Error{Code: "auth"})
	}
	for _, m := range msgs {
		b, err := AppendMessage(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func payloadSeeds(t testing.TB, kind string) [][]byte {
	var out [][]byte
	for _, v := range goldenVectors() {
		if v.msg == nil && v.kind() == kind {
			b, err := v.encode()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	var extra interface{ Append([]byte) ([]byte, error) }
	switch kind {
	case "req_head":
		extra = &RequestHead{Body: -1}
	case "resp_head":
		extra = &ResponseHead{Status: 599, Body: -1}
	case "window_payload":
		extra = WindowPayload{Grant: MaxWindowGrant}
	case "resp_payload":
		extra = &wholeResponse{head: ResponseHead{Status: 204}}
	case "early_hints":
		extra = &EarlyHints{}
	default:
		extra = &ErrorPayload{Status: 499}
	}
	b, err := extra.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return append(out, b)
}

func frameSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, v := range goldenVectors() {
		if v.msg != nil {
			b, _ := v.encode()
			out = append(out, b, b[:len(b)/2])
		}
	}
	return append(out, []byte{0, 0, 0, 0}, []byte{1, 0, 0x10, 0})
}

// checkErr fails unless err wraps one of the package's sentinels.
func checkErr(t *testing.T, err error) {
	t.Helper()
	for _, s := range []error{ErrTruncated, ErrFrameTooLarge, ErrZeroLength, ErrTrailingBytes, ErrMalformed,
		ErrUnknownType, ErrMissingKey, ErrWrongType, ErrBadValue, ErrLimit, ErrVersion, ErrManifest, ErrProtocol} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error without a sentinel: %v (%T)", err, err)
}

func fuzzControl(f *testing.F, typ string) {
	for _, s := range controlSeeds(f, typ) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			checkErr(t, err)
			return
		}
		re, err := AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("decoded %#v does not re-encode: %v", m, err)
		}
		m2, err := DecodeMessage(re)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(t, messageJSON(m)), normalize(t, messageJSON(m2))) {
			t.Fatalf("round trip changed %#v to %#v", m, m2)
		}
		if h, ok := m.(Hello); ok {
			h.Validate() // must not panic
		}
		if w, ok := m.(Welcome); ok {
			w.Validate()
		}
	})
}

func FuzzDecodeHello(f *testing.F)   { fuzzControl(f, TypeHello) }
func FuzzDecodeWelcome(f *testing.F) { fuzzControl(f, TypeWelcome) }
func FuzzDecodePing(f *testing.F)    { fuzzControl(f, TypePing) }
func FuzzDecodePong(f *testing.F)    { fuzzControl(f, TypePong) }
func FuzzDecodeDrain(f *testing.F)   { fuzzControl(f, TypeDrain) }
func FuzzDecodeBye(f *testing.F)     { fuzzControl(f, TypeBye) }
func FuzzDecodeError(f *testing.F)   { fuzzControl(f, TypeError) }

func FuzzParseFrame(f *testing.F) {
	for _, s := range frameSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := ParseFrame(b)
		// The stream reader agrees with the slice parser.
		m2, err2 := ReadMessage(bytes.NewReader(b))
		if (err == nil) != (err2 == nil) {
			t.Fatalf("ParseFrame: %v; ReadMessage: %v", err, err2)
		}
		if err != nil {
			if len(b) > 0 {
				checkErr(t, err)
			}
			return
		}
		if n < FrameHeaderLen+1 || n > len(b) {
			t.Fatalf("n = %d of %d", n, len(b))
		}
		re, err := AppendFrame(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		m3, _, err := ParseFrame(re)
		if err != nil || !reflect.DeepEqual(normalize(t, messageJSON(m3)), normalize(t, messageJSON(m))) ||
			!reflect.DeepEqual(normalize(t, messageJSON(m2)), normalize(t, messageJSON(m))) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzResponseHead(f *testing.F) {
	for _, s := range payloadSeeds(f, "resp_head") {
		f.Add(s)
	}
	var h, h2 ResponseHead // reused across inputs, as the gateway does
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := h.Decode(b); err != nil {
			checkErr(t, err)
			return
		}
		re, err := h.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := h2.Decode(re); err != nil {
			t.Fatal(err)
		}
		if h.Status != h2.Status || h.Body != h2.Body || len(h.Headers) != len(h2.Headers) {
			t.Fatal("round trip changed the head")
		}
		for i := range h.Headers {
			if !bytes.Equal(h.Headers[i].Name, h2.Headers[i].Name) || !bytes.Equal(h.Headers[i].Value, h2.Headers[i].Value) {
				t.Fatal("round trip changed a header")
			}
		}
	})
}

func FuzzEarlyHints(f *testing.F) {
	for _, s := range payloadSeeds(f, "early_hints") {
		f.Add(s)
	}
	var h, h2 EarlyHints // reused across inputs, as the gateway does
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := h.Decode(b); err != nil {
			checkErr(t, err)
			if len(h.Headers) != 0 {
				t.Fatal("a refused payload left headers behind")
			}
			return
		}
		re, err := h.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := h2.Decode(re); err != nil || len(h.Headers) != len(h2.Headers) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range h.Headers {
			if !bytes.Equal(h.Headers[i].Name, h2.Headers[i].Name) || !bytes.Equal(h.Headers[i].Value, h2.Headers[i].Value) {
				t.Fatal("round trip changed a header")
			}
		}
	})
}

func FuzzRespTrailers(f *testing.F) {
	for _, s := range payloadSeeds(f, "resp_trailers") {
		f.Add(s)
	}
	var h, h2 RespTrailers // reused across inputs, as the gateway does
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := h.Decode(b); err != nil {
			checkErr(t, err)
			if len(h.Headers) != 0 {
				t.Fatal("a refused payload left headers behind")
			}
			return
		}
		re, err := h.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := h2.Decode(re); err != nil || !bytes.Equal(re, b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzErrorPayload(f *testing.F) {
	for _, s := range payloadSeeds(f, "error_payload") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeErrorPayload(b)
		if err != nil {
			checkErr(t, err)
			return
		}
		re, err := e.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if e2, err := DecodeErrorPayload(re); err != nil || e2 != e {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzWindowPayload(f *testing.F) {
	for _, s := range payloadSeeds(f, "window_payload") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := DecodeWindowPayload(b)
		if err != nil {
			checkErr(t, err)
			return
		}
		re, err := w.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if w2, err := DecodeWindowPayload(re); err != nil || w2 != w {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzRespPayload(f *testing.F) {
	for _, s := range payloadSeeds(f, "resp_payload") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var w wholeResponse
		body, err := w.head.DecodeWithBody(b)
		if err != nil {
			checkErr(t, err)
			return
		}
		w.body = body
		re, err := w.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		var h ResponseHead
		if body2, err := h.DecodeWithBody(re); err != nil || string(body2) != string(body) || h.Status != w.head.Status {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzRequestHead(f *testing.F) {
	for _, s := range payloadSeeds(f, "req_head") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeRequestHead(b)
		if err != nil {
			checkErr(t, err)
			return
		}
		re, err := h.Append(nil)
		if err != nil {
			// Decoding accepts any str header name; encoding insists on a token.
			if errors.Is(err, ErrBadValue) {
				return
			}
			t.Fatal(err)
		}
		h2, err := DecodeRequestHead(re)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normHead(&h), normHead(lowerNames(h2))) && !reflect.DeepEqual(normHead(lowerNames(h)), normHead(&h2)) {
			t.Fatalf("round trip changed the head")
		}
	})
}

func lowerNames(h RequestHead) *RequestHead {
	for i := range h.Headers {
		h.Headers[i].Name = bytes.ToLower(h.Headers[i].Name)
	}
	return &h
}

// TestFuzzCorpus checks that the committed seed corpus exists, and rewrites it with
// -update.
func TestFuzzCorpus(t *testing.T) {
	corpora := map[string][][]byte{
		"FuzzParseFrame":    frameSeeds(t),
		"FuzzResponseHead":  payloadSeeds(t, "resp_head"),
		"FuzzErrorPayload":  payloadSeeds(t, "error_payload"),
		"FuzzWindowPayload": payloadSeeds(t, "window_payload"),
		"FuzzRespPayload":   payloadSeeds(t, "resp_payload"),
		"FuzzRequestHead":   payloadSeeds(t, "req_head"),
		"FuzzEarlyHints":    payloadSeeds(t, "early_hints"),
		"FuzzRespTrailers":  payloadSeeds(t, "resp_trailers"),
		"FuzzDecodeHello":   controlSeeds(t, TypeHello),
		"FuzzDecodeWelcome": controlSeeds(t, TypeWelcome),
		"FuzzDecodePing":    controlSeeds(t, TypePing),
		"FuzzDecodePong":    controlSeeds(t, TypePong),
		"FuzzDecodeDrain":   controlSeeds(t, TypeDrain),
		"FuzzDecodeBye":     controlSeeds(t, TypeBye),
		"FuzzDecodeError":   controlSeeds(t, TypeError),
	}
	for name, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, s := range seeds {
				sum := sha256.Sum256(s)
				body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s)))
				if err := os.WriteFile(filepath.Join(dir, "seed-"+hex.EncodeToString(sum[:8])), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) == 0 {
			t.Errorf("%s: no committed seed corpus (run go test -run TestFuzzCorpus -update): %v", name, err)
		}
	}
}
