package compress

import (
	"fmt"
	"testing"

	"github.com/covetpy/covetpy/workerproto"
)

// discard is an inner writer that counts the bytes it is given.
type discard struct{ n int64 }

func (d *discard) WriteHead(int, []workerproto.Header, int64) error { return nil }
func (d *discard) WriteBody(p []byte) error                         { d.n += int64(len(p)); return nil }
func (d *discard) WriteBodyv(ps [][]byte) error {
	for _, p := range ps {
		d.n += int64(len(p))
	}
	return nil
}

// BenchmarkCompress: one response through Wrap, WriteHead, WriteBody (in
// 64 KiB pieces, as the dispatcher hands a large body over), Finish and
// Release, at the default levels; MB/s is of the identity body, ratio the
// compressed size over it. "held" is a known length (a body of up to 256 KiB
// is compressed whole; the 1 MiB page goes as it comes, unflushed),
// "streamed" a body of unknown length, flushed after each piece.
//
//	go test -run '^$' -bench Compress -benchtime 2s ./gateway/compress/
func BenchmarkCompress(b *testing.B) {
	bodies := []struct {
		name string
		body []byte
		ct   string
	}{
		{"json-64KiB", jsonBody(64 << 10), "application/json"},
		{"html-1MiB", htmlBody(1 << 20), "text/html; charset=utf-8"},
	}
	for _, bd := range bodies {
		for _, k := range []string{"gzip", "br", "zstd"} {
			for _, streamed := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/held", bd.name, k)
				if streamed {
					name = fmt.Sprintf("%s/%s/streamed", bd.name, k)
				}
				b.Run(name, func(b *testing.B) {
					benchOne(b, all, k, bd.body, bd.ct, streamed)
				})
			}
		}
	}
}

// BenchmarkLevels compares levels around the defaults on the 64 KiB JSON
// body, held (the common API response).
//
//	go test -run '^$' -bench Levels ./gateway/compress/
func BenchmarkLevels(b *testing.B) {
	body := jsonBody(64 << 10)
	html := htmlBody(1 << 20)
	for _, lv := range []struct {
		k   string
		cfg Config
	}{
		{"gzip", Config{Encodings: []string{"gzip"}, GzipLevel: 1}},
		{"gzip", Config{Encodings: []string{"gzip"}, GzipLevel: 4}},
		{"gzip", Config{Encodings: []string{"gzip"}, GzipLevel: 5}},
		{"gzip", Config{Encodings: []string{"gzip"}, GzipLevel: 6}},
		{"br", Config{Encodings: []string{"br"}, BrotliLevel: 3}},
		{"br", Config{Encodings: []string{"br"}, BrotliLevel: 4}},
		{"br", Config{Encodings: []string{"br"}, BrotliLevel: 5}},
		{"zstd", Config{Encodings: []string{"zstd"}, ZstdLevel: 1}},
		{"zstd", Config{Encodings: []string{"zstd"}, ZstdLevel: 3}},
		{"zstd", Config{Encodings: []string{"zstd"}, ZstdLevel: 6}},
	} {
		level := lv.cfg.GzipLevel + lv.cfg.BrotliLevel + lv.cfg.ZstdLevel
		b.Run(fmt.Sprintf("json-64KiB/%s-%d", lv.k, level), func(b *testing.B) {
			benchOne(b, lv.cfg, lv.k, body, "application/json", false)
		})
		b.Run(fmt.Sprintf("html-1MiB/%s-%d", lv.k, level), func(b *testing.B) {
			benchOne(b, lv.cfg, lv.k, html, "text/html", false)
		})
	}
}

func benchOne(b *testing.B, cfg Config, k string, body []byte, ct string, streamed bool) {
	c := mustNew(b, cfg)
	head := hdrs("content-type", ct)
	ae := []byte(k)
	bodyLen := int64(len(body))
	if streamed {
		bodyLen = -1
	}
	const piece = 64 << 10
	d := &discard{}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := c.Wrap(d, "GET", ae)
		if err := w.WriteHead(200, head, bodyLen); err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(body); off += piece {
			if err := w.WriteBody(body[off:min(off+piece, len(body))]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Finish(); err != nil {
			b.Fatal(err)
		}
		w.Release()
	}
	b.ReportMetric(float64(d.n)/float64(b.N)/float64(len(body)), "ratio")
}
