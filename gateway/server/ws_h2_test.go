//lint:file-ignore SA1019 x/net/http2's Transport is deprecated, but net/http's client refuses the ":protocol" field extended CONNECT needs

package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/net/http2"
)

// xconnectOn reports whether this process started with extended CONNECT
// enabled in Go's HTTP/2 (GODEBUG=http2xconnect=1, read by net/http at
// start-up). A test that needs it and runs without it runs itself again in
// a child process with it set, and passes or fails with the child.
func xconnectOn(t *testing.T) bool {
	t.Helper()
	if strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=http2xconnect=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("%s with GODEBUG=http2xconnect=1: %v\n%s", t.Name(), err, out)
	}
	return false
}

// TestWSH2 opens a session over HTTP/2 with RFC 8441's extended CONNECT
// (h2c with prior knowledge), echoes a message and closes.
func TestWSH2(t *testing.T) {
	if !xconnectOn(t) {
		return
	}
	b := newWSBackend(t)
	b.subprotocol = "chat"
	cfg := wsConfig()
	cfg.H2C = true
	ts := startServer(t, cfg, b)
	c := h2cClient(t)

	pr, pw := io.Pipe()
	defer pw.Close()
	resp := wsConnectH2(t, c, "http://"+ts.addr+"/ws", pr, "13", "chat")
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Sec-WebSocket-Protocol") != "chat" || resp.Header.Get("Sec-WebSocket-Accept") != "" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	if h := <-b.heads; h.Method != "GET" || h.Route != "/ws" {
		t.Errorf("worker head %+v", h)
	}
	echoOverH2(t, pw, resp.Body, "over h2")
	go pw.Write(frame(true, 0, ws.OpClose, closeBody(1000, ""), false))
	h, _ := ws.ReadHeader(resp.Body)
	p := make([]byte, h.Length)
	io.ReadFull(resp.Body, p)
	if h.OpCode != ws.OpClose || binary.BigEndian.Uint16(p) != 1000 {
		t.Fatalf("close answer %v %q", h.OpCode, p)
	}
	if ce := b.closed(t); ce.Code != 1000 {
		t.Errorf("backend saw %d", ce.Code)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Errorf("stream did not end cleanly: %v", err)
	}

	// A version other than 13, and a route that is not a WebSocket one.
	for _, tc := range []struct {
		path, version string
		status        int
	}{
		{
			path:    "/ws",
			version: "8",
			status:  426,
		},
		{
			path:    "/plain",
			version: "13",
			status:  400,
		},
	} {
		resp := wsConnectH2(t, c, "http://"+ts.addr+tc.path, http.NoBody, tc.version, "")
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s version %s: %d, want %d", tc.path, tc.version, resp.StatusCode, tc.status)
		}
	}
}

// echoOverH2 sends msg in a text frame on w and checks that the same text comes back
// on r.
func echoOverH2(t *testing.T, w io.Writer, r io.Reader, msg string) {
	t.Helper()
	go w.Write(frame(true, 0, ws.OpText, []byte(msg), false))
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, h.Length)
	io.ReadFull(r, p)
	if h.OpCode != ws.OpText || string(p) != msg {
		t.Fatalf("echo %v %q", h.OpCode, p)
	}
}

// wsConnectH2 sends c's extended CONNECT (RFC 8441) for a WebSocket session to url,
// with Sec-WebSocket-Version version and, unless empty, Sec-WebSocket-Protocol
// protocol; body carries the client's frames.
func wsConnectH2(t *testing.T, c *http.Client, url string, body io.Reader, version, protocol string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodConnect, url, body)
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", version)
	if protocol != "" {
		req.Header.Set("Sec-WebSocket-Protocol", protocol)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// h2cClient is an HTTP/2 client with prior knowledge over cleartext: x/net/http2's
// (net/http's refuses a ":protocol" field, which extended CONNECT needs).
func h2cClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return c
}
