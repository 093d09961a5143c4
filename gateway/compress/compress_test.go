package compress

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

func TestNewConfig(t *testing.T) {
	if c, err := New(Config{}, nil); c != nil || err != nil {
		t.Fatalf("New(zero) = %v, %v; want off", c, err)
	}
	var off *Compressor
	if off.Wrap(&recorder{}, "GET", []byte("gzip")) != nil {
		t.Fatal("a nil Compressor wrapped")
	}
	c := mustNew(t, Config{Encodings: []string{" ZSTD", "x-gzip"}})
	if got := fmt.Sprint(c.offer); got != "[zstd gzip]" {
		t.Errorf("offer = %s", got)
	}
	if c.minBytes != DefaultMinBytes || c.levels != [numCodings]int{DefaultGzipLevel, DefaultBrotliLevel, DefaultZstdLevel} {
		t.Errorf("defaults: min %d, levels %v", c.minBytes, c.levels)
	}
	bad := []struct {
		cfg  Config
		want string
	}{
		{Config{Encodings: []string{"gzip", "deflate"}}, `compression: "deflate" is not supported (gzip, br or zstd)`},
		{Config{Encodings: []string{"gzip", ""}}, `compression: "" is not supported (gzip, br or zstd)`},
		{Config{Encodings: []string{"identity"}}, `compression: "identity" is not supported (gzip, br or zstd)`},
		{Config{Encodings: []string{"gzip", "x-gzip"}}, `compression: "x-gzip" is listed twice`},
		{Config{Encodings: []string{"br"}, MinBytes: -1}, `compression_min_bytes: -1 is negative`},
		{Config{Encodings: []string{"gzip"}, GzipLevel: 10}, `compression_gzip_level: 10 is outside 1..9`},
		{Config{Encodings: []string{"gzip"}, GzipLevel: -1}, `compression_gzip_level: -1 is outside 1..9`},
		{Config{Encodings: []string{"br"}, BrotliLevel: 12}, `compression_br_level: 12 is outside 1..11`},
		{Config{Encodings: []string{"zstd"}, ZstdLevel: 23}, `compression_zstd_level: 23 is outside 1..22`},
	}
	for _, b := range bad {
		c, err := New(b.cfg, nil)
		if c != nil || err == nil || err.Error() != b.want {
			t.Errorf("New(%+v) = %v, %v; want error %q", b.cfg, c, err, b.want)
		}
	}
	// Every level in range makes a working encoder.
	for l := 1; l <= 22; l++ {
		cfg := Config{Encodings: []string{"zstd"}, ZstdLevel: l}
		if l <= 9 {
			cfg.Encodings, cfg.GzipLevel = append(cfg.Encodings, "gzip"), l
		}
		if l <= 11 {
			cfg.Encodings, cfg.BrotliLevel = append(cfg.Encodings, "br"), l
		}
		c := mustNew(t, cfg)
		for _, k := range c.offer {
			body := jsonBody(4096)
			r := &recorder{}
			w := c.Wrap(r, "GET", []byte(k.String()))
			w.WriteHead(200, hdrs("content-type", "application/json"), int64(len(body)))
			w.WriteBody(body)
			if err := w.Finish(); err != nil || !bytes.Equal(decode(t, k.String(), r.body), body) {
				t.Fatalf("level %d %s: %v", l, k, err)
			}
			w.Release()
		}
	}
}

