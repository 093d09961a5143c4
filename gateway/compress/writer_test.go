package compress

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/workerproto"
)

// TestStreamedFlush: each piece of a streamed body reaches the inner writer
// compressed and flushed, so that what the client has so far decodes to
// every piece so far, before Finish; the head is flushed through.
func TestStreamedFlush(t *testing.T) {
	c := mustNew(t, all)
	for _, k := range []string{"gzip", "br", "zstd"} {
		t.Run(k, func(t *testing.T) {
			r := &recorder{}
			w := c.Wrap(r, "GET", []byte(k))
			defer w.Release()
			if err := w.WriteHead(200, hdrs("content-type", "application/x-ndjson"), -1); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil || r.flushes != 1 {
				t.Fatalf("Flush: %v, inner flushes %d", err, r.flushes)
			}
			var sent []byte
			for i := range 20 {
				ev := []byte(fmt.Sprintf(`{"seq":%d,"msg":"tick %d of a stream that stays incremental"}`+"\n", i, i))
				var err error
				if i%3 == 2 { // several pieces at once
					err = w.WriteBodyv([][]byte{ev[:10], ev[10:]})
				} else {
					err = w.WriteBody(ev)
				}
				if err != nil {
					t.Fatal(err)
				}
				sent = append(sent, ev...)
				if len(r.pieces) != i+1 {
					t.Fatalf("piece %d: inner writer has %d pieces", i, len(r.pieces))
				}
				got, err := decodePrefix(k, r.body)
				if err != nil {
					t.Fatalf("piece %d: %v", i, err)
				}
				if !bytes.Equal(got, sent) {
					t.Fatalf("piece %d: decodes to %q; want %q", i, got, sent)
				}
			}
			if err := w.WriteBody(nil); err != nil || len(r.pieces) != 20 {
				t.Fatalf("an empty piece: %v, %d pieces", err, len(r.pieces))
			}
			if err := w.Finish(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(decode(t, k, r.body), sent) {
				t.Fatal("whole body differs")
			}
		})
	}
}

// TestIncompressibleHeld: a held body that compression does not shrink goes
// out as it is, with its length and Vary, and is not counted.
func TestIncompressibleHeld(t *testing.T) {
	c := mustNew(t, all)
	body := randomBody(8 << 10)
	for _, k := range []string{"gzip", "br", "zstd"} {
		r := &recorder{}
		w := c.Wrap(r, "GET", []byte(k))
		w.WriteHead(200, hdrs("content-type", "text/plain", "etag", `"r"`), int64(len(body)))
		if err := w.WriteBody(body); err != nil {
			t.Fatal(err)
		}
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		if r.get("content-encoding") != "" || r.get("vary") != "accept-encoding" || r.get("etag") != `"r"` ||
			r.bodyLen != int64(len(body)) || !bytes.Equal(r.body, body) {
			t.Errorf("%s: head %v, bodyLen %d", k, r.head, r.bodyLen)
		}
		w.Release()
	}
}

// TestInnerErrors: the inner writer's errors come back as they are (the
// front end recognises its own), and stick.
func TestInnerErrors(t *testing.T) {
	c := mustNew(t, all)
	boom := errors.New("client went away")
	body := htmlBody(600 << 10)
	cases := []struct {
		name    string
		r       *recorder
		bodyLen int64
	}{
		{"head held", &recorder{failHead: boom}, 4096},
		{"head streamed", &recorder{failHead: boom}, -1},
		{"head small", &recorder{failHead: boom}, 10},
		{"body held", &recorder{failBody: boom}, 4096},
		{"body streamed", &recorder{failBody: boom}, -1},
		{"second body streamed", &recorder{failBody: boom, failBodyAt: 1}, -1},
		{"body large", &recorder{failBody: boom}, int64(len(body))},
		{"body small", &recorder{failBody: boom}, 10},
	}
	for _, k := range []string{"gzip", "br", "zstd"} {
		for _, tc := range cases {
			t.Run(k+"/"+tc.name, func(t *testing.T) {
				r := *tc.r
				w := c.Wrap(&r, "GET", []byte(k))
				defer w.Release()
				var first error
				try := func(err error) {
					if first == nil {
						first = err
					}
				}
				try(w.WriteHead(200, hdrs("content-type", "text/html"), tc.bodyLen))
				n := int(tc.bodyLen)
				if n < 0 {
					n = len(body)
				}
				for off := 0; off < n && first == nil; off += 64 << 10 {
					try(w.WriteBody(body[off:min(off+64<<10, n)]))
				}
				if first == nil {
					try(w.Flush())
				}
				if first == nil {
					try(w.Finish())
				}
				if first != boom {
					t.Fatalf("first error %v; want the inner writer's", first)
				}
				if err := w.WriteBody([]byte("more")); err != boom {
					t.Errorf("after the failure WriteBody = %v", err)
				}
				if err := w.Finish(); err != boom {
					t.Errorf("after the failure Finish = %v", err)
				}
			})
		}
	}
}

// TestMisuse: the dispatcher's contract broken.
func TestMisuse(t *testing.T) {
	c := mustNew(t, all)
	body := jsonBody(4096)
	w := c.Wrap(&recorder{}, "GET", []byte("gzip"))
	if err := w.WriteBody(body); err != errBodyBeforeHead {
		t.Errorf("body before head: %v", err)
	}
	w.Release()

	w = c.Wrap(&recorder{}, "GET", []byte("gzip"))
	w.WriteHead(200, nil, int64(len(body)))
	if err := w.WriteHead(200, nil, int64(len(body))); err != errHeadTwice {
		t.Errorf("head twice: %v", err)
	}
	w.Release()

	w = c.Wrap(&recorder{}, "GET", []byte("gzip"))
	w.WriteHead(200, nil, int64(len(body)))
	if err := w.WriteBody(append(body, 'x')); err != errBodyTooLong {
		t.Errorf("body too long: %v", err)
	}
	w.Release()

	r := &recorder{}
	w = c.Wrap(r, "GET", []byte("gzip"))
	w.WriteHead(200, nil, int64(len(body)))
	w.WriteBody(body[:100])
	if err := w.Finish(); err != errBodyShort || r.heads != 0 {
		t.Errorf("short body: %v, inner heads %d", err, r.heads)
	}
	w.Release()

	w = c.Wrap(&recorder{}, "GET", []byte("gzip"))
	w.WriteHead(200, nil, -1)
	if err := w.WriteInterim(103, nil); err != errInterimLate {
		t.Errorf("interim after head: %v", err)
	}
	w.Release()
}

// TestInterimAndFile: informational responses and file answers pass through.
func TestInterimAndFile(t *testing.T) {
	c := mustNew(t, all)
	r := &recorder{}
	w := c.Wrap(r, "GET", []byte("gzip"))
	if err := w.WriteInterim(103, hdrs("link", "</s.css>; rel=preload")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(200, hdrs("cache-control", "max-age=60"), "/srv/big.html"); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.interims) != "[103]" || r.file != "/srv/big.html" || r.status != 200 || len(r.body) != 0 {
		t.Errorf("interims %v, file %q, status %d", r.interims, r.file, r.status)
	}
	w.Release()

	// An inner writer with neither: interims are dropped, a file refused.
	w = c.Wrap(plainWriter{&recorder{}}, "GET", []byte("gzip"))
	if err := w.WriteInterim(103, nil); err != nil {
		t.Errorf("interim: %v", err)
	}
	if err := w.WriteFile(200, nil, "/x"); err != dispatch.ErrNoFileWriter {
		t.Errorf("file: %v", err)
	}
	if err := w.Flush(); err != nil {
		t.Errorf("flush: %v", err)
	}
	w.Release()
}

// TestTrailers: a gRPC response passes uncompressed with its trailers after
// the body; a compressed stream's tail goes before them; a writer that
// cannot send trailers drops them.
func TestTrailers(t *testing.T) {
	c := mustNew(t, all)
	for _, ct := range []string{"application/grpc", "application/grpc+proto", "application/grpc-web+proto", "application/grpc-web-text"} {
		r := &recorder{}
		w := c.Wrap(r, "POST", []byte("gzip, br"))
		if err := w.WriteHead(200, hdrs("content-type", ct), -1); err != nil {
			t.Fatal(err)
		}
		msg := append([]byte{0, 0, 0, 0, 200}, jsonBody(200)...)
		if err := w.WriteBody(msg); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteTrailers(hdrs("grpc-status", "0")); err != nil {
			t.Fatal(err)
		}
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		if r.head["content-encoding"] != nil || !bytes.Equal(r.body, msg) || fmt.Sprint(r.trailers) != "[grpc-status=0]" {
			t.Errorf("%s: encoding %v, body intact %v, trailers %v", ct, r.head["content-encoding"], bytes.Equal(r.body, msg), r.trailers)
		}
		w.Release()
	}
	r := &recorder{}
	w := c.Wrap(r, "GET", []byte("gzip"))
	body := jsonBody(8192)
	if err := w.WriteHead(200, hdrs("content-type", "application/json"), -1); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBody(body); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTrailers(hdrs("x-checksum", "abc")); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := decode(t, "gzip", r.body); !bytes.Equal(got, body) || fmt.Sprint(r.trailers) != "[x-checksum=abc]" {
		t.Errorf("compressed stream: body intact %v, trailers %v", bytes.Equal(got, body), r.trailers)
	}
	w.Release()
	w = c.Wrap(plainWriter{&recorder{}}, "POST", []byte("gzip"))
	if err := w.WriteHead(200, hdrs("content-type", "application/grpc"), -1); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTrailers(hdrs("grpc-status", "0")); err != nil {
		t.Errorf("trailers to a writer without them: %v", err)
	}
	w.Release()
}

// plainWriter hides all but dispatch.ResponseWriter.
type plainWriter struct{ r *recorder }

func (p plainWriter) WriteHead(s int, h []workerproto.Header, n int64) error {
	return p.r.WriteHead(s, h, n)
}
func (p plainWriter) WriteBody(b []byte) error     { return p.r.WriteBody(b) }
func (p plainWriter) WriteBodyv(bs [][]byte) error { return p.r.WriteBodyv(bs) }

// TestHeadersCopied: a held response's head is the worker's as it was at
// WriteHead, though the dispatcher reuses that memory before the body ends.
func TestHeadersCopied(t *testing.T) {
	c := mustNew(t, all)
	body := jsonBody(8192)
	r := &recorder{}
	w := c.Wrap(r, "GET", []byte("zstd"))
	defer w.Release()
	h := hdrs("content-type", "application/json", "x-trace", "abc123", "vary", "origin")
	w.WriteHead(200, h, int64(len(body)))
	for _, f := range h {
		for i := range f.Value {
			f.Value[i] = '!'
		}
	}
	w.WriteBody(body[:4096])
	w.WriteBody(body[4096:])
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if r.get("x-trace") != "abc123" || r.get("content-type") != "application/json" || r.get("vary") != "origin, accept-encoding" {
		t.Errorf("head %v", r.head)
	}
}

// TestPooledReuse: a released Writer, taken again, carries nothing over.
func TestPooledReuse(t *testing.T) {
	c := mustNew(t, Config{Encodings: []string{"gzip", "zstd", "br"}})
	for i := range 50 {
		k := []string{"gzip", "zstd", "br"}[i%3]
		body := htmlBody(2000 + i*997)
		r := &recorder{}
		w := c.Wrap(r, "GET", []byte(k))
		bodyLen := int64(len(body))
		if i%2 == 1 {
			bodyLen = -1
		}
		w.WriteHead(200, hdrs("etag", fmt.Sprintf(`"%d"`, i)), bodyLen)
		w.WriteBody(body)
		if i%5 == 4 {
			w.Release() // abandoned mid-response: the encoder is reset
			continue
		}
		if err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		w.Release()
		if r.get("etag") != fmt.Sprintf(`W/"%d"`, i) || !bytes.Equal(decode(t, k, r.body), body) {
			t.Fatalf("response %d: head %v", i, r.head)
		}
	}
}
