package http1

import "errors"

// Default limits, used for every Limits field left at zero.
const (
	DefaultMaxRequestLine   = 8 << 10  // 8 KiB
	DefaultMaxHeaderBytes   = 64 << 10 // 64 KiB
	DefaultMaxHeaderFields  = 100
	DefaultMaxBodyBytes     = 10 << 20 // 10 MiB
	DefaultMaxChunkExtBytes = 4 << 10  // 4 KiB
	DefaultMaxTrailerBytes  = 16 << 10 // 16 KiB
)

// maxLimit caps every size limit so that offsets fit comfortably in an int32.
const maxLimit = 1 << 30

// Limits bounds what a Parser accepts from a peer. The zero value of every
// field means the documented default; negative values are invalid.
type Limits struct {
	// MaxRequestLine is the longest request line in bytes, CRLF excluded,
	// counting any empty lines ignored before it. Longer: 414.
	// Default 8 KiB.
	MaxRequestLine int `config:"max_request_line" help:"longest request line in bytes, then 414; 0 = 8 KiB"`
	// MaxHeaderBytes bounds the header section: every byte after the
	// request line's LF up to and including the final empty line.
	// Larger: 431. Default 64 KiB.
	MaxHeaderBytes int `config:"max_header_bytes" help:"largest header section in bytes, then 431; 0 = 64 KiB"`
	// MaxHeaderFields is the most field lines in the header section, and
	// separately in the trailer section. More: 431. Default 100.
	MaxHeaderFields int `config:"max_header_fields" help:"most header fields, then 431; 0 = 100"`
	// MaxBodyBytes is the largest request body in bytes: a larger
	// Content-Length, or a chunked body whose decoded size would exceed
	// it: 413. Default 10 MiB.
	MaxBodyBytes int64 `config:"max_body_bytes" help:"largest request body in bytes, then 413; 0 = 10 MiB"`
	// MaxChunkExtBytes bounds the chunk-extension bytes (everything after
	// the chunk size on a chunk-size line) summed over one message. The
	// extensions are validated and ignored. More: 400. Default 4 KiB.
	MaxChunkExtBytes int `config:"max_chunk_ext_bytes" help:"chunk-extension bytes per message; 0 = 4 KiB"`
	// MaxTrailerBytes bounds the trailer section of a chunked body, from
	// the byte after the last-chunk line to the final CRLF inclusive.
	// Larger: 431. Default 16 KiB.
	MaxTrailerBytes int `config:"max_trailer_bytes" help:"largest trailer section in bytes; 0 = 16 KiB"`
}

// ErrInvalidLimits is returned by Limits.Validate.
var ErrInvalidLimits = errors.New("http1: invalid limits")

// Validate reports whether every field is zero or a positive value not above 1 GiB.
func (l Limits) Validate() error {
	for _, v := range [...]int64{int64(l.MaxRequestLine), int64(l.MaxHeaderBytes),
		int64(l.MaxHeaderFields), int64(l.MaxChunkExtBytes), int64(l.MaxTrailerBytes)} {
		if v < 0 || v > maxLimit {
			return ErrInvalidLimits
		}
	}
	if l.MaxBodyBytes < 0 {
		return ErrInvalidLimits
	}
	return nil
}

// WithDefaults returns l with every zero field replaced by its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxRequestLine == 0 {
		l.MaxRequestLine = DefaultMaxRequestLine
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxHeaderFields == 0 {
		l.MaxHeaderFields = DefaultMaxHeaderFields
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxChunkExtBytes == 0 {
		l.MaxChunkExtBytes = DefaultMaxChunkExtBytes
	}
	if l.MaxTrailerBytes == 0 {
		l.MaxTrailerBytes = DefaultMaxTrailerBytes
	}
	return l
}
