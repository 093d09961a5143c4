package server

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// wsBackend is a fake Backend whose KindWebSocket routes echo: it accepts
// (with subprotocol), then writes back every message it reads, on one
// goroutine, until the client's side ends; it records how.
type wsBackend struct {
	*fakeBackend
	subprotocol string
	reject      int // status to answer instead of accepting
	// serve, when set, replaces the echo loop after Accept.
	serve  func(peer dispatch.WebSocketPeer) error
	closes chan *dispatch.CloseError
	heads  chan workerproto.RequestHead
}

func newWSBackend(t testing.TB) *wsBackend {
	b := &wsBackend{fakeBackend: newFakeBackend(), closes: make(chan *dispatch.CloseError, 64), heads: make(chan workerproto.RequestHead, 4)}
	rt := &dispatch.Route{App: "ws", Pattern: "/ws", Kind: dispatch.KindWebSocket}
	if err := b.r.Add(router.Route[*dispatch.Route]{Method: "GET", Pattern: "/ws", Value: rt}); err != nil {
		t.Fatal(err)
	}
	b.handle(t, "GET", "/plain", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 200, "plain")
	})
	return b
}

func (b *wsBackend) ServeWebSocket(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, peer dispatch.WebSocketPeer) error {
	select {
	case b.heads <- workerproto.RequestHead{Method: strings.Clone(req.Head.Method), Route: strings.Clone(req.Head.Route), Body: req.Head.Body}:
	default:
	}
	if b.reject != 0 {
		return respond(peer, b.reject, "refused")
	}
	if err := peer.Accept(b.subprotocol, []workerproto.Header{{Name: []byte("set-cookie"), Value: []byte("a=1")}}); err != nil {
		return err
	}
	if b.serve != nil {
		return b.serve(peer)
	}
	for {
		text, p, err := peer.ReadMessage()
		if err != nil {
			var ce *dispatch.CloseError
			if !errors.As(err, &ce) {
				return err
			}
			select {
			case b.closes <- ce:
			default: // nobody is looking (TestWSIdleConnCost)
			}
			return peer.Close(ce.Code, ce.Reason)
		}
		if err := peer.WriteMessage(text, p); err != nil {
			return err
		}
	}
}

func (b *wsBackend) closed(t *testing.T) *dispatch.CloseError {
	t.Helper()
	select {
	case ce := <-b.closes:
		return ce
	case <-time.After(5 * time.Second):
		t.Fatal("backend saw no end of the session")
		return nil
	}
}

const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

func wsUpgrade(host string, extra ...string) string {
	s := "GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\n"
	for _, e := range extra {
		s += e + "\r\n"
	}
	return s + "\r\n"
}

// wsOpen dials the server and completes a handshake, failing the test
// unless it gets 101.
func wsOpen(t *testing.T, ts *testServer, extra ...string) (*rawConn, *http.Response) {
	t.Helper()
	rc := ts.dial(t)
	rc.send(wsUpgrade(ts.addr, extra...))
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("read handshake response: %v", err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("handshake: status %d, want 101", resp.StatusCode)
	}
	return rc, resp
}

// frame builds a client frame: masked unless unmasked is set.
func frame(fin bool, rsv byte, op ws.OpCode, p []byte, unmasked bool) []byte {
	h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Length: int64(len(p)), Masked: !unmasked}
	if !unmasked {
		h.Mask = [4]byte{0x11, 0x22, 0x33, 0x44}
	}
	var buf bytes.Buffer
	if err := ws.WriteHeader(&buf, h); err != nil {
		panic(err)
	}
	q := append([]byte(nil), p...)
	if !unmasked {
		ws.Cipher(q, h.Mask, 0)
	}
	buf.Write(q)
	return buf.Bytes()
}

func (rc *rawConn) sendFrames(fs ...[]byte) {
	rc.t.Helper()
	for _, f := range fs {
		if _, err := rc.nc.Write(f); err != nil {
			rc.t.Fatalf("write frame: %v", err)
		}
	}
}