func TestNegotiate(t *testing.T) {
	gbz := []coding{codingGzip, codingBr, codingZstd}
	zbg := []coding{codingZstd, codingBr, codingGzip}
	cases := []struct {
		ae    string
		offer []coding
		want  string // "" = none
	}{
		{"", gbz, ""},
		{"   ", gbz, ""},
		{"identity", gbz, ""},
		{"gzip", gbz, "gzip"},
		{"GZip", gbz, "gzip"},
		{"x-gzip", gbz, "gzip"},
		{"gzip, br, zstd", gbz, "gzip"},
		{"gzip, br, zstd", zbg, "zstd"},
		{"br;q=1.0, gzip;q=0.8", gbz, "br"},
		{"gzip;q=0.8, br;q=0.9, zstd;q=0.85", gbz, "br"},
		{"gzip;q=0", gbz, ""},
		{"gzip;q=0.000", gbz, ""},
		{"gzip;q=0.001", gbz, "gzip"},
		{"gzip ; Q = 0.5 , zstd;q=0.4", gbz, "gzip"},
		{"gzip;q=0, *", gbz, "br"},         // "*" covers the codings not named
		{"gzip;q=0, *;q=0.5", zbg, "zstd"}, // config order among equal q
		{"*", zbg, "zstd"},
		{"*;q=0", gbz, ""},
		{"*;q=0, br", gbz, "br"},
		{"identity;q=0", gbz, ""}, // refuses identity, names nothing we offer
		{"identity;q=0, gzip", gbz, "gzip"},
		{"deflate, compress", gbz, ""},
		{"br", []coding{codingGzip}, ""}, // not offered
		{"*", []coding{codingBr}, "br"},
		{"gzip;q=1.5", gbz, ""},       // malformed: ignored
		{"gzip;q=abc, br", gbz, "br"}, // malformed: ignored
		{"gzip;q=1.001", gbz, ""},     // over 1
		{"gzip;q=0.1234", gbz, ""},    // more than three decimals
		{"gzip;q=1.000", gbz, "gzip"},
		{"gzip;level=9;q=0.2, br;q=0.1", gbz, "gzip"}, // other parameters ignored
		{"gzip;q=0.2, gzip;q=0.9, br;q=0.5", gbz, "gzip"},
		{",,gzip,,", gbz, "gzip"},
		{"zstd\t;\tq=0.9, gzip;q=0.9", gbz, "gzip"},
	}
	for _, tc := range cases {
		k, ok := negotiate([]byte(tc.ae), tc.offer)
		got := ""
		if ok {
			got = k.String()
		}
		if got != tc.want {
			t.Errorf("negotiate(%q, %v) = %q; want %q", tc.ae, tc.offer, got, tc.want)
		}
	}
}

func TestWrapNil(t *testing.T) {
	c := mustNew(t, all)
	if c.Wrap(&recorder{}, "HEAD", []byte("gzip")) != nil {
		t.Error("HEAD wrapped")
	}
	if c.Wrap(&recorder{}, "GET", nil) != nil {
		t.Error("no Accept-Encoding wrapped")
	}
	if c.Wrap(&recorder{}, "GET", []byte("gzip;q=0, deflate")) != nil {
		t.Error("refused codings wrapped")
	}
	w := c.Wrap(&recorder{}, "POST", []byte("br;q=0.5, gzip;q=0.4"))
	if w == nil || w.Coding() != "br" {
		t.Fatalf("POST with br: %v", w)
	}
	w.Release()
}

