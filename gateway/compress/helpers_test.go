package compress

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/covetpy/covetpy/workerproto"
)

// recorder is an inner dispatch.ResponseWriter that keeps what it is given
// (copied: a head's fields and a body's bytes are valid only during the
// call), with optional failures.
type recorder struct {
	status   int
	head     map[string][]string
	bodyLen  int64
	heads    int
	body     []byte
	pieces   [][]byte // each WriteBody/WriteBodyv call's bytes
	flushes  int
	interims []int
	file     string
	trailers []string // "name=value", after the body

	failHead, failBody error
	failBodyAt         int // the WriteBody call (0-based) that fails with failBody
	onPiece            func(body []byte)
}

func (r *recorder) WriteHead(status int, headers []workerproto.Header, bodyLen int64) error {
	r.heads++
	if r.failHead != nil {
		return r.failHead
	}
	r.status, r.bodyLen = status, bodyLen
	r.head = map[string][]string{}
	for _, h := range headers {
		n := string(h.Name)
		r.head[n] = append(r.head[n], string(h.Value))
	}
	return nil
}

func (r *recorder) WriteBody(p []byte) error { return r.WriteBodyv([][]byte{p}) }

func (r *recorder) WriteBodyv(ps [][]byte) error {
	if r.failBody != nil && len(r.pieces) == r.failBodyAt {
		return r.failBody
	}
	var piece []byte
	for _, p := range ps {
		piece = append(piece, p...)
	}
	r.pieces = append(r.pieces, piece)
	r.body = append(r.body, piece...)
	if r.onPiece != nil {
		r.onPiece(r.body)
	}
	return nil
}

func (r *recorder) Flush() error { r.flushes++; return nil }

func (r *recorder) WriteInterim(status int, headers []workerproto.Header) error {
	r.interims = append(r.interims, status)
	return nil
}

func (r *recorder) WriteTrailers(headers []workerproto.Header) error {
	for _, h := range headers {
		r.trailers = append(r.trailers, string(h.Name)+"="+string(h.Value))
	}
	return nil
}

func (r *recorder) WriteFile(status int, headers []workerproto.Header, path string) error {
	r.status, r.file = status, path
	return nil
}

// get returns a field's values joined as one list.
func (r *recorder) get(name string) string { return strings.Join(r.head[name], ", ") }

// hdrs builds a head from name, value pairs.
func hdrs(kv ...string) []workerproto.Header {
	var hs []workerproto.Header
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, workerproto.Header{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return hs
}

// decode decodes a whole body of the given coding.
func decode(t testing.TB, coding string, b []byte) []byte {
	t.Helper()
	out, err := decodePrefix(coding, b)
	if err != nil {
		t.Fatalf("decode %s (%d bytes): %v", coding, len(b), err)
	}
	return out
}

// decodePrefix decodes b, which may be the start of a stream: it returns
// what decodes from it, and an error other than a stream cut short.
func decodePrefix(coding string, b []byte) ([]byte, error) {
	var r io.Reader
	switch coding {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("no coding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err == io.ErrUnexpectedEOF {
		err = nil
	}
	return out, err
}

// jsonBody is a representative JSON document of about n bytes.
func jsonBody(n int) []byte {
	rng := rand.New(rand.NewSource(1))
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"user-%d","email":"user%d@example.com","active":%t,"score":%.3f,"tags":["a%d","b%d"]}`,
			i, rng.Intn(100000), rng.Intn(100000), rng.Intn(2) == 0, rng.Float64()*100, rng.Intn(50), rng.Intn(50))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// htmlBody is a representative HTML page of about n bytes.
func htmlBody(n int) []byte {
	rng := rand.New(rand.NewSource(2))
	words := strings.Fields("the gateway owns every socket and hands each parsed request to a worker through a ring " +
		"buffer framed with MessagePack while Python handlers answer with ordinary decorated functions")
	var b bytes.Buffer
	b.WriteString("<!doctype html><html><head><title>Report</title><link rel=stylesheet href=/s.css></head><body>\n")
	for i := 0; b.Len() < n-32; i++ {
		fmt.Fprintf(&b, `<div class="row r%d"><a href="/item/%d">`, i%7, rng.Intn(1000000))
		for j := 0; j < 12; j++ {
			b.WriteString(words[rng.Intn(len(words))])
			b.WriteByte(' ')
		}
		b.WriteString("</a></div>\n")
	}
	b.WriteString("</body></html>\n")
	return b.Bytes()
}

// randomBody is n incompressible bytes.
func randomBody(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(3)).Read(b)
	return b
}

func mustNew(t testing.TB, cfg Config) *Compressor {
	t.Helper()
	c, err := New(cfg, nil)
	if err != nil || c == nil {
		t.Fatalf("New(%+v) = %v, %v", cfg, c, err)
	}
	return c
}

var all = Config{Encodings: []string{"gzip", "br", "zstd"}}