// readFrame reads one server frame, which must be unmasked.
func (rc *rawConn) readFrame() (ws.Header, []byte) {
	rc.t.Helper()
	h, err := ws.ReadHeader(rc.br)
	if err != nil {
		rc.t.Fatalf("read frame header: %v", err)
	}
	if h.Masked {
		rc.t.Fatalf("server frame is masked")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(rc.br, p); err != nil {
		rc.t.Fatalf("read frame payload: %v", err)
	}
	return h, p
}

// expectClose reads frames up to the server's Close and checks its code,
// then that the server closes the connection.
func (rc *rawConn) expectClose(code int) string {
	rc.t.Helper()
	for {
		h, p := rc.readFrame()
		if h.OpCode != ws.OpClose {
			continue
		}
		got := 1005
		if len(p) >= 2 {
			got = int(binary.BigEndian.Uint16(p))
		}
		if got != code {
			rc.t.Fatalf("close code %d (%q), want %d", got, p, code)
		}
		rc.sendFrames(frame(true, 0, ws.OpClose, p[:min(len(p), 2)], false))
		rc.expectEOF()
		if len(p) > 2 {
			return string(p[2:])
		}
		return ""
	}
}

func closeBody(code int, reason string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(b, reason...)
}

func wsConfig() Config {
	return Config{WSPingInterval: -1, WSIdleTimeout: -1}
}

func TestWSHandshake(t *testing.T) {
	b := newWSBackend(t)
	b.subprotocol = "chat"
	ts := startServer(t, wsConfig(), b)

	rc, resp := wsOpen(t, ts, "Sec-WebSocket-Protocol: superchat, chat")
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("Sec-WebSocket-Accept %q", got)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "chat" {
		t.Errorf("Sec-WebSocket-Protocol %q, want chat", got)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
		t.Errorf("Upgrade %q Connection %q", resp.Header.Get("Upgrade"), resp.Header.Get("Connection"))
	}
	if resp.Header.Get("Set-Cookie") != "a=1" || resp.Header.Get("Sec-WebSocket-Extensions") != "" {
		t.Errorf("headers %v", resp.Header)
	}
	h := <-b.heads
	if h.Route != "/ws" || h.Body != 0 || h.Method != "GET" {
		t.Errorf("worker head %+v", h)
	}
	rc.sendFrames(frame(true, 0, ws.OpClose, closeBody(1000, ""), false))
	if hd, p := rc.readFrame(); hd.OpCode != ws.OpClose || binary.BigEndian.Uint16(p) != 1000 {
		t.Errorf("close answer %v %q", hd.OpCode, p)
	}
	rc.expectEOF()

	cases := []struct {
		name    string
		req     string
		status  int
		version string
	}{
		{
			name:   "no upgrade",
			req:    "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 426,
		},
		{
			name:    "version 8",
			req:     strings.Replace(wsUpgrade("x"), "Version: 13", "Version: 8", 1),
			status:  426,
			version: "13",
		},
		{
			name:   "bad key",
			req:    strings.Replace(wsUpgrade("x"), wsKey, "c2hvcnQ=", 1),
			status: 400,
		},
		{
			name:   "no key",
			req:    strings.Replace(wsUpgrade("x"), "Sec-WebSocket-Key: "+wsKey+"\r\n", "", 1),
			status: 400,
		},
		{
			name:   "HTTP/1.0",
			req:    strings.Replace(wsUpgrade("x"), "HTTP/1.1", "HTTP/1.0", 1),
			status: 400,
		},
		{
			name:   "body",
			req:    strings.Replace(wsUpgrade("x"), "\r\n\r\n", "\r\nContent-Length: 2\r\n\r\nab", 1),
			status: 400,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := ts.dial(t)
			rc.send(tc.req)
			resp, _ := rc.read("GET")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 426 && resp.Header.Get("Upgrade") != "websocket" {
				t.Errorf("426 without Upgrade: websocket: %v", resp.Header)
			}
			if got := resp.Header.Get("Sec-WebSocket-Version"); got != tc.version {
				t.Errorf("Sec-WebSocket-Version %q, want %q", got, tc.version)
			}
		})
	}

	t.Run("upgrade to a plain route", func(t *testing.T) {
		rc := ts.dial(t)
		rc.send(strings.Replace(wsUpgrade(ts.addr), "/ws", "/plain", 1))
		resp, body := rc.read("GET")
		if resp.StatusCode != 200 || body != "plain" {
			t.Fatalf("%d %q, want 200 plain", resp.StatusCode, body)
		}
	})
}

func TestWSSubprotocolNotOffered(t *testing.T) {
	b := newWSBackend(t)
	b.subprotocol = "chat"
	ts := startServer(t, wsConfig(), b)
	rc := ts.dial(t)
	rc.send(wsUpgrade(ts.addr, "Sec-WebSocket-Protocol: other"))
	resp, _ := rc.read("GET")
	if resp.StatusCode != 502 {
		t.Fatalf("status %d, want 502 (Accept refused a subprotocol the client did not offer)", resp.StatusCode)
	}
}

func TestWSRejected(t *testing.T) {
	b := newWSBackend(t)
	b.reject = 403
	ts := startServer(t, wsConfig(), b)
	rc := ts.dial(t)
	rc.send(wsUpgrade(ts.addr) + get(ts.addr, "/plain"))
	resp, body := rc.read("GET")
	if resp.StatusCode != 403 || body != "refused" || !resp.Close {
		t.Fatalf("%d %q close=%v, want 403 refused with Connection: close", resp.StatusCode, body, resp.Close)
	}
	rc.expectEOF() // the pipelined request is never served
}

