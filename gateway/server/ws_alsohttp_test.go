//lint:file-ignore SA1019 x/net/http2's Transport is deprecated, but net/http's client refuses the ":protocol" field extended CONNECT needs

package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// alsoHTTPBackend is newWSBackend with one more route: /live, a WebSocket
// route that also serves HTTP (dispatch.Route.AlsoHTTP). Its HTTP side
// answers "live over HTTP/<version>" and records the head it got.
func alsoHTTPBackend(t testing.TB) (*wsBackend, chan workerproto.RequestHead) {
	b := newWSBackend(t)
	rt := &dispatch.Route{App: "live", Pattern: "/live", Kind: dispatch.KindWebSocket, AlsoHTTP: true}
	if err := b.r.Add(router.Route[*dispatch.Route]{Method: "GET", Pattern: "/live", Value: rt}); err != nil {
		t.Fatal(err)
	}
	heads := make(chan workerproto.RequestHead, 16)
	b.handlers["live"] = func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		heads <- workerproto.RequestHead{Method: strings.Clone(req.Head.Method), Route: strings.Clone(req.Head.Route)}
		return respond(w, 200, "live over HTTP/"+req.Head.HTTPVersion)
	}
	return b, heads
}

// TestWSAlsoHTTPPlainRequests: over HTTP/1.1, HTTP/2 and HTTP/3, a plain GET
// or HEAD for a WebSocket route with AlsoHTTP reaches the backend's Serve as
// an HTTP request on the route's pattern; one for a WebSocket route without
// it is answered 426 by the gateway; other methods are the router's (405).
func TestWSAlsoHTTPPlainRequests(t *testing.T) {
	b, heads := alsoHTTPBackend(t)
	ts, tc, addr := startH3Server(t, wsConfig(), b)
	clients := map[string]*http.Client{"1.1": client(t, tc, "1.1"), "2": client(t, tc, "2"), "3": h3Client(t, tc)}
	for _, proto := range []string{"1.1", "2", "3"} {
		c := clients[proto]
		host := ts.addr
		if proto == "3" {
			host = addr
		}
		for _, tc := range []struct {
			method, path string
			status       int
			body, allow  string
			served       bool // by the backend's Serve
		}{
			{"GET", "/live", 200, "live over HTTP/" + proto, "", true},
			{"HEAD", "/live", 200, "", "", true},
			{"GET", "/ws", 426, "Upgrade Required\n", "", false},
			{"HEAD", "/ws", 426, "", "", false},
			{"POST", "/live", 405, "Method Not Allowed\n", "GET, HEAD, OPTIONS", false},
		} {
			req, _ := http.NewRequest(tc.method, "https://"+host+tc.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("HTTP/%s %s %s: %v", proto, tc.method, tc.path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != int(proto[0]-'0') || resp.StatusCode != tc.status || string(body) != tc.body ||
				resp.Header.Get("Allow") != tc.allow {
				t.Errorf("HTTP/%s %s %s: %s %d %q Allow %q, want %d %q Allow %q", proto, tc.method, tc.path,
					resp.Proto, resp.StatusCode, body, resp.Header.Get("Allow"), tc.status, tc.body, tc.allow)
			}
			if tc.status == 426 && proto == "1.1" && resp.Header.Get("Upgrade") != "websocket" {
				t.Errorf("HTTP/1.1 %s %s: 426 without Upgrade: websocket: %v", tc.method, tc.path, resp.Header)
			}
			if tc.served {
				select {
				case h := <-heads:
					if h.Method != tc.method || h.Route != "/live" {
						t.Errorf("HTTP/%s %s %s: the backend saw %s on route %q", proto, tc.method, tc.path, h.Method, h.Route)
					}
				default:
					t.Errorf("HTTP/%s %s %s: answered without the backend", proto, tc.method, tc.path)
				}
			}
		}
	}
	select {
	case h := <-b.heads:
		t.Errorf("a plain request reached ServeWebSocket: %+v", h)
	default:
	}
}

// TestWSAlsoHTTPUpgrade: over HTTP/1.1 an upgrade to a route that also
// serves HTTP is a WebSocket session as on any WebSocket route, and an
// upgrade the gateway cannot take is answered as the handshake's failures
// are, not served as HTTP; a plain GET on the same connection before it is
// served as HTTP and keeps the connection.
func TestWSAlsoHTTPUpgrade(t *testing.T) {
	b, heads := alsoHTTPBackend(t)
	ts := startServer(t, wsConfig(), b)
	upgrade := strings.Replace(wsUpgrade(ts.addr), "GET /ws ", "GET /live ", 1)

	rc := ts.dial(t)
	rc.send("GET /live HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "live over HTTP/1.1" || resp.Close {
		t.Fatalf("plain GET: %d %q close %v", resp.StatusCode, body, resp.Close)
	}
	<-heads
	rc.send(upgrade)
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade after a plain GET: %v %v", resp, err)
	}
	if h := <-b.heads; h.Route != "/live" || h.Method != "GET" {
		t.Errorf("ServeWebSocket saw %+v", h)
	}
	rc.sendFrames(frame(true, 0, ws.OpText, []byte("both"), false))
	if h, p := rc.readFrame(); h.OpCode != ws.OpText || string(p) != "both" {
		t.Fatalf("echo %v %q", h.OpCode, p)
	}
	rc.sendFrames(frame(true, 0, ws.OpClose, closeBody(1000, ""), false))
	rc.expectClose(1000)
	if ce := b.closed(t); ce.Code != 1000 {
		t.Errorf("backend saw %d", ce.Code)
	}

	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"version 8", strings.Replace(upgrade, "Version: 13", "Version: 8", 1), 426},
		{"bad key", strings.Replace(upgrade, wsKey, "c2hvcnQ=", 1), 400},
		{"HTTP/1.0", strings.Replace(upgrade, "HTTP/1.1", "HTTP/1.0", 1), 400},
	} {
		rc := ts.dial(t)
		rc.send(tc.req)
		if resp, _ := rc.read("GET"); resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	select {
	case h := <-heads:
		t.Errorf("a WebSocket upgrade reached Serve: %+v", h)
	default:
	}
}

