package grpcgw

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// frame returns msg as a length-prefixed message with the given flag.
func frame(flag byte, msg []byte) []byte {
	b := []byte{flag, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

func gzipped(t testing.TB, p []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll reads every message of body; err is what ended it.
func readAll(body []byte, encoding string) (msgs [][]byte, err error) {
	m := msgReader{r: bytes.NewReader(body), encoding: encoding}
	for {
		b, err := m.next()
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, bytes.Clone(b))
	}
}

func wantCode(t *testing.T, err error, code Code) {
	t.Helper()
	var ce *callError
	if !errors.As(err, &ce) || ce.code != code {
		t.Fatalf("error %v, want a %v status", err, code)
	}
}

func TestAppendMessageRoundTrip(t *testing.T) {
	m := &healthpb.HealthCheckRequest{Service: "a.B"}
	b, err := appendMessage([]byte("xy"), m)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(m)
	if !bytes.Equal(b, append([]byte("xy"), frame(0, want)...)) {
		t.Fatalf("appendMessage = %x", b)
	}
	msgs, err := readAll(b[2:], "")
	if err != io.EOF || len(msgs) != 1 || !bytes.Equal(msgs[0], want) {
		t.Fatalf("read back %x, %v", msgs, err)
	}
}

// Every prefix of a two-message body reads as the whole messages it holds,
// then io.EOF at a message boundary or INTERNAL inside a message.
func TestMsgReaderTruncated(t *testing.T) {
	one, two := []byte("first"), []byte("second message")
	body := append(frame(0, one), frame(0, two)...)
	for n := range len(body) + 1 {
		msgs, err := readAll(body[:n], "")
		whole := 0
		switch {
		case n == len(body):
			whole = 2
		case n >= prefixLen+len(one):
			whole = 1
		}
		if len(msgs) != whole {
			t.Fatalf("prefix %d: %d messages, want %d", n, len(msgs), whole)
		}
		if n == 0 || n == prefixLen+len(one) || n == len(body) {
			if err != io.EOF {
				t.Fatalf("prefix %d: %v, want io.EOF", n, err)
			}
		} else {
			wantCode(t, err, Internal)
		}
	}
}

func TestMsgReaderLimits(t *testing.T) {
	big := make([]byte, 5)
	big[0] = 0
	binary.BigEndian.PutUint32(big[1:], maxMessage+1)
	_, err := readAll(big, "")
	wantCode(t, err, ResourceExhausted)

	atMax := frame(0, make([]byte, maxMessage))
	if msgs, err := readAll(atMax, ""); err != io.EOF || len(msgs) != 1 {
		t.Fatalf("a message of exactly the limit: %d messages, %v", len(msgs), err)
	}

	_, err = readAll(frame(2, []byte("x")), "")
	wantCode(t, err, Internal)
}

func TestMsgReaderCompression(t *testing.T) {
	plain := []byte("hello hello hello hello")
	z := gzipped(t, plain)
	msgs, err := readAll(append(frame(1, z), frame(0, plain)...), "gzip")
	if err != io.EOF || len(msgs) != 2 || !bytes.Equal(msgs[0], plain) || !bytes.Equal(msgs[1], plain) {
		t.Fatalf("gzip body read as %q, %v", msgs, err)
	}
	// The gzip reader is reused across messages.
	msgs, err = readAll(append(frame(1, z), frame(1, z)...), "gzip")
	if err != io.EOF || len(msgs) != 2 || !bytes.Equal(msgs[1], plain) {
		t.Fatalf("two gzip messages read as %q, %v", msgs, err)
	}

	_, err = readAll(frame(1, z), "")
	wantCode(t, err, Internal)
	_, err = readAll(frame(1, z), "identity")
	wantCode(t, err, Internal)
	_, err = readAll(frame(1, z), "snappy")
	wantCode(t, err, Unimplemented)
	_, err = readAll(frame(1, []byte("not gzip")), "gzip")
	wantCode(t, err, Internal)

	bomb := gzipped(t, make([]byte, maxMessage+1))
	_, err = readAll(frame(1, bomb), "gzip")
	wantCode(t, err, ResourceExhausted)
}

// A body that breaks off mid-message is returned as is, not as a status.
func TestMsgReaderBodyError(t *testing.T) {
	boom := errors.New("client reset")
	m := msgReader{r: io.MultiReader(bytes.NewReader(frame(0, []byte("abc"))[:6]), errReader{boom})}
	if _, err := m.next(); err != boom {
		t.Fatalf("next = %v, want the body's error", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func FuzzMsgReader(f *testing.F) {
	f.Add(frame(0, []byte("abc")), false)
	f.Add(append(frame(0, nil), frame(1, gzipped(f, []byte("abc")))...), true)
	f.Add(frame(1, []byte("abc")), false)
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff}, false)
	f.Fuzz(func(t *testing.T, body []byte, gz bool) {
		encoding := ""
		if gz {
			encoding = "gzip"
		}
		msgs, err := readAll(body, encoding)
		var ce *callError
		if err != io.EOF && !errors.As(err, &ce) {
			t.Fatalf("error %v is neither io.EOF nor a status", err)
		}
		total := 0
		for _, m := range msgs {
			if len(m) > maxMessage {
				t.Fatalf("a message of %d bytes", len(m))
			}
			total += prefixLen + len(m)
		}
		if !gz && total > len(body) {
			t.Fatalf("%d messages from %d bytes", len(msgs), len(body))
		}
	})
}