func TestWSNoWebSocketBackend(t *testing.T) {
	b := newWSBackend(t)
	ts := startServer(t, wsConfig(), b.fakeBackend) // Lookup finds the ws route; no ServeWebSocket
	rc := ts.dial(t)
	rc.send(wsUpgrade(ts.addr))
	if resp, _ := rc.read("GET"); resp.StatusCode != 501 {
		t.Fatalf("status %d, want 501", resp.StatusCode)
	}
}

func TestWSEcho(t *testing.T) {
	b := newWSBackend(t)
	ts := startServer(t, wsConfig(), b)
	rc := ts.dial(t)
	// The first frame travels with the handshake: bytes read past the head
	// belong to the session.
	rc.send(wsUpgrade(ts.addr) + string(frame(true, 0, ws.OpText, []byte("early"), false)))
	if resp, err := http.ReadResponse(rc.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	expect := func(op ws.OpCode, want []byte) {
		t.Helper()
		h, p := rc.readFrame()
		if h.OpCode != op || !h.Fin || !bytes.Equal(p, want) {
			t.Fatalf("got %v fin=%v %q, want %v %q", h.OpCode, h.Fin, p, op, want)
		}
	}
	expect(ws.OpText, []byte("early"))

	rc.sendFrames(frame(true, 0, ws.OpBinary, []byte{0, 1, 2, 255}, false))
	expect(ws.OpBinary, []byte{0, 1, 2, 255})

	big := bytes.Repeat([]byte("0123456789"), 20000) // 200 KB: 64-bit length
	rc.sendFrames(frame(true, 0, ws.OpBinary, big, false))
	expect(ws.OpBinary, big)

	// Fragmented, with a ping between the fragments: the pong comes first,
	// and "é" is split across two fragments.
	e := []byte("é")
	rc.sendFrames(
		frame(false, 0, ws.OpText, append([]byte("ab"), e[0]), false),
		frame(true, 0, ws.OpPing, []byte("hi"), false),
		frame(false, 0, ws.OpContinuation, e[1:], false),
		frame(true, 0, ws.OpContinuation, []byte("cd"), false),
	)
	expect(ws.OpPong, []byte("hi"))
	expect(ws.OpText, []byte("abécd"))

	// An empty message, and an unsolicited pong, which is dropped.
	rc.sendFrames(frame(true, 0, ws.OpPong, nil, false), frame(true, 0, ws.OpText, nil, false))
	expect(ws.OpText, []byte{})

	rc.sendFrames(frame(true, 0, ws.OpClose, closeBody(1000, "bye"), false))
	expect(ws.OpClose, closeBody(1000, ""))
	rc.expectEOF()
	if ce := b.closed(t); ce.Code != 1000 || ce.Reason != "bye" {
		t.Errorf("backend saw %+v, want 1000 bye", ce)
	}
}

func TestWSFailures(t *testing.T) {
	cases := []struct {
		name   string
		frames [][]byte
		code   int
	}{
		{
			name:   "unmasked",
			frames: [][]byte{frame(true, 0, ws.OpText, []byte("x"), true)},
			code:   1002,
		},
		{
			name:   "reserved opcode",
			frames: [][]byte{frame(true, 0, ws.OpCode(3), []byte("x"), false)},
			code:   1002,
		},
		{
			name:   "reserved control opcode",
			frames: [][]byte{frame(true, 0, ws.OpCode(0xb), nil, false)},
			code:   1002,
		},
		{
			name:   "RSV2",
			frames: [][]byte{frame(true, ws.Rsv(false, true, false), ws.OpText, []byte("x"), false)},
			code:   1002,
		},
		{
			name:   "RSV1 without permessage-deflate",
			frames: [][]byte{frame(true, ws.Rsv(true, false, false), ws.OpText, []byte("x"), false)},
			code:   1002,
		},
		{
			name:   "continuation first",
			frames: [][]byte{frame(true, 0, ws.OpContinuation, []byte("x"), false)},
			code:   1002,
		},
		{
			name:   "new message inside a fragmented one",
			frames: [][]byte{frame(false, 0, ws.OpText, []byte("x"), false), frame(true, 0, ws.OpText, []byte("y"), false)},
			code:   1002,
		},
		{
			name:   "fragmented ping",
			frames: [][]byte{frame(false, 0, ws.OpPing, nil, false)},
			code:   1002,
		},
		{
			name:   "ping over 125 bytes",
			frames: [][]byte{frame(true, 0, ws.OpPing, make([]byte, 126), false)},
			code:   1002,
		},
		{
			name:   "close over 125 bytes",
			frames: [][]byte{frame(true, 0, ws.OpClose, closeBody(1000, strings.Repeat("r", 124)), false)},
			code:   1002,
		},
		{
			name:   "close of one byte",
			frames: [][]byte{frame(true, 0, ws.OpClose, []byte{3}, false)},
			code:   1002,
		},
		{
			name:   "close code 1005",
			frames: [][]byte{frame(true, 0, ws.OpClose, closeBody(1005, ""), false)},
			code:   1002,
		},
		{
			name:   "close code 5000",
			frames: [][]byte{frame(true, 0, ws.OpClose, closeBody(5000, ""), false)},
			code:   1002,
		},
		{
			name:   "close code 1015",
			frames: [][]byte{frame(true, 0, ws.OpClose, closeBody(1015, ""), false)},
			code:   1002,
		},
		{
			name:   "close code 999",
			frames: [][]byte{frame(true, 0, ws.OpClose, closeBody(999, ""), false)},
			code:   1002,
		},
		{
			name:   "close reason not UTF-8",
			frames: [][]byte{frame(true, 0, ws.OpClose, closeBody(1000, "\xff"), false)},
			code:   1007,
		},
		{
			name:   "text not UTF-8",
			frames: [][]byte{frame(true, 0, ws.OpText, []byte("ok\xc0\xafok"), false)},
			code:   1007,
		},
		{
			name:   "text cut inside a rune",
			frames: [][]byte{frame(true, 0, ws.OpText, []byte("ok\xe2\x82"), false)},
			code:   1007,
		},
		{
			name:   "surrogate",
			frames: [][]byte{frame(true, 0, ws.OpText, []byte("\xed\xa0\x80"), false)},
			code:   1007,
		},
		{
			name:   "too big",
			frames: [][]byte{frame(true, 0, ws.OpBinary, make([]byte, 1025), false)},
			code:   1009,
		},
		{
			name: "too big in fragments",
			frames: [][]byte{
				frame(false, 0, ws.OpBinary, make([]byte, 600), false),
				frame(true, 0, ws.OpContinuation, make([]byte, 600), false),
			},
			code: 1009,
		},
	}
	b := newWSBackend(t)
	cfg := wsConfig()
	cfg.WSMaxMessageBytes = 1024
	ts := startServer(t, cfg, b)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, _ := wsOpen(t, ts)
			rc.sendFrames(tc.frames...)
			rc.expectClose(tc.code)
			if ce := b.closed(t); ce.Code != tc.code {
				t.Errorf("backend saw %d, want %d", ce.Code, tc.code)
			}
		})
	}
	t.Run("at the limit", func(t *testing.T) {
		rc, _ := wsOpen(t, ts)
		rc.sendFrames(frame(true, 0, ws.OpBinary, make([]byte, 1024), false))
		if h, p := rc.readFrame(); h.OpCode != ws.OpBinary || len(p) != 1024 {
			t.Fatalf("got %v len %d", h.OpCode, len(p))
		}
	})
}

