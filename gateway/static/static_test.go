package static

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tree makes a directory to serve and a secret file beside it (outside it).
func tree(t *testing.T) (dir, outside string) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "public")
	outside = filepath.Join(base, "secret.txt")
	files := map[string]string{
		"hello.txt":       "hello\n",
		"app.js":          "console.log(1)\n",
		"app.js.br":       "BR",
		"app.js.gz":       "GZ",
		"only-gz.css":     "body{}",
		"only-gz.css.gz":  "GZCSS",
		"docs/index.html": "<h1>docs</h1>",
		"empty/keep.txt":  "k",
		"photo.png":       "PNG",
		"photo.png.gz":    "never chosen: png is compressed already",
		"sp ace.txt":      "space",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(outside, []byte("top secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "escape.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base, filepath.Join(dir, "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("hello.txt", filepath.Join(dir, "inside.txt")); err != nil {
		t.Fatal(err)
	}
	return dir, outside
}

func read(t *testing.T, f *File) string {
	t.Helper()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenServesFiles(t *testing.T) {
	dir, _ := tree(t)
	r, err := OpenRoot(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cases := []struct {
		raw, ae, body, ct, enc string
		vary                   bool
	}{
		{"hello.txt", "", "hello\n", "text/plain; charset=utf-8", "", false},
		{"app.js", "", "console.log(1)\n", "text/javascript; charset=utf-8", "", false},
		{"app.js", "gzip, deflate, br", "BR", "text/javascript; charset=utf-8", "br", true},
		{"app.js", "gzip", "GZ", "text/javascript; charset=utf-8", "gzip", true},
		{"app.js", "br;q=0, gzip", "GZ", "text/javascript; charset=utf-8", "gzip", true},
		{"app.js", "*", "BR", "text/javascript; charset=utf-8", "br", true},
		{"app.js", "*, br;q=0", "GZ", "text/javascript; charset=utf-8", "gzip", true},
		{"app.js", "identity", "console.log(1)\n", "text/javascript; charset=utf-8", "", false},
		{"app.js", "gzip;q=0.000, br;q=0", "console.log(1)\n", "text/javascript; charset=utf-8", "", false},
		{"only-gz.css", "br, gzip", "GZCSS", "text/css; charset=utf-8", "gzip", true},
		{"only-gz.css", "br", "body{}", "text/css; charset=utf-8", "", false},
		{"photo.png", "gzip", "PNG", "image/png", "", false},
		{"docs/", "", "<h1>docs</h1>", "text/html; charset=utf-8", "", false},
		{"sp%20ace.txt", "", "space", "text/plain; charset=utf-8", "", false},
		{"%68ello.txt", "", "hello\n", "text/plain; charset=utf-8", "", false},
		{"inside.txt", "", "hello\n", "text/plain; charset=utf-8", "", false},
	}
	for _, c := range cases {
		f, err := r.Open(c.raw, c.ae)
		if err != nil {
			t.Errorf("Open(%q, %q): %v", c.raw, c.ae, err)
			continue
		}
		if got := read(t, f); got != c.body || f.ContentType != c.ct || f.Encoding != c.enc || f.Vary != c.vary || f.Size != int64(len(c.body)) {
			t.Errorf("Open(%q, %q) = body %q type %q enc %q vary %v size %d; want %q %q %q %v", c.raw, c.ae, got, f.ContentType, f.Encoding, f.Vary, f.Size, c.body, c.ct, c.enc, c.vary)
		}
		f.Close()
	}
}

func TestOpenRefuses(t *testing.T) {
	dir, _ := tree(t)
	r, err := OpenRoot(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, raw := range []string{
		"../secret.txt", "..", ".", "docs/../../secret.txt", "%2e%2e/secret.txt", "%2E%2e/secret.txt",
		".%2e/secret.txt", "docs/%2e%2e/hello.txt", "docs%2f..%2f..%2fsecret.txt", "docs%2Findex.html",
		"..%5csecret.txt", "docs\\index.html", "hello.txt%00", "hello.txt\x00.png", "/hello.txt",
		"docs//index.html", "%", "%2", "%zz", "hello.txt/", "escape.txt", "up/secret.txt",
		"missing.txt", "empty/", "hello%0a.txt", "\x7f",
	} {
		f, err := r.Open(raw, "")
		if err == nil {
			t.Errorf("Open(%q) served %q", raw, read(t, f))
			f.Close()
			continue
		}
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(%q) = %v, want ErrNotFound", raw, err)
		}
	}
}

func TestOpenDirectories(t *testing.T) {
	dir, _ := tree(t)
	r, err := OpenRoot(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Open("docs", ""); !errors.Is(err, ErrNeedSlash) {
		t.Errorf("Open(docs) = %v, want ErrNeedSlash", err)
	}
	if _, err := r.Open("", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(\"\") without index.html = %v, want ErrNotFound", err)
	}
	noIndex, err := OpenRoot(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer noIndex.Close()
	for _, raw := range []string{"docs", "docs/", ""} {
		if _, err := noIndex.Open(raw, ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("index off: Open(%q) = %v, want ErrNotFound", raw, err)
		}
	}
}

func TestOpenRootErrors(t *testing.T) {
	dir, outside := tree(t)
	for _, d := range []string{"", filepath.Join(dir, "nope"), outside} {
		if _, err := OpenRoot(d, false); err == nil {
			t.Errorf("OpenRoot(%q) succeeded", d)
		}
	}
	if _, err := OpenRoot(filepath.Join(dir, "nope"), false); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("error does not name the directory: %v", err)
	}
}

func TestOpenFile(t *testing.T) {
	dir, outside := tree(t)
	f, err := OpenFile(outside, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, f); got != "top secret" {
		t.Errorf("OpenFile = %q", got)
	}
	f.Close()
	f, err = OpenFile(filepath.Join(dir, "app.js"), "br")
	if err != nil {
		t.Fatal(err)
	}
	if f.Encoding != "br" || read(t, f) != "BR" {
		t.Errorf("OpenFile picked %q", f.Encoding)
	}
	f.Close()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"relative.txt", dir, filepath.Join(dir, "missing"), fifo, "/dev/null"} {
		if f, err := OpenFile(p, ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("OpenFile(%q) = %v, want ErrNotFound", p, err)
			if f != nil {
				f.Close()
			}
		}
	}
}

func TestClean(t *testing.T) {
	for raw, want := range map[string]string{
		"a/b.txt": "a/b.txt", "a%2Db": "a-b", "%C3%A9t%C3%A9.txt": "été.txt", "a/": "a", "": "",
	} {
		got, _, err := Clean(raw)
		if err != nil || got != want {
			t.Errorf("Clean(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"a/b", "%2e%2e", "..", "a%2fb", "a\\b", "%00", "x/", "é", "%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		name, _, err := Clean(raw)
		if err != nil {
			return
		}
		if strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/") {
			t.Fatalf("Clean(%q) = %q", raw, name)
		}
		for seg := range strings.SplitSeq(name, "/") {
			if name != "" && (seg == "" || seg == "." || seg == "..") {
				t.Fatalf("Clean(%q) = %q has segment %q", raw, name, seg)
			}
		}
		if !filepath.IsLocal(name) && name != "" {
			t.Fatalf("Clean(%q) = %q is not local", raw, name)
		}
	})
}

var mtime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestEvaluate(t *testing.T) {
	f := &File{Size: 100, ModTime: mtime}
	v := f.Validate()
	if v.ETag != `"`+strings.TrimPrefix(strings.ToLower(hex(mtime.UnixNano())), "0x")+`-64"` {
		t.Errorf("ETag %s", v.ETag)
	}
	if v.LastModified != "Fri, 02 Jan 2026 03:04:05 GMT" {
		t.Errorf("Last-Modified %s", v.LastModified)
	}
	before := "Thu, 01 Jan 2026 00:00:00 GMT"
	after := "Sat, 03 Jan 2026 00:00:00 GMT"
	type want struct {
		status       int
		off, n       int64
		contentRange string
		body         bool
	}
	full := want{200, 0, 100, "", true}
	cases := []struct {
		name string
		r    Request
		st   int
		w    want
	}{
		{"plain", Request{Method: "GET"}, 200, full},
		{"head", Request{Method: "HEAD"}, 200, want{200, 0, 100, "", false}},
		{"post", Request{Method: "POST", IfNoneMatch: "*"}, 200, full},
		{"inm match", Request{Method: "GET", IfNoneMatch: v.ETag}, 200, want{status: 304}},
		{"inm weak match", Request{Method: "GET", IfNoneMatch: `"x", W/` + v.ETag}, 200, want{status: 304}},
		{"inm star", Request{Method: "HEAD", IfNoneMatch: "*"}, 200, want{status: 304}},
		{"inm other", Request{Method: "GET", IfNoneMatch: `"other"`, IfModifiedSince: after}, 200, full},
		{"ims later", Request{Method: "GET", IfModifiedSince: after}, 200, want{status: 304}},
		{"ims same", Request{Method: "GET", IfModifiedSince: v.LastModified}, 200, want{status: 304}},
		{"ims earlier", Request{Method: "GET", IfModifiedSince: before}, 200, full},
		{"ims garbage", Request{Method: "GET", IfModifiedSince: "yesterday"}, 200, full},
		{"if-match fails", Request{Method: "GET", IfMatch: `"other"`}, 200, want{status: 412}},
		{"if-match weak fails", Request{Method: "GET", IfMatch: "W/" + v.ETag}, 200, want{status: 412}},
		{"if-match ok", Request{Method: "GET", IfMatch: v.ETag, Range: "bytes=0-9"}, 200, want{206, 0, 10, "bytes 0-9/100", true}},
		{"ius fails", Request{Method: "GET", IfUnmodifiedSince: before}, 200, want{status: 412}},
		{"range", Request{Method: "GET", Range: "bytes=10-19"}, 200, want{206, 10, 10, "bytes 10-19/100", true}},
		{"range open", Request{Method: "GET", Range: "bytes=90-"}, 200, want{206, 90, 10, "bytes 90-99/100", true}},
		{"range past end", Request{Method: "GET", Range: "bytes=90-500"}, 200, want{206, 90, 10, "bytes 90-99/100", true}},
		{"suffix", Request{Method: "GET", Range: "bytes=-5"}, 200, want{206, 95, 5, "bytes 95-99/100", true}},
		{"suffix whole", Request{Method: "GET", Range: "bytes=-500"}, 200, want{206, 0, 100, "bytes 0-99/100", true}},
		{"unsatisfiable", Request{Method: "GET", Range: "bytes=100-"}, 200, want{416, 0, 0, "bytes */100", false}},
		{"suffix zero", Request{Method: "GET", Range: "bytes=-0"}, 200, want{416, 0, 0, "bytes */100", false}},
		{"multi", Request{Method: "GET", Range: "bytes=0-1,5-6"}, 200, full},
		{"bad unit", Request{Method: "GET", Range: "items=0-1"}, 200, full},
		{"reversed", Request{Method: "GET", Range: "bytes=9-1"}, 200, full},
		{"garbage", Request{Method: "GET", Range: "bytes=a-b"}, 200, full},
		{"head ignores range", Request{Method: "HEAD", Range: "bytes=0-1"}, 200, want{200, 0, 100, "", false}},
		{"if-range etag", Request{Method: "GET", Range: "bytes=0-0", IfRange: v.ETag}, 200, want{206, 0, 1, "bytes 0-0/100", true}},
		{"if-range stale", Request{Method: "GET", Range: "bytes=0-0", IfRange: `"old"`}, 200, full},
		{"if-range weak", Request{Method: "GET", Range: "bytes=0-0", IfRange: "W/" + v.ETag}, 200, full},
		{"if-range date", Request{Method: "GET", Range: "bytes=0-0", IfRange: v.LastModified}, 200, want{206, 0, 1, "bytes 0-0/100", true}},
		{"if-range old date", Request{Method: "GET", Range: "bytes=0-0", IfRange: before}, 200, full},
		{"worker status", Request{Method: "GET", Range: "bytes=0-0", IfNoneMatch: "*"}, 404, want{404, 0, 100, "", true}},
	}
	for _, c := range cases {
		a := Evaluate(&c.r, 100, v, c.st)
		got := want{a.Status, a.Offset, a.Length, a.ContentRange, a.Body}
		if got != c.w {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.w)
		}
	}
	// An empty file has no satisfiable range.
	if a := Evaluate(&Request{Method: "GET", Range: "bytes=0-"}, 0, v, 200); a.Status != 416 || a.ContentRange != "bytes */0" {
		t.Errorf("empty file range: %+v", a)
	}
	// Precompressed siblings have their own tags.
	g := &File{Size: 100, ModTime: mtime, Encoding: "gzip"}
	if g.Validate().ETag == v.ETag {
		t.Error("gzip sibling shares the file's ETag")
	}
}

func hex(n int64) string { return strings.ToLower(strconvHex(n)) }

func FuzzEvaluate(f *testing.F) {
	f.Add("bytes=0-10", int64(100))
	f.Add("bytes=-5", int64(3))
	f.Add("bytes=5-", int64(0))
	f.Fuzz(func(t *testing.T, rng string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		a := Evaluate(&Request{Method: "GET", Range: rng}, size, Validators{}, 200)
		switch a.Status {
		case 200:
			if a.Offset != 0 || a.Length != size {
				t.Fatalf("200 with %d+%d of %d", a.Offset, a.Length, size)
			}
		case 206:
			if a.Offset < 0 || a.Length <= 0 || a.Offset+a.Length > size {
				t.Fatalf("206 with %d+%d of %d", a.Offset, a.Length, size)
			}
		case 416:
		default:
			t.Fatalf("status %d", a.Status)
		}
	})
}
