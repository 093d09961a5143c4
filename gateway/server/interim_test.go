package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/workerproto"
)

func hintFields(kv ...string) []workerproto.Header {
	var hs []workerproto.Header
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, workerproto.Header{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return hs
}

// earlyHintsBackend answers /hints with two 103s and then 200 "done", /badhint
// with a 103 whose field could split the response, and /latehint with a 103
// after its head.
func earlyHintsBackend(t *testing.T) *fakeBackend {
	b := newFakeBackend()
	b.handle(t, "GET", "/hints", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		iw := w.(dispatch.InterimWriter)
		if err := iw.WriteInterim(103, hintFields("link", "</a.css>; rel=preload; as=style", "content-length", "5")); err != nil {
			return err
		}
		if err := iw.WriteInterim(103, hintFields("link", "</b.js>; rel=preload; as=script")); err != nil {
			return err
		}
		return respond(w, 200, "done")
	})
	b.handle(t, "GET", "/badhint", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		if err := w.(dispatch.InterimWriter).WriteInterim(103, hintFields("link", "</a>\x01")); err != nil {
			return err
		}
		return respond(w, 200, "unreachable")
	})
	b.handle(t, "GET", "/latehint", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		if err := w.WriteHead(200, nil, -1); err != nil {
			return err
		}
		return w.(dispatch.InterimWriter).WriteInterim(103, hintFields("link", "</late>"))
	})
	return b
}

// TestEarlyHints: a worker's 103s reach an HTTP/1.1 client before the final
// response, exactly, without the framing fields; an HTTP/1.0 client gets the
// final response alone (RFC 9110 15.2); the access log and the metrics count
// one response; a 103 the writer refuses is a 502, and one after the head
// breaks the response off.
func TestEarlyHints(t *testing.T) {
	m, reg := newMetrics(t)
	var logs lockedBuffer
	ts := startServer(t, Config{Metrics: m, AccessLog: slog.New(slog.NewJSONHandler(&logs, nil))}, earlyHintsBackend(t))

	rc := ts.dial(t)
	rc.send(get("x", "/hints"))
	want := "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload; as=style\r\n\r\n" +
		"HTTP/1.1 103 Early Hints\r\nlink: </b.js>; rel=preload; as=script\r\n\r\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(rc.br, got); err != nil || string(got) != want {
		t.Fatalf("interim responses:\n got %q\nwant %q", got, want)
	}
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "done" {
		t.Fatalf("final: %d %q", resp.StatusCode, body)
	}

	// HTTP/1.0: no 103 at all, the final response first.
	rc10 := ts.dial(t)
	rc10.send("GET /hints HTTP/1.0\r\n\r\n")
	if line, err := rc10.br.Peek(len("HTTP/1.1 200")); err != nil || string(line) != "HTTP/1.1 200" {
		t.Fatalf("HTTP/1.0 client: %q %v", line, err)
	}
	if resp, body := rc10.read("GET"); resp.StatusCode != 200 || body != "done" {
		t.Fatalf("HTTP/1.0 final: %d %q", resp.StatusCode, body)
	}

	// net/http's client sees the 103s through httptrace, then the 200.
	var mu sync.Mutex
	var links []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		if code == 103 {
			links = append(links, h.Values("Link")...)
		}
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", ts.url("/hints"), nil)
	resp, err := ts.client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	if resp.StatusCode != 200 || strings.Join(links, ",") != "</a.css>; rel=preload; as=style,</b.js>; rel=preload; as=script" {
		t.Fatalf("net/http: %d, links %q", resp.StatusCode, links)
	}
	mu.Unlock()

	// A field the HTTP writer refuses: nothing of the 103 went out, so the
	// client gets a whole 502 and the connection stays usable.
	rc.send(get("x", "/badhint"))
	if resp, _ := rc.read("GET"); resp.StatusCode != 502 {
		t.Fatalf("bad hint: %d, want 502", resp.StatusCode)
	}
	// After the head: the response is broken off (here its head, still
	// buffered, goes with it).
	rc.send(get("x", "/latehint"))
	rc.expectEOF()

	// A response is counted and logged after it is written, so the last one may
	// still be on its way when the client has it.
	app := "GET /hints"
	counted := func() float64 {
		return metricValue(t, reg, "covet_requests_total", map[string]string{"app": app, "status": "200"})
	}
	hintLines := func() (n int) {
		for _, l := range logs.lines() {
			if strings.Contains(l, `"/hints"`) {
				n++
			}
		}
		return n
	}
	waitFor(t, "three /hints responses counted and logged", func() bool { return counted() >= 3 && hintLines() >= 3 })
	if got := counted(); got != 3 {
		t.Errorf("requests counted: %v, want 3 (one per response, not per 103)", got)
	}
	if got := metricValue(t, reg, "covet_requests_total", map[string]string{"app": app, "status": "103"}); got != 0 {
		t.Errorf("103s counted as responses: %v", got)
	}
	n := 0
	for _, l := range logs.lines() {
		if strings.Contains(l, `"/hints"`) {
			n++
			if !strings.Contains(l, `"status":200`) {
				t.Errorf("access log: %s", l)
			}
		}
	}
	if n != 3 {
		t.Errorf("%d access log lines for /hints, want 3:\n%s", n, strings.Join(logs.lines(), "\n"))
	}
}