// TestNever: the rules under which a response passes through untouched, or
// only gains Vary.
func TestNever(t *testing.T) {
	c := mustNew(t, all)
	body := htmlBody(8 << 10)
	cases := []struct {
		name    string
		status  int
		head    []string
		bodyLen int64
		vary    bool // Vary: accept-encoding added
	}{
		{"204", 204, nil, 0, false},
		{"304", 304, []string{"etag", `"x"`}, 0, false},
		{"206", 206, []string{"content-type", "text/html"}, int64(len(body)), false},
		{"content-range", 200, []string{"content-range", "bytes 0-9/100"}, int64(len(body)), false},
		{"content-encoding", 200, []string{"content-encoding", "gzip"}, int64(len(body)), false},
		{"Content-Encoding identity", 200, []string{"Content-Encoding", "identity"}, int64(len(body)), false},
		{"no-transform", 200, []string{"cache-control", "public, No-Transform"}, int64(len(body)), false},
		{"sse", 200, []string{"content-type", "text/event-stream; charset=utf-8"}, -1, false},
		{"png", 200, []string{"content-type", "image/png"}, int64(len(body)), false},
		{"jpeg", 200, []string{"content-type", "IMAGE/JPEG"}, int64(len(body)), false},
		{"video", 200, []string{"content-type", "video/mp4"}, -1, false},
		{"audio", 200, []string{"content-type", "audio/ogg"}, int64(len(body)), false},
		{"woff2", 200, []string{"content-type", "font/woff2"}, int64(len(body)), false},
		{"zip", 200, []string{"content-type", "application/zip"}, int64(len(body)), false},
		{"gzip file", 200, []string{"content-type", "application/gzip"}, int64(len(body)), false},
		{"zstd file", 200, []string{"content-type", "application/zstd"}, int64(len(body)), false},
		{"octet-stream", 200, []string{"content-type", "application/octet-stream"}, int64(len(body)), false},
		{"pdf", 200, []string{"content-type", "application/pdf"}, int64(len(body)), false},
		{"grpc", 200, []string{"content-type", "application/grpc+proto"}, -1, false},
		{"byteranges", 200, []string{"content-type", "multipart/byteranges; boundary=x"}, int64(len(body)), false},
		{"small", 200, []string{"content-type", "text/html"}, 1023, true},
		{"empty", 200, []string{"content-type", "text/html"}, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			w := c.Wrap(r, "GET", []byte("gzip, br, zstd"))
			defer w.Release()
			b := body
			if tc.bodyLen >= 0 {
				b = body[:min(int(tc.bodyLen), len(body))]
			}
			if tc.status == 204 || tc.status == 304 {
				b = nil
			}
			if err := w.WriteHead(tc.status, hdrs(tc.head...), tc.bodyLen); err != nil {
				t.Fatal(err)
			}
			if len(b) > 0 {
				if err := w.WriteBody(b); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Finish(); err != nil {
				t.Fatal(err)
			}
			if r.status != tc.status || r.bodyLen != tc.bodyLen || !bytes.Equal(r.body, b) {
				t.Errorf("passed through as %d, len %d, %d bytes; want %d, %d, %d", r.status, r.bodyLen, len(r.body), tc.status, tc.bodyLen, len(b))
			}
			if ce := r.get("content-encoding"); ce != "" && !strings.EqualFold(tc.head[0], "content-encoding") {
				t.Errorf("content-encoding %q", ce)
			}
			if got := r.get("vary") == "accept-encoding"; got != tc.vary {
				t.Errorf("vary %q; want accept-encoding: %v", r.get("vary"), tc.vary)
			}
			for i := 0; i < len(tc.head); i += 2 {
				if r.get(tc.head[i]) != tc.head[i+1] {
					t.Errorf("%s: %q; want %q", tc.head[i], r.get(tc.head[i]), tc.head[i+1])
				}
			}
		})
	}
}

func TestCompressedTypes(t *testing.T) {
	compressible := []string{"text/html", "text/plain; charset=utf-8", "application/json", "application/javascript",
		"image/svg+xml", "image/bmp", "text/css", "application/xml", "font/ttf", "", "application/wasm"}
	for _, ct := range compressible {
		if compressedType([]byte(ct)) {
			t.Errorf("%q counted as compressed", ct)
		}
	}
	for _, ct := range []string{"image/webp", "image/avif", "image/gif", " video/webm ;codecs=vp9", "audio/mpeg",
		"font/woff", "application/x-7z-compressed", "application/x-xz", "application/vnd.rar", "application/grpc",
		"text/event-stream", "Text/Event-Stream"} {
		if !compressedType([]byte(ct)) {
			t.Errorf("%q counted as compressible", ct)
		}
	}
}

// TestHeadFields: Vary merging, Content-Length dropped, ETag weakened.
func TestHeadFields(t *testing.T) {
	c := mustNew(t, Config{Encodings: []string{"gzip"}})
	body := jsonBody(4096)
	cases := []struct {
		name     string
		head     []string
		wantVary string
		wantETag string
	}{
		{"none", nil, "accept-encoding", ""},
		{"merged", []string{"vary", "origin"}, "origin, accept-encoding", ""},
		{"merged list", []string{"Vary", " origin, cookie "}, "origin, cookie, accept-encoding", ""},
		{"already", []string{"vary", "Origin, Accept-Encoding"}, "Origin, Accept-Encoding", ""},
		{"star", []string{"vary", "*"}, "*", ""},
		{"second field names it", []string{"vary", "origin", "vary", "accept-encoding"}, "origin, accept-encoding", ""},
		{"empty vary", []string{"vary", ""}, "accept-encoding", ""},
		{"strong etag", []string{"etag", `"abc"`}, "accept-encoding", `W/"abc"`},
		{"weak etag", []string{"etag", `W/"abc"`}, "accept-encoding", `W/"abc"`},
		{"both", []string{"etag", `"v1"`, "vary", "origin"}, "origin, accept-encoding", `W/"v1"`},
	}
	for _, tc := range cases {
		for _, bodyLen := range []int64{int64(len(body)), -1} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, bodyLen), func(t *testing.T) {
				r := &recorder{}
				w := c.Wrap(r, "GET", []byte("gzip"))
				defer w.Release()
				h := append([]string{"content-type", "application/json", "content-length", fmt.Sprint(len(body))}, tc.head...)
				if err := w.WriteHead(200, hdrs(h...), bodyLen); err != nil {
					t.Fatal(err)
				}
				w.WriteBody(body)
				if err := w.Finish(); err != nil {
					t.Fatal(err)
				}
				vary := r.get("vary")
				if r.head["Vary"] != nil {
					vary = strings.Join(r.head["Vary"], ", ")
				}
				if vary != tc.wantVary {
					t.Errorf("vary %q; want %q", vary, tc.wantVary)
				}
				if r.get("etag") != tc.wantETag {
					t.Errorf("etag %q; want %q", r.get("etag"), tc.wantETag)
				}
				if r.get("content-length") != "" || r.get("content-encoding") != "gzip" || r.get("content-type") != "application/json" {
					t.Errorf("head %v", r.head)
				}
				if bodyLen >= 0 && r.bodyLen != int64(len(r.body)) || bodyLen < 0 && r.bodyLen != -1 {
					t.Errorf("bodyLen %d for %d bytes", r.bodyLen, len(r.body))
				}
				if !bytes.Equal(decode(t, "gzip", r.body), body) {
					t.Error("body differs")
				}
			})
		}
	}
}

