package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Streamed request bodies (issue 21, PROTOCOL.md 2.8): a real gateway, real Python
// workers (integration/apps/uploadapp.py), real sockets.

// genBody is a body of n bytes made as it is read (never held whole): a counter
// pattern, hashed as it goes.
type genBody struct {
	left int64
	off  int64
	h    hash.Hash
}

func newGenBody(n int64) *genBody { return &genBody{left: n, h: sha256.New()} }

func (g *genBody) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.left)]
	for i := range p {
		p[i] = byte((g.off + int64(i)) * 7 >> 3)
	}
	g.h.Write(p)
	g.off += int64(len(p))
	g.left -= int64(len(p))
	return len(p), nil
}

func (g *genBody) sum() string { return hex.EncodeToString(g.h.Sum(nil)) }

// rssOf is a process's resident set size in bytes (/proc/PID/status VmRSS); 0 if it
// cannot be read (the sampler runs off the test's goroutine, where t.Fatal may not).
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

type uploadAnswer struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// postUpload sends body to path (chunked when size is -1) and decodes the answer.
func postUpload(t *testing.T, g *gateway, path string, body io.Reader, size int64) (int, uploadAnswer) {
	t.Helper()
	req, err := http.NewRequest("POST", g.url(path), body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	c := &http.Client{Timeout: 5 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var a uploadAnswer
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("POST %s: %v in %q", path, err, raw)
		}
	}
	return resp.StatusCode, a
}

// uploadRSSBound is what a streamed upload may add to the gateway's resident memory
// over its idle size, whatever the body's size: the connection's pipe (256 KiB),
// the upload's buffer (64 KiB), the request window on the ring (1 MiB, shared
// memory) and the Go runtime's slack, with room to spare (docs/operations.md).
const uploadRSSBound = 16 << 20

// TestUploadStreamsWithinAMemoryBound: a 1 GiB body (generated as it is sent) to a
// handler slower than the client reaches it intact (same SHA-256), while the
// gateway's RSS stays within uploadRSSBound of what it was idle: the body is never
// held whole, and backpressure reaches the client. A chunked body streams too.
func TestUploadStreamsWithinAMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a 1 GiB upload")
	}
	// The handler deadline covers the whole upload: a safety bound here, not a
	// speed requirement.
	g := startGateway(t, "uploadapp", 1, "--max-body-bytes", strconv.Itoa(2<<30), "--timeout", "10m")
	pid := g.cmd.Process.Pid
	// Warm up: the ring's pages, the pools, one upload's worth of everything.
	warm := newGenBody(16 << 20)
	if st, a := postUpload(t, g, "/upload", warm, 16<<20); st != 200 || a.SHA256 != warm.sum() {
		t.Fatalf("warm-up upload: %d %+v", st, a)
	}
	idle := int64(vmRSS(t, pid))

	const size = 1 << 30
	var peak int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				peak = max(peak, rssOf(pid))
			}
		}
	}()
	body := newGenBody(size)
	start := time.Now()
	st, a := postUpload(t, g, "/upload?pause_ms=2", body, size)
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if st != 200 || a.Bytes != size || a.SHA256 != body.sum() {
		t.Fatalf("1 GiB upload: %d %+v, want %d bytes with sha256 %s", st, a, size, body.sum())
	}
	t.Logf("1 GiB in %v; gateway RSS idle %d KiB, peak %d KiB (+%d KiB)", took.Round(time.Millisecond), idle>>10, peak>>10, (peak-idle)>>10)
	if peak-idle > uploadRSSBound {
		t.Fatalf("gateway RSS rose %d KiB over idle during the upload, bound %d KiB", (peak-idle)>>10, uploadRSSBound>>10)
	}

	// Chunked (no Content-Length): 64 MiB through a reader the client cannot size.
	chunked := newGenBody(64 << 20)
	if st, a := postUpload(t, g, "/upload", struct{ io.Reader }{chunked}, -1); st != 200 || a.Bytes != 64<<20 || a.SHA256 != chunked.sum() {
		t.Fatalf("chunked upload: %d %+v", st, a)
	}
}

// TestUploadOverMaxBodyMidStream: a chunked body that passes max_body_bytes after
// the worker has begun to read it is answered 413 by the gateway, and the
// connection closes; the worker goes on serving.
func TestUploadOverMaxBodyMidStream(t *testing.T) {
	g := startGateway(t, "uploadapp", 1, "--max-body-bytes", strconv.Itoa(4<<20))
	nc, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	go func() {
		w := bufio.NewWriter(nc)
		fmt.Fprintf(w, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := strings.Repeat("c", 64<<10)
		for range 100 { // 6.4 MiB, over the 4 MiB limit
			if _, err := fmt.Fprintf(w, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
				return // the gateway closed the connection
			}
		}
		fmt.Fprintf(w, "0\r\n\r\n")
		w.Flush()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(nc), &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 413 || !resp.Close {
		t.Fatalf("a body over max_body_bytes mid-stream: %d close=%v, want 413 and close", resp.StatusCode, resp.Close)
	}
	if st, body, _ := g.get("/hello"); st != 200 || body != "hello" {
		t.Fatalf("after the 413: %d %q", st, body)
	}
}

// TestUploadEarlyAnswer: a handler that answers without reading a large body gets
// its answer to the client; the gateway drops the rest of the body and the
// connection serves the next request.
func TestUploadEarlyAnswer(t *testing.T) {
	g := startGateway(t, "uploadapp", 1)
	nc, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	const size = 5 << 20
	br := bufio.NewReader(nc)
	fmt.Fprintf(nc, "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(nc, io.LimitReader(newGenBody(size), size))
		if err == nil {
			_, err = io.WriteString(nc, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		sent <- err
	}()
	resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || string(b) != "not reading that\n" || resp.Close {
		t.Fatalf("early answer: %d %q close=%v", resp.StatusCode, b, resp.Close)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "hello" {
		t.Fatalf("the request after the dropped body: %d %q", resp.StatusCode, b)
	}
}

// TestUploadUnknownLengthEveryProtocol: a body of unknown length (chunked on
// HTTP/1.1, no content-length on HTTP/2 and HTTP/3), larger than the request
// window, streams to a real worker and comes back whole over every protocol.
func TestUploadUnknownLengthEveryProtocol(t *testing.T) {
	for _, mode := range protoModes {
		t.Run(mode.name, func(t *testing.T) {
			m := startModeGateway(t, mode, 1)
			in := make([]byte, 3<<20+5)
			for i := range in {
				in[i] = byte(i * 31 >> 4)
			}
			req, err := http.NewRequest("POST", m.base+"/echo", struct{ io.Reader }{bytes.NewReader(in)})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := m.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != mode.major || !bytes.Equal(out, in) {
				t.Fatalf("%s %d: %d bytes back of %d", resp.Proto, resp.StatusCode, len(out), len(in))
			}
		})
	}
}