// TestWSUTF8FailFast: invalid UTF-8 in the second fragment of a text
// message closes the session with 1007 before the message is complete.
func TestWSUTF8FailFast(t *testing.T) {
	b := newWSBackend(t)
	ts := startServer(t, wsConfig(), b)
	rc, _ := wsOpen(t, ts)
	rc.sendFrames(
		frame(false, 0, ws.OpText, []byte("\xce\xba\xe1"), false), // valid, then a rune's first byte
		frame(false, 0, ws.OpContinuation, []byte("\xbd\xff"), false),
	)
	rc.expectClose(1007)
	if ce := b.closed(t); ce.Code != 1007 {
		t.Errorf("backend saw %d, want 1007", ce.Code)
	}
}

func TestWSCloseCodes(t *testing.T) {
	b := newWSBackend(t)
	ts := startServer(t, wsConfig(), b)
	for _, tc := range []struct {
		body []byte
		code int
	}{
		{
			body: nil,
			code: 1005,
		},
		{
			body: closeBody(1001, "away"),
			code: 1001,
		},
		{
			body: closeBody(3000, ""),
			code: 3000,
		},
		{
			body: closeBody(4999, "app"),
			code: 4999,
		},
	} {
		rc, _ := wsOpen(t, ts)
		rc.sendFrames(frame(true, 0, ws.OpClose, tc.body, false))
		h, p := rc.readFrame()
		if h.OpCode != ws.OpClose || !bytes.Equal(p, tc.body[:min(2, len(tc.body))]) {
			t.Errorf("code %d: answer %v %q, want the code echoed", tc.code, h.OpCode, p)
		}
		rc.expectEOF()
		if ce := b.closed(t); ce.Code != tc.code {
			t.Errorf("backend saw %d, want %d", ce.Code, tc.code)
		}
	}

	t.Run("lost connection", func(t *testing.T) {
		rc, _ := wsOpen(t, ts)
		rc.nc.Close()
		if ce := b.closed(t); ce.Code != 1006 {
			t.Errorf("backend saw %d, want 1006", ce.Code)
		}
	})
}

