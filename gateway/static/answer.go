package static

import (
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// Request is what Evaluate reads of a request: its method and the fields of
// conditional and range requests, "" when absent (several lines of one field
// joined with ", ").
type Request struct {
	Method            string
	IfMatch           string
	IfUnmodifiedSince string
	IfNoneMatch       string
	IfModifiedSince   string
	IfRange           string
	Range             string
}

// Validators are what a representation is compared by: a strong entity tag
// (quoted, as sent in ETag) and a Last-Modified date (as sent). Either may be
// empty: a worker's RESP_FILE may replace them (PROTOCOL.md 3.6).
type Validators struct {
	ETag         string
	LastModified string
}

// Validate returns the validators of f: ETag "<mtime ns hex>-<size hex>",
// with "-br" or "-gz" for a precompressed sibling (another representation,
// another tag), and Last-Modified.
func (f *File) Validate() Validators {
	b := make([]byte, 0, 48)
	b = append(b, '"')
	b = strconv.AppendInt(b, f.ModTime.UnixNano(), 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, f.Size, 16)
	switch f.Encoding {
	case "br":
		b = append(b, "-br"...)
	case "gzip":
		b = append(b, "-gz"...)
	}
	b = append(b, '"')
	return Validators{ETag: string(b), LastModified: f.ModTime.UTC().Format(http.TimeFormat)}
}

// Answer is what to send for one request of a representation of Size bytes.
type Answer struct {
	// Status is the full answer's status (200, or the worker's status of a
	// RESP_FILE), 206, 304, 412 or 416.
	Status int
	// Offset and Length are the part of the file that is the body
	// (Content-Length is Length; for HEAD, the body not sent).
	Offset, Length int64
	// ContentRange is the Content-Range value of a 206 or 416, else "".
	ContentRange string
	// Body is false when no body bytes go out: HEAD, 304, 412, 416.
	Body bool
}

// Evaluate decides the answer to r for a representation of size bytes with
// validators v, whose full answer has status full (200 for a file served by
// the gateway). Conditions and ranges apply only when full is 200: a
// worker's 404 page is its own answer. Precedence is RFC 9110 13.2.2's.
func Evaluate(r *Request, size int64, v Validators, full int) Answer {
	get := r.Method == "GET"
	whole := Answer{Status: full, Length: size, Body: r.Method != "HEAD"}
	if full != 200 || (!get && r.Method != "HEAD") {
		return whole
	}
	lm, lmOK := parseDate(v.LastModified)
	// 1, 2: If-Match, else If-Unmodified-Since.
	if r.IfMatch != "" {
		if !matchETag(r.IfMatch, v.ETag, false) {
			return Answer{Status: 412}
		}
	} else if r.IfUnmodifiedSince != "" && lmOK {
		if t, ok := parseDate(r.IfUnmodifiedSince); ok && lm.After(t) {
			return Answer{Status: 412}
		}
	}
	// 3, 4: If-None-Match, else If-Modified-Since.
	if r.IfNoneMatch != "" {
		if matchETag(r.IfNoneMatch, v.ETag, true) {
			return Answer{Status: 304}
		}
	} else if r.IfModifiedSince != "" && lmOK {
		if t, ok := parseDate(r.IfModifiedSince); ok && !lm.After(t) {
			return Answer{Status: 304}
		}
	}
	// 5: Range, for GET only, and only if If-Range (when present) holds.
	if !get || r.Range == "" {
		return whole
	}
	if r.IfRange != "" && !ifRange(r.IfRange, v) {
		return whole
	}
	start, n, ok, sat := parseRange(r.Range, size)
	if !ok {
		return whole
	}
	if !sat {
		return Answer{Status: 416, ContentRange: "bytes */" + strconv.FormatInt(size, 10)}
	}
	cr := "bytes " + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(start+n-1, 10) + "/" + strconv.FormatInt(size, 10)
	return Answer{Status: 206, Offset: start, Length: n, ContentRange: cr, Body: true}
}

func parseDate(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := http.ParseTime(s)
	return t, err == nil
}

// matchETag reports whether the field value list (If-Match or
// If-None-Match) holds "*" or a tag that matches etag: by weak comparison
// (weak: W/ prefixes ignored) or strong comparison (neither weak).
func matchETag(list, etag string, weak bool) bool {
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		if etag == "" {
			continue
		}
		tw := strings.HasPrefix(t, "W/")
		ew := strings.HasPrefix(etag, "W/")
		if !weak && (tw || ew) {
			continue
		}
		if strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// ifRange reports whether an If-Range value holds for v (RFC 9110 13.1.5):
// a strong tag equal to the ETag, or a date equal to Last-Modified.
func ifRange(cond string, v Validators) bool {
	cond = strings.TrimSpace(cond)
	if strings.HasPrefix(cond, `"`) || strings.HasPrefix(cond, "W/") {
		return !strings.HasPrefix(cond, "W/") && v.ETag != "" && !strings.HasPrefix(v.ETag, "W/") && cond == v.ETag
	}
	t, ok := parseDate(cond)
	lm, lmOK := parseDate(v.LastModified)
	return ok && lmOK && t.Equal(lm)
}

// parseRange parses a Range value for a representation of size bytes. ok is
// false when the value is not one bytes range (malformed, another unit, or
// several ranges): the field is then ignored. sat is false when the one
// range cannot be satisfied (it starts at or past the end, or is a suffix of
// zero bytes).
func parseRange(v string, size int64) (start, n int64, ok, sat bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(v), "bytes=")
	if !found || strings.IndexByte(spec, ',') >= 0 {
		return 0, 0, false, false
	}
	spec = strings.TrimSpace(spec)
	first, last, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false, false
	}
	if first == "" { // suffix range: the last N bytes
		sn, err := parseDigits(last)
		if err != nil {
			return 0, 0, false, false
		}
		if sn == 0 || size == 0 {
			return 0, 0, true, false
		}
		sn = min(sn, size)
		return size - sn, sn, true, true
	}
	a, err := parseDigits(first)
	if err != nil {
		return 0, 0, false, false
	}
	end := size - 1
	if last != "" {
		b, err := parseDigits(last)
		if err != nil || b < a {
			return 0, 0, false, false
		}
		end = min(b, size-1)
	}
	if a >= size {
		return 0, 0, true, false
	}
	return a, end - a + 1, true, true
}

type rangeErr struct{}

func (rangeErr) Error() string { return "static: bad range number" }

// parseDigits parses 1 to 18 decimal digits.
func parseDigits(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, rangeErr{}
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, rangeErr{}
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// types is the media type of the common web file extensions, fixed here so
// that an answer does not depend on the host's mime.types.
var types = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".xml":         "application/xml",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/x-icon",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".wasm":        "application/wasm",
	".pdf":         "application/pdf",
	".zip":         "application/zip",
	".gz":          "application/gzip",
	".br":          "application/octet-stream",
	".mp4":         "video/mp4",
	".webm":        "video/webm",
	".mp3":         "audio/mpeg",
	".ogg":         "audio/ogg",
	".wav":         "audio/wav",
}

// ContentType is the media type for a file name, from its extension: the
// table above, else the standard library's (which reads the host's
// mime.types), else application/octet-stream.
func ContentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := types[ext]; ok {
		return t
	}
	if ext != "" {
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
	}
	return "application/octet-stream"
}