// TestRoundTrip: every coding, sizes around MinBytes and past the held
// bound, known length and streamed, in pieces of several sizes.
func TestRoundTrip(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(all, m)
	if err != nil {
		t.Fatal(err)
	}
	big := htmlBody(1 << 20)
	sizes := []int{0, 1, DefaultMinBytes - 1, DefaultMinBytes, 64 << 10, bufferBytes, bufferBytes + 1, 1 << 20}
	want := map[string]float64{}
	for _, k := range []string{"gzip", "br", "zstd"} {
		for _, n := range sizes {
			for _, streamed := range []bool{false, true} {
				for _, piece := range []int{n + 1, 1000, 16 << 10} {
					name := fmt.Sprintf("%s/%d/streamed=%v/piece=%d", k, n, streamed, piece)
					body := big[:n]
					r := &recorder{}
					w := c.Wrap(r, "GET", []byte(k))
					bodyLen := int64(n)
					if streamed {
						bodyLen = -1
					}
					if err := w.WriteHead(200, hdrs("content-type", "text/html; charset=utf-8"), bodyLen); err != nil {
						t.Fatal(name, err)
					}
					for off := 0; off < n; off += piece {
						if err := w.WriteBody(body[off:min(off+piece, n)]); err != nil {
							t.Fatal(name, err)
						}
					}
					if err := w.Finish(); err != nil {
						t.Fatal(name, err)
					}
					w.Release()
					compressed := streamed || n >= DefaultMinBytes
					got := r.body
					if compressed {
						if r.get("content-encoding") != k {
							t.Fatalf("%s: content-encoding %q", name, r.get("content-encoding"))
						}
						want[k]++
						got = decode(t, k, r.body)
						if n > 1000 && len(r.body) >= n/2 {
							t.Errorf("%s: %d bytes compressed to %d", name, n, len(r.body))
						}
					} else if r.get("content-encoding") != "" {
						t.Fatalf("%s: compressed under MinBytes", name)
					}
					if !bytes.Equal(got, body) {
						t.Fatalf("%s: body differs (%d bytes, want %d)", name, len(got), n)
					}
					switch {
					case !streamed && n <= bufferBytes && r.bodyLen != int64(len(r.body)):
						t.Errorf("%s: held body sent with length %d, has %d", name, r.bodyLen, len(r.body))
					case (streamed || n > bufferBytes) && r.bodyLen != -1:
						t.Errorf("%s: bodyLen %d; want -1", name, r.bodyLen)
					}
				}
			}
		}
	}
	for k, n := range want {
		if got := compressedCount(t, reg, k); got != n {
			t.Errorf("compressed_responses_total{encoding=%q} = %v; want %v", k, got, n)
		}
	}
}

// compressedCount reads compressed_responses_total{encoding} from reg.
func compressedCount(t *testing.T, reg *prometheus.Registry, encoding string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasSuffix(mf.GetName(), "compressed_responses_total") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "encoding" && l.GetValue() == encoding {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
