package compress

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/covetpy/covetpy/workerproto"
)

// Config is the gateway's compression settings. The zero value is off.
type Config struct {
	// Encodings are the content codings offered, in the order that breaks a
	// tie between codings a client accepts with equal q-values: a subset of
	// gzip, br and zstd. Empty (the default) turns compression off.
	Encodings []string `config:"compression" help:"response content codings offered, in preference order for equal q-values: a subset of gzip, br, zstd; empty = off"`
	// MinBytes: a body of known length under this many bytes is sent as it
	// is. 0 means 1024.
	MinBytes int `config:"compression_min_bytes" help:"bodies of known length under this many bytes are not compressed; 0 = 1024"`
	// GzipLevel is gzip's level, 1 (fastest) to 9 (smallest). 0 means 5.
	GzipLevel int `config:"compression_gzip_level" help:"gzip level, 1 (fastest) .. 9 (smallest); 0 = 5"`
	// BrotliLevel is brotli's quality, 1 to 11. 0 means 4.
	BrotliLevel int `config:"compression_br_level" help:"brotli quality, 1 (fastest) .. 11 (smallest); 0 = 4"`
	// ZstdLevel is a zstd level, 1 to 22, mapped onto the encoder's four
	// speeds (1-2 fastest, 3-5 default, 6-9 better, 10-22 best). 0 means 3.
	ZstdLevel int `config:"compression_zstd_level" help:"zstd level 1 .. 22 (1-2 fastest, 3-5 default, 6-9 better, 10+ best); 0 = 3"`
}

// Defaults of the zero Config's fields.
const (
	DefaultMinBytes    = 1024
	DefaultGzipLevel   = 5
	DefaultBrotliLevel = 4
	DefaultZstdLevel   = 3
)

const (
	// bufferBytes: a known-length body up to this size is held and
	// compressed whole, so that the client gets an exact Content-Length.
	bufferBytes = 256 << 10
	// sinkBytes: compressed output is handed to the inner writer once this
	// much has gathered (and at every flush).
	sinkBytes = 32 << 10
	// brotliWindow and zstdWindow bound the encoders' history, and with it
	// their memory: 2^16 = 64 KiB for brotli, 128 KiB for zstd (gzip's is
	// 32 KiB). Measured on a 1 MiB HTML page and 64 KiB of JSON, larger
	// windows gain under 1% in size and cost 1.4 MiB (brotli, 2^18) and
	// 0.4 MiB (zstd, 512 KiB) more per encoder; an encoder held by a stream
	// takes about 1.0 MiB (gzip 5), 1.8 MiB (br 4) or 2.0 MiB (zstd 3).
	brotliWindow = 16
	zstdWindow   = 128 << 10
)

// coding is one content coding the Compressor offers.
type coding uint8

const (
	codingGzip coding = iota
	codingBr
	codingZstd
	numCodings
)

var codingNames = [numCodings]string{"gzip", "br", "zstd"}

func (c coding) String() string { return codingNames[c] }

// encoder is what gzip.Writer, brotli.Writer and zstd.Encoder have in common.
type encoder interface {
	io.Writer
	Flush() error
	Close() error
	Reset(w io.Writer)
}

// Compressor is a compiled Config. It is safe for concurrent use.
type Compressor struct {
	offer    []coding // Config.Encodings, in order
	minBytes int64
	levels   [numCodings]int
	m        *metrics.Metrics
	encoders [numCodings]sync.Pool // of encoder, Reset to io.Discard
	writers  sync.Pool             // of *Writer
}

