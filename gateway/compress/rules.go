package compress

import "github.com/covetpy/covetpy/workerproto"

// verdict is what WriteHead does with a response.
type verdict uint8

const (
	// asIs: the response passes through untouched.
	asIs verdict = iota
	// asIsVary: the body passes through uncompressed, but another response
	// to the same request could have been compressed (it was under
	// MinBytes), so the head says Vary: accept-encoding.
	asIsVary
	// compressIt: the body is compressed.
	compressIt
)

// eligible decides a response's fate from its head. A response is never
// compressed when
//
//   - its status is 1xx, 204 or 304 (no body) or 206 (a range of the
//     identity body);
//   - it has Content-Encoding (already encoded), Content-Range, or
//     Cache-Control: no-transform;
//   - its Content-Type is text/event-stream (each event must reach the client
//     as it is sent, and proxies expect SSE unencoded) or an already compressed
//     format (compressedType);
//
// and, when none of these holds, it is compressed unless its length is known
// and under minBytes (then it only gains Vary).
func eligible(status int, headers []workerproto.Header, bodyLen, minBytes int64) verdict {
	if status < 200 || status == 204 || status == 206 || status == 304 {
		return asIs
	}
	for i := range headers {
		f := &headers[i]
		switch {
		case workerproto.NameIs(f.Name, "content-encoding"), workerproto.NameIs(f.Name, "content-range"):
			return asIs
		case workerproto.NameIs(f.Name, "cache-control"):
			if hasToken(f.Value, "no-transform") {
				return asIs
			}
		case workerproto.NameIs(f.Name, "content-type"):
			if compressedType(f.Value) {
				return asIs
			}
		}
	}
	if bodyLen >= 0 && bodyLen < minBytes {
		return asIsVary
	}
	return compressIt
}

// compressedType reports whether a Content-Type names an event stream or a
// format that is already compressed, which a second compression would not
// shrink: image/* but for SVG and BMP, audio/*, video/*, font/woff and
// font/woff2, archives and compressed files (zip, gzip, zstd, bzip2, xz, 7z,
// rar, brotli), PDF, application/octet-stream (an opaque download, most often
// an archive), gRPC (its own message compression) and multipart/byteranges.
func compressedType(v []byte) bool {
	mt, _ := cut(v, ';')
	mt = trim(mt)
	typ, sub := cut(mt, '/')
	switch {
	case workerproto.NameIs(typ, "text"):
		return workerproto.NameIs(sub, "event-stream")
	case workerproto.NameIs(typ, "image"):
		return !workerproto.NameIs(sub, "svg+xml") && !workerproto.NameIs(sub, "bmp")
	case workerproto.NameIs(typ, "audio"), workerproto.NameIs(typ, "video"):
		return true
	case workerproto.NameIs(typ, "font"):
		return workerproto.NameIs(sub, "woff") || workerproto.NameIs(sub, "woff2")
	case workerproto.NameIs(typ, "multipart"):
		return workerproto.NameIs(sub, "byteranges")
	case workerproto.NameIs(typ, "application"):
		for _, s := range compressedApplication {
			if workerproto.NameIs(sub, s) {
				return true
			}
		}
		return hasPrefixFold(sub, "grpc")
	}
	return false
}

var compressedApplication = []string{
	"zip", "gzip", "x-gzip", "zstd", "x-bzip2", "x-xz", "x-7z-compressed",
	"x-rar-compressed", "vnd.rar", "x-brotli", "pdf", "octet-stream",
}

// hasToken reports whether a comma-separated field value holds token (any
// case), as Cache-Control's directives or Vary's field names.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var elem []byte
		elem, v = cut(v, ',')
		name, _ := cut(elem, '=')
		if workerproto.NameIs(trim(name), token) {
			return true
		}
	}
	return false
}

func hasPrefixFold(b []byte, lower string) bool {
	return len(b) >= len(lower) && workerproto.NameIs(b[:len(lower)], lower)
}
