package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/http1"
)

// streamBackend has POST /upload, whose handler reads the body as a stream
// (req.BodyStream) through read, then answers with its length and SHA-256;
// and POST /early, which answers 413 without reading the body.
func streamBackend(t *testing.T, read func(req *dispatch.Request) ([]byte, error)) *fakeBackend {
	b := newFakeBackend()
	b.handleStream(t, "POST", "/upload", func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		if req.BodyStream == nil {
			return respond(w, 500, "body not streamed")
		}
		body, err := read(req)
		if err != nil {
			return &dispatch.BodyError{Err: err} // as dispatch answers a broken body
		}
		return respond(w, 200, fmt.Sprintf("%d %x %d", len(body), sha256.Sum256(body), req.Head.Body))
	})
	b.handleStream(t, "POST", "/early", func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 413, "too big for me")
	})
	b.handle(t, "GET", "/hello", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 200, "hello")
	})
	return b
}

// TestStreamedBodyBackpressure: a large body reaches the backend as it arrives,
// before the client has sent it all, and while the backend does not read, the
// gateway reads no more than its pipe and read buffer hold: the client's writes
// stop (net.Pipe: a write returns only once the gateway has read it). Once the
// backend reads on, the whole body arrives intact.
func TestStreamedBodyBackpressure(t *testing.T) {
	const size = 16 << 20
	first := make(chan struct{})
	release := make(chan struct{})
	b := streamBackend(t, func(req *dispatch.Request) ([]byte, error) {
		buf := make([]byte, 1000)
		n, err := io.ReadFull(req.BodyStream, buf)
		if err != nil {
			return nil, err
		}
		close(first)
		<-release
		rest, err := io.ReadAll(req.BodyStream)
		return append(buf[:n], rest...), err
	})
	l := newPipeListener()
	srv := &Server{Backend: b, Config: Config{Limits: http1.Limits{MaxBodyBytes: 1 << 30}}}
	go srv.Serve(l)
	defer srv.Close()
	nc := l.dial()
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(60 * time.Second))

	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	var written atomic.Int64
	sent := make(chan error, 1)
	go func() {
		if _, err := fmt.Fprintf(nc, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size); err != nil {
			sent <- err
			return
		}
		for p := body; len(p) > 0; p = p[min(len(p), 4096):] {
			n, err := nc.Write(p[:min(len(p), 4096)])
			written.Add(int64(n))
			if err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("the backend got no body bytes before the body was complete")
	}
	// The backend holds on. The gateway may take in its pipe, its read buffer
	// and one client write beyond what the backend read; give a gateway that
	// buffered more the time to show it.
	bound := int64(1000 + pipeSize + initialReadBuf + 4096)
	for range 20 {
		time.Sleep(5 * time.Millisecond)
		if w := written.Load(); w > bound {
			t.Fatalf("the client wrote %d body bytes while the backend read 1000: over the bound %d", w, bound)
		}
	}
	close(release)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	want := fmt.Sprintf("%d %x %d", size, sha256.Sum256(body), size)
	if resp.StatusCode != 200 || string(got) != want {
		t.Fatalf("%d %q, want 200 %q", resp.StatusCode, got, want)
	}
}