// TestWSGatewayCloses: the backend closes first; the client answers and the
// connection ends.
func TestWSGatewayCloses(t *testing.T) {
	b := newWSBackend(t)
	b.serve = func(peer dispatch.WebSocketPeer) error {
		if err := peer.WriteMessage(true, []byte("bye")); err != nil {
			return err
		}
		if werr := peer.WriteMessage(true, []byte("\xff")); werr == nil {
			t.Error("WriteMessage of text that is not UTF-8 succeeded")
		}
		err := peer.Close(4000, "done")
		if werr := peer.WriteMessage(true, []byte("late")); werr == nil {
			t.Error("WriteMessage after Close succeeded")
		}
		return err
	}
	ts := startServer(t, wsConfig(), b)
	rc, _ := wsOpen(t, ts)
	if h, p := rc.readFrame(); h.OpCode != ws.OpText || string(p) != "bye" {
		t.Fatalf("got %v %q", h.OpCode, p)
	}
	if why := rc.expectClose(4000); why != "done" {
		t.Errorf("reason %q", why)
	}
}

func deflateMsg(t *testing.T, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	fw.Write(p)
	fw.Flush()
	b := buf.Bytes()
	return b[:len(b)-4]
}

func inflateMsg(t *testing.T, p []byte) []byte {
	t.Helper()
	fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(fr)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

func TestWSCompression(t *testing.T) {
	b := newWSBackend(t)
	cfg := wsConfig()
	cfg.WSCompression = true
	cfg.WSMaxMessageBytes = 1 << 20
	ts := startServer(t, cfg, b)

	rc, resp := wsOpen(t, ts, "Sec-WebSocket-Extensions: x-unknown, permessage-deflate; client_max_window_bits")
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	if ext != "permessage-deflate; server_no_context_takeover; client_no_context_takeover" {
		t.Fatalf("Sec-WebSocket-Extensions %q", ext)
	}
	msg := bytes.Repeat([]byte("compress me please "), 500)
	// Compressed and fragmented: RSV1 on the first frame only.
	c := deflateMsg(t, msg)
	rc.sendFrames(
		frame(false, ws.Rsv(true, false, false), ws.OpText, c[:10], false),
		frame(true, 0, ws.OpContinuation, c[10:], false),
	)
	h, p := rc.readFrame()
	if h.OpCode != ws.OpText || !h.Rsv1() {
		t.Fatalf("echo %v rsv1=%v: want a compressed text frame", h.OpCode, h.Rsv1())
	}
	if got := inflateMsg(t, p); !bytes.Equal(got, msg) {
		t.Fatalf("echo inflates to %d bytes, want the %d sent", len(got), len(msg))
	}
	// A short message goes back uncompressed; an uncompressed one is fine.
	rc.sendFrames(frame(true, 0, ws.OpBinary, []byte("tiny"), false))
	if h, p := rc.readFrame(); h.Rsv1() || string(p) != "tiny" {
		t.Fatalf("tiny echo rsv1=%v %q", h.Rsv1(), p)
	}
	// RSV1 on a continuation frame is a protocol error.
	rc.sendFrames(
		frame(false, 0, ws.OpBinary, []byte("a"), false),
		frame(true, ws.Rsv(true, false, false), ws.OpContinuation, []byte("b"), false),
	)
	rc.expectClose(1002)
	b.closed(t)

	t.Run("bomb", func(t *testing.T) {
		rc, _ := wsOpen(t, ts, "Sec-WebSocket-Extensions: permessage-deflate")
		bomb := deflateMsg(t, make([]byte, 4<<20)) // 4 MiB of zeros, about 4 KB compressed
		if len(bomb) > 1<<20 {
			t.Fatalf("bomb is %d bytes compressed", len(bomb))
		}
		rc.sendFrames(frame(true, ws.Rsv(true, false, false), ws.OpBinary, bomb, false))
		rc.expectClose(1009)
		if ce := b.closed(t); ce.Code != 1009 {
			t.Errorf("backend saw %d, want 1009", ce.Code)
		}
	})
	t.Run("server window limited", func(t *testing.T) {
		rc, resp := wsOpen(t, ts, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9")
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "server_max_window_bits=9") {
			t.Fatalf("Sec-WebSocket-Extensions %q", ext)
		}
		rc.sendFrames(frame(true, 0, ws.OpText, msg, false))
		h, p := rc.readFrame()
		if !h.Rsv1() || !bytes.Equal(inflateMsg(t, p), msg) {
			t.Fatalf("echo rsv1=%v, or does not inflate to the message", h.Rsv1())
		}
	})
	t.Run("bad offer skipped", func(t *testing.T) {
		_, resp := wsOpen(t, ts, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99, permessage-deflate")
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "permessage-deflate; server_no_context_takeover; client_no_context_takeover" {
			t.Fatalf("Sec-WebSocket-Extensions %q", ext)
		}
	})
	t.Run("off", func(t *testing.T) {
		ts := startServer(t, wsConfig(), newWSBackend(t))
		_, resp := wsOpen(t, ts, "Sec-WebSocket-Extensions: permessage-deflate")
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
			t.Fatalf("compression off, yet Sec-WebSocket-Extensions %q", ext)
		}
	})
}

// TestWSLibraryClient runs gobwas/ws's own client, with permessage-deflate,
// against the gateway.
func TestWSLibraryClient(t *testing.T) {
	b := newWSBackend(t)
	cfg := wsConfig()
	cfg.WSCompression = true
	ts := startServer(t, cfg, b)

	ext := wsflate.Extension{Parameters: wsflate.DefaultParameters}
	d := ws.Dialer{Extensions: []httphead.Option{ext.Parameters.Option()}, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, br, hs, err := d.Dial(ctx, "ws://"+ts.addr+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if len(hs.Extensions) != 1 {
		t.Fatalf("extensions agreed: %v", hs.Extensions)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	var r io.Reader = nc
	if br != nil {
		r = io.MultiReader(br, nc)
	}
	msgs := []string{"hello", strings.Repeat("xyz", 1000), ""}
	fr := wsflate.NewReader(nil, func(r io.Reader) wsflate.Decompressor { return flate.NewReader(r) })
	fw := wsflate.NewWriter(nil, func(w io.Writer) wsflate.Compressor { f, _ := flate.NewWriter(w, 9); return f })
	for _, m := range msgs {
		var buf bytes.Buffer
		fw.Reset(&buf)
		fw.Write([]byte(m))
		fw.Close()
		h := ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(buf.Len()), Masked: true, Mask: ws.NewMask()}
		h, _ = wsflate.SetBit(h)
		p := buf.Bytes()
		ws.Cipher(p, h.Mask, 0)
		if err := ws.WriteHeader(nc, h); err != nil {
			t.Fatal(err)
		}
		nc.Write(p)

		rh, err := ws.ReadHeader(r)
		if err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, rh.Length)
		io.ReadFull(r, payload)
		got := payload
		if rh.Rsv1() {
			fr.Reset(bytes.NewReader(payload))
			got, err = io.ReadAll(fr)
			if err != nil {
				t.Fatal(err)
			}
		}
		if string(got) != m {
			t.Fatalf("echo %q, want %q", got, m)
		}
	}
	if err := wsutil.WriteClientMessage(nc, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")); err != nil {
		t.Fatal(err)
	}
	if ce := b.closed(t); ce.Code != 1000 {
		t.Errorf("backend saw %d", ce.Code)
	}
}

func TestWSPing(t *testing.T) {
	b := newWSBackend(t)
	cfg := wsConfig()
	cfg.WSPingInterval = 20 * time.Millisecond
	ts := startServer(t, cfg, b)
	rc, _ := wsOpen(t, ts)
	for i := 0; i < 2; i++ {
		h, _ := rc.readFrame()
		if h.OpCode != ws.OpPing {
			t.Fatalf("got %v, want a ping", h.OpCode)
		}
		rc.sendFrames(frame(true, 0, ws.OpPong, nil, false))
	}
}

func TestWSIdleTimeout(t *testing.T) {
	b := newWSBackend(t)
	cfg := wsConfig()
	cfg.WSIdleTimeout = 100 * time.Millisecond
	ts := startServer(t, cfg, b)
	start := time.Now() // before the handshake: the session's idle clock starts after it
	rc, _ := wsOpen(t, ts)
	if why := rc.expectClose(1001); why != "idle timeout" {
		t.Errorf("reason %q", why)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
	if ce := b.closed(t); ce.Code != 1001 {
		t.Errorf("backend saw %d, want 1001", ce.Code)
	}
}

func TestWSShutdown(t *testing.T) {
	b := newWSBackend(t)
	ts := startServer(t, wsConfig(), b)
	rc, _ := wsOpen(t, ts)
	rc.sendFrames(frame(true, 0, ws.OpText, []byte("x"), false))
	rc.readFrame()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- ts.srv.Shutdown(ctx)
	}()
	rc.expectClose(1001)
	if ce := b.closed(t); ce.Code != 1001 {
		t.Errorf("backend saw %d, want 1001", ce.Code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// TestWSSlowReader: a client that reads nothing while the backend writes
// blocks the backend's WriteMessage once the socket buffers are full; the
// gateway holds no more than the message being written.
func TestWSSlowReader(t *testing.T) {
	const size = 64 << 10
	var written, inWrite atomic.Int64
	release := make(chan struct{})
	b := newWSBackend(t)
	b.serve = func(peer dispatch.WebSocketPeer) error {
		msg := make([]byte, size)
		for {
			select {
			case <-release:
				return peer.Close(1000, "")
			default:
			}
			inWrite.Store(1)
			err := peer.WriteMessage(false, msg)
			inWrite.Store(0)
			if err != nil {
				return err
			}
			written.Add(1)
		}
	}
	ts := startServer(t, wsConfig(), b)
	rc, _ := wsOpen(t, ts)
	// Wait until the writes stall: a write in progress, and no progress in
	// 200ms (a safety bound, not a speed assumption: a stalled write stays
	// stalled while the client reads nothing).
	var last int64 = -1
	waitFor(t, "the backend's writes to block", func() bool {
		n := written.Load()
		stalled := n == last && inWrite.Load() == 1
		last = n
		time.Sleep(100 * time.Millisecond)
		return stalled && written.Load() == n
	})
	n := written.Load()
	// Loopback socket buffers take a few MiB at most; the gateway adds
	// nothing of its own beyond the message being written.
	if n*size > 32<<20 {
		t.Fatalf("%d messages (%d MiB) written to a client that reads nothing", n, n*size>>20)
	}
	close(release)
	// Now read: every message written arrives whole, then the close.
	got := int64(0)
	for {
		h, p := rc.readFrame()
		if h.OpCode == ws.OpClose {
			break
		}
		if len(p) != size {
			t.Fatalf("message %d: %d bytes", got, len(p))
		}
		got++
	}
	if got < n {
		t.Fatalf("read %d messages, %d were written", got, n)
	}
}

// TestWSConcurrentReadWrite: the backend reads and writes on two
// goroutines while the gateway pings: frames never interleave (the client
// parses every frame whole).
func TestWSConcurrentReadWrite(t *testing.T) {
	b := newWSBackend(t)
	const n = 200
	b.serve = func(peer dispatch.WebSocketPeer) error {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte("w"), 3000)
			for i := 0; i < n; i++ {
				if peer.WriteMessage(true, msg) != nil {
					return
				}
			}
		}()
		var err error
		for err == nil {
			_, _, err = peer.ReadMessage()
		}
		wg.Wait()
		var ce *dispatch.CloseError
		errors.As(err, &ce)
		b.closes <- ce
		return peer.Close(ce.Code, ce.Reason)
	}
	cfg := wsConfig()
	cfg.WSPingInterval = time.Millisecond
	ts := startServer(t, cfg, b)
	rc, _ := wsOpen(t, ts)
	go func() {
		for i := 0; i < n; i++ {
			if _, err := rc.nc.Write(frame(true, 0, ws.OpText, []byte("r"), false)); err != nil {
				return
			}
		}
	}()
	texts := 0
	for texts < n {
		h, p := rc.readFrame()
		switch h.OpCode {
		case ws.OpText:
			if len(p) != 3000 {
				t.Fatalf("text of %d bytes", len(p))
			}
			texts++
		case ws.OpPing:
		default:
			t.Fatalf("unexpected %v", h.OpCode)
		}
	}
	rc.sendFrames(frame(true, 0, ws.OpClose, closeBody(1000, ""), false))
	if ce := b.closed(t); ce.Code != 1000 {
		t.Errorf("backend saw %d", ce.Code)
	}
}

// TestWSPingFlood: a client that floods pings and reads none of the pongs
// is read no faster than the pongs are written: once the socket buffers
// are full both ways its writes stall, so the gateway holds nothing for it
// beyond them.
func TestWSPingFlood(t *testing.T) {
	b := newWSBackend(t)
	ts := startServer(t, wsConfig(), b)
	rc, _ := wsOpen(t, ts)
	ping := frame(true, 0, ws.OpPing, make([]byte, 125), false)
	var sent atomic.Int64
	go func() {
		for {
			if _, err := rc.nc.Write(ping); err != nil {
				return
			}
			sent.Add(int64(len(ping)))
		}
	}()
	var last int64 = -1
	waitFor(t, "the client's pings to stall", func() bool {
		n := sent.Load()
		stalled := n == last
		last = n
		time.Sleep(100 * time.Millisecond)
		return stalled && sent.Load() == n
	})
	if n := sent.Load(); n > 64<<20 {
		t.Fatalf("%d MiB of pings taken from a client that reads no pong", n>>20)
	}
	// The pongs were all kept for it: it reads them, in order.
	for i := 0; i < 100; i++ {
		if h, p := rc.readFrame(); h.OpCode != ws.OpPong || len(p) != 125 {
			t.Fatalf("frame %d: %v of %d bytes", i, h.OpCode, len(p))
		}
	}
}

// TestWSIdleConnCost: an open, idle WebSocket session (compression agreed,
// after a 200 KB message each way) holds a few KiB of buffers and the
// goroutines that serve it, not the message nor a compressor: the bound
// fails if a session kept its 200 KB buffer or a 600 KiB flate writer.
func TestWSIdleConnCost(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: memory measurement skipped")
	}
	n := idleConnsFor(t, 200)
	b := newWSBackend(t)
	cfg := wsConfig()
	cfg.WSCompression = true
	ts := startServer(t, cfg, b)
	big := bytes.Repeat([]byte("abcdefghij"), 20000)
	open := func() {
		rc, _ := wsOpen(t, ts, "Sec-WebSocket-Extensions: permessage-deflate")
		rc.sendFrames(frame(true, 0, ws.OpBinary, big, false))
		if h, p := rc.readFrame(); !h.Rsv1() || !bytes.Equal(inflateMsg(t, p), big) {
			t.Fatal("no compressed echo")
		}
	}
	settle := func() (runtime.MemStats, int) {
		for range 3 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms, runtime.NumGoroutine()
	}
	open() // the first session's one-off costs (pools) go in the baseline
	ms0, g0 := settle()
	for range n {
		open()
	}
	ms1, g1 := settle()
	used := func(ms *runtime.MemStats) int64 { return int64(ms.HeapInuse + ms.StackInuse) }
	per := (used(&ms1) - used(&ms0)) / int64(n)
	t.Logf("%d idle WebSocket sessions: %d B and %.1f goroutines each (heap %+d B, stacks %+d B)", n, per,
		float64(g1-g0)/float64(n), (int64(ms1.HeapInuse)-int64(ms0.HeapInuse))/int64(n), (int64(ms1.StackInuse)-int64(ms0.StackInuse))/int64(n))
	if !raceEnabled && per > 64<<10 {
		t.Errorf("%d bytes per idle WebSocket session, want under 64 KiB", per)
	}
}

// TestWSMetrics: a session counts in covet_websocket_sessions_open while it
// is open, its messages in covet_websocket_messages_total, and its
// handshake as a 101 of its route.
func TestWSMetrics(t *testing.T) {
	m, reg := newMetrics(t)
	b := newWSBackend(t)
	cfg := wsConfig()
	cfg.Metrics = m
	ts := startServer(t, cfg, b)
	open := map[string]string{"protocol": "http/1.1"}
	rc, _ := wsOpen(t, ts)
	waitFor(t, "the session to count as open", func() bool {
		return metricValue(t, reg, "covet_websocket_sessions_open", open) == 1
	})
	for range 3 {
		rc.sendFrames(frame(true, 0, ws.OpText, []byte("m"), false))
		rc.readFrame()
	}
	rc.sendFrames(frame(true, 0, ws.OpClose, closeBody(1000, ""), false))
	rc.readFrame()
	rc.expectEOF()
	waitFor(t, "the session to count as closed", func() bool {
		return metricValue(t, reg, "covet_websocket_sessions_open", open) == 0 &&
			metricValue(t, reg, "covet_requests_total", map[string]string{"route": "/ws", "status": "101"}) == 1
	})
	for _, dir := range []string{"in", "out"} {
		if v := metricValue(t, reg, "covet_websocket_messages_total", map[string]string{"direction": dir}); v != 3 {
			t.Errorf("messages %s: %v, want 3", dir, v)
		}
	}
}

// TestPutWSHeader: the gateway's frame headers read back, with gobwas/ws's own
// reader, as the frame that was meant, for every length encoding.
func TestPutWSHeader(t *testing.T) {
	for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpClose, ws.OpPing, ws.OpPong} {
		for _, n := range []int{0, 1, 125, 126, 127, 0xffff, 0x10000, 1 << 24} {
			for _, rsv1 := range []bool{false, true} {
				var b [ws.MaxHeaderSize]byte
				k := putWSHeader(&b, op, rsv1, n)
				h, err := ws.ReadHeader(bytes.NewReader(b[:k]))
				if err != nil {
					t.Fatalf("op %v n %d: %v", op, n, err)
				}
				if !h.Fin || h.OpCode != op || h.Length != int64(n) || h.Masked || (h.Rsv == ws.Rsv(true, false, false)) != rsv1 {
					t.Fatalf("op %v n %d rsv1 %t: read back %+v", op, n, rsv1, h)
				}
			}
		}
	}
}