// New validates cfg and compiles it. It returns nil, nil when cfg turns
// compression off (no encodings); errors name the setting at fault. m may be
// nil (no metrics).
func New(cfg Config, m *metrics.Metrics) (*Compressor, error) {
	if len(cfg.Encodings) == 0 {
		return nil, nil
	}
	c := &Compressor{m: m, minBytes: DefaultMinBytes}
	var seen [numCodings]bool
	for _, e := range cfg.Encodings {
		k, ok := parseCoding([]byte(strings.TrimSpace(e)))
		if !ok {
			return nil, fmt.Errorf("compression: %q is not supported (gzip, br or zstd)", e)
		}
		if seen[k] {
			return nil, fmt.Errorf("compression: %q is listed twice", e)
		}
		seen[k] = true
		c.offer = append(c.offer, k)
	}
	switch {
	case cfg.MinBytes < 0:
		return nil, fmt.Errorf("compression_min_bytes: %d is negative", cfg.MinBytes)
	case cfg.MinBytes > 0:
		c.minBytes = int64(cfg.MinBytes)
	}
	var err error
	if c.levels[codingGzip], err = level("compression_gzip_level", cfg.GzipLevel, DefaultGzipLevel, 1, 9); err != nil {
		return nil, err
	}
	if c.levels[codingBr], err = level("compression_br_level", cfg.BrotliLevel, DefaultBrotliLevel, 1, 11); err != nil {
		return nil, err
	}
	if c.levels[codingZstd], err = level("compression_zstd_level", cfg.ZstdLevel, DefaultZstdLevel, 1, 22); err != nil {
		return nil, err
	}
	// Make one encoder of each offered coding now: a bad option fails New,
	// not a request.
	for _, k := range c.offer {
		e, err := c.newEncoder(k)
		if err != nil {
			return nil, fmt.Errorf("compression: %s: %w", k, err)
		}
		c.encoders[k].Put(e)
	}
	return c, nil
}

func level(key string, v, def, lo, hi int) (int, error) {
	if v == 0 {
		return def, nil
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%s: %d is outside %d..%d", key, v, lo, hi)
	}
	return v, nil
}

// parseCoding maps a content-coding name (any case; x-gzip is gzip, RFC 9110
// 8.4.1.3) to a coding.
func parseCoding(b []byte) (coding, bool) {
	switch {
	case workerproto.NameIs(b, "gzip"), workerproto.NameIs(b, "x-gzip"):
		return codingGzip, true
	case workerproto.NameIs(b, "br"):
		return codingBr, true
	case workerproto.NameIs(b, "zstd"):
		return codingZstd, true
	}
	return 0, false
}

// newEncoder makes an encoder of coding k at the configured level, writing
// to io.Discard until Reset.
func (c *Compressor) newEncoder(k coding) (encoder, error) {
	switch k {
	case codingGzip:
		return gzip.NewWriterLevel(io.Discard, c.levels[k])
	case codingBr:
		return brotli.NewWriterOptions(io.Discard, brotli.WriterOptions{Quality: c.levels[k], LGWin: brotliWindow}), nil
	default:
		// One goroutine-free encoder per stream (concurrency 1): a pooled
		// encoder dropped by the pool leaks nothing.
		return zstd.NewWriter(io.Discard,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(c.levels[k])),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithLowerEncoderMem(true))
	}
}

// getEncoder takes an encoder of coding k from the pool (or makes one) and
// points it at w.
func (c *Compressor) getEncoder(k coding, w io.Writer) encoder {
	e, _ := c.encoders[k].Get().(encoder)
	if e == nil {
		var err error
		if e, err = c.newEncoder(k); err != nil {
			panic(err) // cannot happen: New made one with the same options
		}
	}
	e.Reset(w)
	return e
}

func (c *Compressor) putEncoder(k coding, e encoder) {
	e.Reset(io.Discard) // drop the reference to the stream's sink
	c.encoders[k].Put(e)
}

// Wrap returns a Writer that compresses w's response when it qualifies, or
// nil when nothing of this exchange will be compressed: a HEAD request, or a
// client that accepts none of the offered codings (acceptEncoding is the
// request's Accept-Encoding value; absent or empty means identity only).
// A nil Compressor (compression off) returns nil.
func (c *Compressor) Wrap(w dispatch.ResponseWriter, method string, acceptEncoding []byte) *Writer {
	if c == nil || method == "HEAD" {
		return nil
	}
	k, ok := negotiate(acceptEncoding, c.offer)
	if !ok {
		return nil
	}
	cw, _ := c.writers.Get().(*Writer)
	if cw == nil {
		cw = new(Writer)
	}
	cw.reset(c, w, k)
	return cw
}

// Varies reports whether a response that was not wrapped (Wrap returned nil
// because the client accepts none of the offered codings) should still say
// Vary: accept-encoding, because to another client it would have been
// compressed (RFC 9110 12.5.5): compression is on, and the response is not
// one of those never compressed (eligible; its length does not matter). The
// caller adds the field where the head has none naming accept-encoding. A nil
// Compressor says false.
func (c *Compressor) Varies(status int, headers []workerproto.Header) bool {
	return c != nil && eligible(status, headers, -1, c.minBytes) != asIs
}
