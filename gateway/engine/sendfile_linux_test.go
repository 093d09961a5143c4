package engine

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestConnSendFile(t *testing.T) { forEachEngine(t, testConnSendFile) }

// testConnSendFile sends parts of a file larger than the socket buffers
// (so sendfile meets EAGAIN and waits for room) between ordinary writes,
// then checks a file that ends early and a passed write deadline.
func testConnSendFile(t *testing.T, e Engine) {
	s, c := connPair(t, e)
	fs, ok := s.(FileSender)
	if !ok {
		t.Fatalf("%s's Conn %T is no FileSender", e.Name(), s)
	}
	data := pattern(1<<20+13, 7)
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := readAllAsync(c)
	want := new(bytes.Buffer)
	if _, err := s.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	want.WriteString("before")
	bigHead := pattern(200<<10, 9) // more than the socket takes at once: head waits for room too
	for _, r := range []struct {
		head   []byte
		off, n int64
	}{{[]byte("HTTP/1.1 200 OK\r\n\r\n"), 0, int64(len(data))}, {nil, 5, 100}, {bigHead, int64(len(data)) - 1, 1}, {nil, 3, 0}, {[]byte("h"), 3, 0}} {
		n, err := fs.SendFile(r.head, f, r.off, r.n)
		if n != int64(len(r.head))+r.n || err != nil {
			t.Fatalf("SendFile(%d head bytes, %d, %d) = %d, %v", len(r.head), r.off, r.n, n, err)
		}
		want.Write(r.head)
		want.Write(data[r.off : r.off+r.n])
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 0 {
		t.Errorf("SendFile moved the file's offset to %d", off)
	}
	// Past the end: what there is goes, then an error.
	n, err := fs.SendFile(nil, f, int64(len(data))-10, 20)
	if n != 10 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("SendFile past the end = %d, %v; want 10, io.ErrUnexpectedEOF", n, err)
	}
	want.Write(data[len(data)-10:])
	s.CloseWrite()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer read %d bytes, want %d (or they differ)", len(b), want.Len())
	}

	// A deadline passes while the peer reads nothing.
	s2, c2 := connPair(t, e)
	defer c2.Close()
	s2.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err = s2.(FileSender).SendFile(nil, f, 0, int64(len(data)))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= int64(len(data)) {
		t.Fatalf("SendFile to a stalled peer = %d, %v; want a deadline error", n, err)
	}
}