// TestStreamedChunkedBody: a chunked body streams too (Head.Body -1), arrives
// intact, and the connection then serves the next request.
func TestStreamedChunkedBody(t *testing.T) {
	b := streamBackend(t, func(req *dispatch.Request) ([]byte, error) { return io.ReadAll(req.BodyStream) })
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	var sb strings.Builder
	var all []byte
	sb.WriteString("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := range 50 {
		chunk := bytes.Repeat([]byte{byte('a' + i%26)}, 3000+i)
		all = append(all, chunk...)
		fmt.Fprintf(&sb, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	sb.WriteString("0\r\nX-Trailer: yes\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
	rc.send(sb.String())
	if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != fmt.Sprintf("%d %x -1", len(all), sha256.Sum256(all)) {
		t.Fatalf("chunked upload: %d %q", resp.StatusCode, body)
	}
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("the request after it: %d %q", resp.StatusCode, body)
	}
}

// TestStreamedBodyTooLarge: a chunked body that passes max_body_bytes while the
// backend streams it breaks off there: the backend's read fails, and the client
// gets 413 and the connection closes.
func TestStreamedBodyTooLarge(t *testing.T) {
	var readErr atomic.Value
	b := streamBackend(t, func(req *dispatch.Request) ([]byte, error) {
		body, err := io.ReadAll(req.BodyStream)
		if err != nil {
			readErr.Store(err)
		}
		return body, err
	})
	ts := startServer(t, Config{Limits: http1.Limits{MaxBodyBytes: 200 << 10}}, b)
	rc := ts.dial(t)
	chunk := strings.Repeat("z", 50<<10)
	var sb strings.Builder
	sb.WriteString("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	for range 5 { // 250 KiB
		fmt.Fprintf(&sb, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	sb.WriteString("0\r\n\r\n")
	rc.send(sb.String())
	resp, _ := rc.read("POST")
	if resp.StatusCode != 413 || !resp.Close {
		t.Fatalf("a body over max_body_bytes mid-stream: %d close=%v, want 413 and close", resp.StatusCode, resp.Close)
	}
	var pe *http1.Error
	if err, _ := readErr.Load().(error); !errors.As(err, &pe) || pe.Status != 413 {
		t.Fatalf("the backend's read failed with %v, want the 413", err)
	}
	rc.expectEOF()
}

// TestStreamedBodyEarlyAnswer: a backend that answers before reading the body
// (a 413 of its own) gets its answer to the client at once; the gateway drops
// the rest of the body and the connection serves the next request.
func TestStreamedBodyEarlyAnswer(t *testing.T) {
	b := streamBackend(t, nil)
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	const size = 1 << 20
	rc.send(fmt.Sprintf("POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size))
	if resp, body := rc.read("POST"); resp.StatusCode != 413 || body != "too big for me" {
		t.Fatalf("early answer: %d %q", resp.StatusCode, body)
	}
	rc.send(strings.Repeat("q", size) + "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("the request after the dropped body: %d %q", resp.StatusCode, body)
	}
}

// TestStreamedBodyClientGone: a client that leaves mid-body breaks the body
// off: the backend's blocked read returns an error, it does not hang.
func TestStreamedBodyClientGone(t *testing.T) {
	readDone := make(chan error, 1)
	b := streamBackend(t, func(req *dispatch.Request) ([]byte, error) {
		body, err := io.ReadAll(req.BodyStream)
		readDone <- err
		return body, err
	})
	ts := startServer(t, Config{}, b)
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(nc, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", 1<<20, strings.Repeat("x", 100<<10))
	time.Sleep(10 * time.Millisecond) // let some of it through first (not required)
	nc.Close()
	select {
	case err := <-readDone:
		if err == nil {
			t.Fatal("the backend read a whole body from a client that left mid-body")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the backend's read did not end after the client left")
	}
}

// TestStreamedBodyHTTP2AndHTTP3: over HTTP/2 and HTTP/3 a body of unknown length
// streams to the backend too (Head.Body -1) and arrives intact; one that passes
// max_body_bytes mid-stream breaks the backend's read off with a 413, which the
// client gets.
func TestStreamedBodyHTTP2AndHTTP3(t *testing.T) {
	const max = 1 << 20
	cfg := Config{Limits: http1.Limits{MaxBodyBytes: max}}
	b := streamBackend(t, func(req *dispatch.Request) ([]byte, error) { return io.ReadAll(req.BodyStream) })
	ts2, tc2 := startTLSServer(t, cfg, b)
	_, tc3, addr3 := startH3Server(t, cfg, b)
	for _, tt := range []struct {
		name string
		c    *http.Client
		addr string
	}{{"h2", client(t, tc2, "2"), ts2.addr}, {"h3", h3Client(t, tc3), addr3}} {
		t.Run(tt.name, func(t *testing.T) {
			body := bytes.Repeat([]byte("streamed "), 100000) // 900 kB
			post := func(n int) (int, string) {
				// A reader the client cannot size: no Content-Length.
				resp, err := tt.c.Post("https://"+tt.addr+"/upload", "application/octet-stream", io.MultiReader(bytes.NewReader(body[:n/2]), bytes.NewReader(body[n/2:n])))
				if err != nil {
					return 0, err.Error()
				}
				defer resp.Body.Close()
				got, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(got)
			}
			if st, got := post(len(body)); st != 200 || got != fmt.Sprintf("%d %x -1", len(body), sha256.Sum256(body)) {
				t.Fatalf("upload: %d %q", st, got)
			}
			body = bytes.Repeat([]byte("x"), max+100)
			if st, _ := post(len(body)); st != 413 {
				t.Fatalf("a body over max_body_bytes: %d, want 413", st)
			}
		})
	}
}

// TestStreamedBodyTooSlow: a client that stalls mid-body past the body deadline
// breaks the streamed body off: the backend's read fails and the client gets 408
// and the connection closes.
func TestStreamedBodyTooSlow(t *testing.T) {
	b := streamBackend(t, func(req *dispatch.Request) ([]byte, error) { return io.ReadAll(req.BodyStream) })
	ts := startServer(t, Config{BodyReadTimeout: 200 * time.Millisecond}, b)
	rc := ts.dial(t)
	rc.send(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", 1<<20, strings.Repeat("s", 100<<10)))
	resp, _ := rc.read("POST") // the rest never comes
	if resp.StatusCode != 408 || !resp.Close {
		t.Fatalf("a stalled streamed body: %d close=%v, want 408 and close", resp.StatusCode, resp.Close)
	}
}

// TestStreamedBodySlowBackendIsNotTheClients: the time the reader waits for a
// slow backend to drain the pipe does not count against the client's body
// deadline. Here the client could send the whole body at once (net.Pipe: it
// waits only for the gateway), the backend sleeps long past BodyReadTimeout
// plus what the bytes already read buy at MinBodyRate, and the body still
// arrives whole.
func TestStreamedBodySlowBackendIsNotTheClients(t *testing.T) {
	const size = 4 << 20
	b := streamBackend(t, func(req *dispatch.Request) ([]byte, error) {
		time.Sleep(2500 * time.Millisecond)
		return io.ReadAll(req.BodyStream)
	})
	l := newPipeListener()
	srv := &Server{Backend: b, Config: Config{BodyReadTimeout: 500 * time.Millisecond, MinBodyRate: 1 << 20}}
	go srv.Serve(l)
	defer srv.Close()
	nc := l.dial()
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	body := bytes.Repeat([]byte("w"), size)
	go fmt.Fprintf(nc, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", size, body)
	resp, err := http.ReadResponse(bufio.NewReader(nc), &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("%d %x %d", size, sha256.Sum256(body), size); resp.StatusCode != 200 || string(got) != want {
		t.Fatalf("%d %q, want 200 %q", resp.StatusCode, got, want)
	}
}

// TestStreamedBodyExpectContinue: a large body sent after 100 Continue streams
// as any other, and the connection serves the next request.
func TestStreamedBodyExpectContinue(t *testing.T) {
	b := streamBackend(t, func(req *dispatch.Request) ([]byte, error) { return io.ReadAll(req.BodyStream) })
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	body := strings.Repeat("e", 1<<20)
	rc.send(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", len(body)))
	rc.expect100()
	rc.send(body + "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, got := rc.read("POST"); resp.StatusCode != 200 || got != fmt.Sprintf("%d %x %d", len(body), sha256.Sum256([]byte(body)), len(body)) {
		t.Fatalf("upload after 100 Continue: %d %q", resp.StatusCode, got)
	}
	if resp, got := rc.read("GET"); resp.StatusCode != 200 || got != "hello" {
		t.Fatalf("the request after it: %d %q", resp.StatusCode, got)
	}
}

// TestStreamedBodyNeverRead: a backend that fails before it reads a streamed
// body (no worker: 503) gets its answer out; the reader drops the body, which is
// larger than the pipe, and the connection serves the next request.
func TestStreamedBodyNeverRead(t *testing.T) {
	b := streamBackend(t, nil)
	b.handleStream(t, "POST", "/noworker", func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return dispatch.ErrNoWorker
	})
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	const size = 4 * pipeSize
	rc.send(fmt.Sprintf("POST /noworker HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size))
	go rc.nc.Write([]byte(strings.Repeat("n", size) + "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp, _ := rc.read("POST"); resp.StatusCode != 503 {
		t.Fatalf("no worker: %d, want 503", resp.StatusCode)
	}
	if resp, got := rc.read("GET"); resp.StatusCode != 200 || got != "hello" {
		t.Fatalf("the request after the dropped body: %d %q", resp.StatusCode, got)
	}
}

// TestStreamedBodyBehindAClosingResponse: a large body pipelined behind a
// request whose response closes the connection is never answered; the reader,
// which may be writing it into its pipe, does not stay blocked there: the
// connection ends, and Shutdown finds nothing left open.
func TestStreamedBodyBehindAClosingResponse(t *testing.T) {
	b := streamBackend(t, func(req *dispatch.Request) ([]byte, error) { return io.ReadAll(req.BodyStream) })
	started := make(chan struct{})
	b.handle(t, "GET", "/boom", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		<-started     // until the upload behind it is queued
		panic("boom") // a 502 that closes the connection
	})
	ts := startServer(t, Config{}, b)
	rc := ts.dial(t)
	rc.send(fmt.Sprintf("GET /boom HTTP/1.1\r\nHost: x\r\n\r\nPOST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 8*pipeSize))
	go func() {
		rc.nc.Write(bytes.Repeat([]byte("p"), 2*pipeSize)) // by now the reader has most likely queued the upload
		close(started)
		rc.nc.Write(bytes.Repeat([]byte("p"), 6*pipeSize)) // fails once the gateway closes
	}()
	if resp, _ := rc.read("GET"); resp.StatusCode != 502 || !resp.Close {
		t.Fatalf("first response: %d close=%v, want 502 and close", resp.StatusCode, resp.Close)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (a connection stayed open)", err)
	}
}
