package static

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Errors of Open. A front end answers ErrNotFound with 404 and ErrNeedSlash
// with a redirect (301) to the request path with "/" appended.
var (
	ErrNotFound  = errors.New("static: not found")
	ErrNeedSlash = errors.New("static: a directory was named without a trailing slash")
)

// IndexFile is the file that answers for a directory when a Root serves
// indexes.
const IndexFile = "index.html"

// Root is one directory served from disk. It is safe for concurrent use.
type Root struct {
	dir   string
	root  *os.Root
	index bool
}

// OpenRoot opens dir, which must be an existing directory, to serve the files
// under it; with index a directory is answered with its index.html. The
// error says what is wrong with dir.
func OpenRoot(dir string, index bool) (*Root, error) {
	if dir == "" {
		return nil, errors.New("static: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("static: directory %q: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("static: directory %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("static: %q is not a directory", dir)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("static: directory %q: %w", dir, err)
	}
	return &Root{dir: abs, root: r, index: index}, nil
}

// Dir is the directory served, as an absolute path.
func (r *Root) Dir() string { return r.dir }

// Index reports whether a directory is answered with its index.html.
func (r *Root) Index() bool { return r.index }

// Close releases the directory.
func (r *Root) Close() error { return r.root.Close() }

// File is one representation opened for an answer. The caller closes it.
type File struct {
	*os.File
	Size    int64
	ModTime time.Time
	// ContentType is the media type of the file the request named (not of
	// its compressed sibling), with "; charset=utf-8" for text.
	ContentType string
	// Encoding is the Content-Encoding of the representation: "br" or
	// "gzip" for a precompressed sibling, "" for the file itself.
	Encoding string
	// Vary is true when a precompressed sibling was looked for and one
	// exists: the answer depends on Accept-Encoding.
	Vary bool
}

// Open opens the file that raw, a request path's remainder under the Root
// (still percent-encoded, without its leading slash, e.g. "css/site.css"),
// names, choosing a precompressed sibling that acceptEncoding (the request's
// Accept-Encoding field, "" for none) takes. Errors: ErrNotFound (a refused
// name, a missing file, not a regular file, a directory without an index),
// ErrNeedSlash.
func (r *Root) Open(raw, acceptEncoding string) (*File, error) {
	name, dir, err := Clean(raw)
	if err != nil {
		return nil, err
	}
	open := func(n string) (*os.File, error) {
		if n == "" {
			n = "."
		}
		return r.root.OpenFile(n, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	}
	f, err := open(name)
	if err != nil {
		return nil, ErrNotFound
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ErrNotFound
	}
	if fi.IsDir() {
		f.Close()
		if !r.index {
			return nil, ErrNotFound
		}
		if !dir && name != "" {
			return nil, ErrNeedSlash
		}
		if name != "" {
			name += "/"
		}
		name += IndexFile
		if f, err = open(name); err != nil {
			return nil, ErrNotFound
		}
		if fi, err = f.Stat(); err != nil {
			f.Close()
			return nil, ErrNotFound
		}
	} else if dir {
		// "file.txt/" names no directory.
		f.Close()
		return nil, ErrNotFound
	}
	return pick(f, fi, name, acceptEncoding, open)
}

// OpenFile opens the file at path, an absolute path a worker named in
// RESP_FILE (PROTOCOL.md 3.6), choosing a precompressed sibling as Open does.
// It is not confined to any directory: the worker chose it. Errors:
// ErrNotFound (missing, not a regular file, not absolute).
func OpenFile(path, acceptEncoding string) (*File, error) {
	if !filepath.IsAbs(path) || strings.IndexByte(path, 0) >= 0 {
		return nil, ErrNotFound
	}
	open := func(n string) (*os.File, error) { return os.OpenFile(n, os.O_RDONLY|syscall.O_NONBLOCK, 0) }
	f, err := open(path)
	if err != nil {
		return nil, ErrNotFound
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ErrNotFound
	}
	return pick(f, fi, path, acceptEncoding, open)
}

// pick checks that f (named name, described by fi) is a regular file and
// replaces it by a precompressed sibling that acceptEncoding takes.
func pick(f *os.File, fi fs.FileInfo, name, acceptEncoding string, open func(string) (*os.File, error)) (*File, error) {
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, ErrNotFound
	}
	out := &File{File: f, Size: fi.Size(), ModTime: fi.ModTime(), ContentType: ContentType(name)}
	if acceptEncoding == "" || !compressible(out.ContentType) {
		return out, nil
	}
	br, gz := acceptable(acceptEncoding)
	if !br && !gz {
		return out, nil
	}
	for _, c := range [...]struct {
		ok       bool
		suffix   string
		encoding string
	}{{br, ".br", "br"}, {gz, ".gz", "gzip"}} {
		if !c.ok {
			continue
		}
		sf, err := open(name + c.suffix)
		if err != nil {
			continue
		}
		sfi, err := sf.Stat()
		if err != nil || !sfi.Mode().IsRegular() {
			sf.Close()
			continue
		}
		f.Close()
		out.File, out.Size, out.ModTime = sf, sfi.Size(), sfi.ModTime()
		out.Encoding, out.Vary = c.encoding, true
		return out, nil
	}
	return out, nil
}

// compressible reports whether a file of this media type is worth looking
// for a precompressed sibling of: not one that is compressed already.
func compressible(ct string) bool {
	switch {
	case strings.HasPrefix(ct, "text/"), strings.HasPrefix(ct, "application/javascript"),
		strings.HasPrefix(ct, "application/json"), strings.HasPrefix(ct, "application/xml"),
		strings.HasPrefix(ct, "image/svg+xml"), strings.HasPrefix(ct, "application/wasm"),
		strings.HasPrefix(ct, "application/manifest+json"), strings.HasPrefix(ct, "font/ttf"),
		strings.HasPrefix(ct, "font/otf"):
		return true
	}
	return false
}

// Clean turns raw, the percent-encoded remainder of a request path under a
// Root (no leading slash), into a slash-separated file name, and reports
// whether it ended with a slash (the name then lacks it; "" is the Root
// itself). It refuses, with ErrNotFound, every name that could mean
// something else on disk than in the URL: a dot segment ("." or "..",
// percent-encoded or not), an empty segment (a leading slash or "//"), an
// encoded slash (%2f), a backslash (raw or %5c), NUL (raw or %00), another
// control character, and malformed percent-encoding.
func Clean(raw string) (name string, dir bool, err error) {
	if raw == "" {
		return "", true, nil
	}
	if len(raw) > 4096 {
		return "", false, ErrNotFound
	}
	if strings.HasSuffix(raw, "/") {
		raw, dir = raw[:len(raw)-1], true
	}
	var b strings.Builder
	b.Grow(len(raw))
	for seg := range strings.SplitSeq(raw, "/") {
		start := b.Len()
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if c == '%' {
				if i+2 >= len(seg) {
					return "", false, ErrNotFound
				}
				h, l := unhex(seg[i+1]), unhex(seg[i+2])
				if h < 0 || l < 0 {
					return "", false, ErrNotFound
				}
				c = byte(h<<4 | l)
				i += 2
				if c == '/' {
					return "", false, ErrNotFound
				}
			}
			if c < 0x20 || c == 0x7f || c == '\\' {
				return "", false, ErrNotFound
			}
			b.WriteByte(c)
		}
		s := b.String()[start:]
		if s == "" || s == "." || s == ".." {
			return "", false, ErrNotFound
		}
		b.WriteByte('/')
	}
	name = b.String()
	return name[:len(name)-1], dir, nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// acceptable reports which precompressed encodings an Accept-Encoding value
// takes (RFC 9110 12.5.3): a coding listed with a q-value above 0, or
// covered by "*" with one, and not listed with q=0.
func acceptable(v string) (br, gz bool) {
	star := -1 // -1: absent; else 0 or 1
	brq, gzq := -1, -1
	for part := range strings.SplitSeq(v, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		ok := 1
		for p := range strings.SplitSeq(params, ";") {
			k, val, found := strings.Cut(strings.TrimSpace(p), "=")
			if found && strings.EqualFold(strings.TrimSpace(k), "q") && zeroQ(strings.TrimSpace(val)) {
				ok = 0
			}
		}
		switch coding {
		case "br":
			brq = ok
		case "gzip", "x-gzip":
			gzq = ok
		case "*":
			star = ok
		}
	}
	if brq < 0 {
		brq = max(star, 0)
	}
	if gzq < 0 {
		gzq = max(star, 0)
	}
	return brq == 1, gzq == 1
}

// zeroQ reports whether a qvalue is 0 ("0", "0.", "0.0", "0.00", "0.000").
func zeroQ(q string) bool {
	if q == "" || q[0] != '0' {
		return false
	}
	return strings.Trim(q[1:], ".0") == "" && strings.Count(q, ".") <= 1
}
