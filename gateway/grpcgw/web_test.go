package grpcgw

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/covetpy/covetpy/workerproto"
)

func TestClassify(t *testing.T) {
	for ct, want := range map[string]mode{
		"application/grpc": native, "application/grpc+proto": native, "Application/GRPC;charset=x": native,
		"application/grpc-web": web, "application/grpc-web+proto": web, "application/grpc-web-text": webText,
		"application/grpc-web-text+proto": webText, "application/grpcx": notGRPC, "application/grpc-webx": notGRPC,
		"application/json": notGRPC, "": notGRPC, "application/grp": notGRPC,
	} {
		if got := classify([]byte(ct)); got != want {
			t.Errorf("%q: %d, want %d", ct, got, want)
		}
	}
	if got := string(retype([]byte("application/grpc-web-text+proto"), ctWebText, ctGRPC)); got != "application/grpc+proto" {
		t.Error(got)
	}
	if got := string(retype([]byte("application/grpc+proto"), ctGRPC, ctWeb)); got != "application/grpc-web+proto" {
		t.Error(got)
	}
}

func TestParseTimeout(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"1H": time.Hour, "2M": 2 * time.Minute, "3S": 3 * time.Second, "40m": 40 * time.Millisecond,
		"5u": 5 * time.Microsecond, "99999999n": 99999999, "0S": 0, "99999999H": maxTimeout,
	} {
		if got, ok := parseTimeout([]byte(v)); !ok || got != want {
			t.Errorf("%q: %v %v, want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "S", "1", "123456789S", "1s", "1h", "-1S", "1.0S", " 1S", "1 S", "1x"} {
		if _, ok := parseTimeout([]byte(v)); ok {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestTrailerFrame(t *testing.T) {
	b := trailerFrame([]workerproto.Header{{Name: []byte("Grpc-Status"), Value: []byte("0")}, {Name: []byte("x-a-bin"), Value: []byte("AQ")}})
	want := "grpc-status: 0\r\nx-a-bin: AQ\r\n"
	if b[0] != 0x80 || int(b[1])<<24|int(b[2])<<16|int(b[3])<<8|int(b[4]) != len(want) || string(b[5:]) != want {
		t.Fatalf("%q", b)
	}
}

// stream is a BodyStream handing out its pieces one Read at a time.
type stream struct {
	pieces []string
	end    error
	stops  int
}

func (s *stream) Read(p []byte) (int, error) {
	if len(s.pieces) == 0 {
		return 0, s.end
	}
	n := copy(p, s.pieces[0])
	if s.pieces[0] = s.pieces[0][n:]; s.pieces[0] == "" {
		s.pieces = s.pieces[1:]
	}
	return n, nil
}
func (s *stream) Stop() { s.stops++ }

// TestTextBody: base64 decoded as it streams, whatever the piece
// boundaries, padding accepted mid-stream; bad base64 and a quantum broken
// off at the end fail the read; other errors pass through.
func TestTextBody(t *testing.T) {
	msg := []byte("\x00\x00\x00\x00\x05hello\x00\x00\x00\x00\x01!")
	enc := base64.StdEncoding.EncodeToString(msg[:4]) + base64.StdEncoding.EncodeToString(msg[4:11]) + base64.StdEncoding.EncodeToString(msg[11:])
	for split := 1; split < len(enc); split++ {
		s := &stream{pieces: []string{enc[:split], enc[split:]}, end: io.EOF}
		tb := newTextBody(s)
		got, err := io.ReadAll(tb)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("split at %d: %q %v", split, got, err)
		}
		tb.Stop()
		if s.stops != 1 {
			t.Fatal("Stop not passed on")
		}
	}
	for _, bad := range []string{"AAA", "AA*A", "A===", "AAAAA"} {
		if _, err := io.ReadAll(newTextBody(&stream{pieces: []string{bad}, end: io.EOF})); !errors.Is(err, errBadText) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	boom := errors.New("client gone")
	got, err := io.ReadAll(newTextBody(&stream{pieces: []string{"aGk="}, end: boom}))
	if err != boom || string(got) != "hi" {
		t.Errorf("%q %v", got, err)
	}
}

func FuzzDecodeQuanta(f *testing.F) {
	f.Add([]byte("aGk=aGk="), 3)
	f.Add([]byte("AAAA"), 1)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		enc := []byte(base64.StdEncoding.EncodeToString(data))
		if split < 0 || split > len(data) {
			split = len(data) / 2
		}
		// Two padded pieces decode to the data.
		two := base64.StdEncoding.AppendEncode([]byte(base64.StdEncoding.EncodeToString(data[:split])), data[split:])
		for _, in := range [][]byte{enc, two} {
			got, rest, err := decodeQuanta(nil, in)
			if err != nil || len(rest) != 0 || !bytes.Equal(got, data) {
				t.Fatalf("%q: %q %q %v", in, got, rest, err)
			}
		}
		// Arbitrary input never panics, and leaves fewer than 4 characters.
		if _, rest, err := decodeQuanta(nil, data); err == nil && len(rest) > 3 {
			t.Fatalf("%d characters left", len(rest))
		}
	})
}