// TestWSAlsoHTTPH2Connect: over HTTP/2 an extended CONNECT to a route that
// also serves HTTP opens a session, and a plain GET beside it on the same
// connection is served as HTTP.
func TestWSAlsoHTTPH2Connect(t *testing.T) {
	if !xconnectOn(t) {
		return
	}
	b, heads := alsoHTTPBackend(t)
	cfg := wsConfig()
	cfg.H2C = true
	ts := startServer(t, cfg, b)
	c := h2cClient(t)

	pr, pw := io.Pipe()
	defer pw.Close()
	resp := wsConnectH2(t, c, "http://"+ts.addr+"/live", pr, "13", "")
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("extended CONNECT: %d", resp.StatusCode)
	}
	if h := <-b.heads; h.Route != "/live" {
		t.Errorf("ServeWebSocket saw %+v", h)
	}
	// A plain GET on the same connection, while the session is open.
	plain, err := c.Get("http://" + ts.addr + "/live")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(plain.Body)
	plain.Body.Close()
	if plain.StatusCode != 200 || string(body) != "live over HTTP/2" {
		t.Errorf("plain GET beside the session: %d %q", plain.StatusCode, body)
	}
	if h := <-heads; h.Route != "/live" || h.Method != "GET" {
		t.Errorf("Serve saw %+v", h)
	}
	echoOverH2(t, pw, resp.Body, "over h2")
	go pw.Write(frame(true, 0, ws.OpClose, closeBody(1000, ""), false))
	if ce := b.closed(t); ce.Code != 1000 {
		t.Errorf("backend saw %d", ce.Code)
	}
}
