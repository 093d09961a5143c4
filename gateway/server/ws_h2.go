package server

import (
	"errors"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/workerproto"
)

// WebSocket over HTTP/2 (RFC 8441): a CONNECT request with :protocol
// websocket opens a session on its stream; the 200 response is the accept,
// then the stream's DATA frames carry the WebSocket frames both ways.
//
// Go's HTTP/2 server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL, and
// passes :protocol on, only when the process started with
// GODEBUG=http2xconnect=1 in its environment (net/http reads it once, at
// start-up; a //go:debug line cannot set it: the setting is not in the
// runtime's table). covet-gateway re-executes itself with it
// (gateway/cmd/covet-gateway/xconnect.go). Without it a client's extended
// CONNECT is refused by net/http itself and clients fall back to HTTP/1.1.

// serveExtendedConnect serves an extended CONNECT (r.Header[":protocol"]
// set): a WebSocket session when it is a valid one to a KindWebSocket
// route, else the gateway's answer (501 for another protocol, 404/405 as
// routed, 400 for a route that is not a WebSocket one, 426 with
// Sec-WebSocket-Version for a version other than 13).
func (h *handler) serveExtendedConnect(rw http.ResponseWriter, r *http.Request) {
	s := h.s
	x := hxs.Get().(*hx)
	defer func() {
		x.params.Reset()
		x.wparams, x.hdrs = x.wparams[:0], x.hdrs[:0]
		x.dreq = dispatch.Request{Head: workerproto.RequestHead{Headers: x.dreq.Head.Headers[:0]}}
		x.w = hWriter{}
		hxs.Put(x)
	}()
	rid := r.Header.Get("X-Request-Id")
	if !saneRequestID(stringBytes(rid)) {
		rid = strings.Clone(requestID(&x.ridBuf, h.seed, h.n.Add(1)))
	}
	w := &x.w
	*w = hWriter{rw: rw, s: s, rid: rid}
	w.flusher, _ = rw.(http.Flusher)
	path, query, _ := strings.Cut(r.RequestURI, "?")
	start := time.Now()
	var rt *dispatch.Route
	defer func() {
		if s.timed {
			s.observeStream(h.proto, "GET", path, rid, r.RemoteAddr, rt, w.status, w.written, time.Since(start))
		}
	}()
	if r.Header.Get(":protocol") != "websocket" {
		w.answer(501, "", 0)
		return
	}
	answer, allow, rt, pattern := s.routeRequest("GET", path, &x.params, &x.pathBuf, &x.wparams)
	switch {
	case answer != 0:
		w.answer(answer, allow, 0)
		return
	case rt.Kind != dispatch.KindWebSocket:
		w.answer(400, "", 0)
		return
	case r.Header.Get("Sec-Websocket-Version") != "13":
		rw.Header()["Sec-WebSocket-Version"] = []string{"13"}
		w.answer(426, "", 0)
		return
	}
	wb, ok := s.Backend.(webSocketBackend)
	if !ok {
		w.answer(501, "", 0)
		return
	}
	hs := x.dreq.Head.Headers[:0]
	hs = append(hs, workerproto.Header{Name: nameHost, Value: stringBytes(r.Host)})
	for _, name := range slices.Sorted(maps.Keys(r.Header)) {
		if strings.HasPrefix(name, ":") {
			continue
		}
		for _, v := range r.Header[name] {
			hs = append(hs, workerproto.Header{Name: stringBytes(strings.ToLower(name)), Value: stringBytes(v)})
		}
	}
	d := &x.dreq
	// The worker sees the upgrade as HTTP/1.1's GET, told "2": a WebSocket
	// route's method is GET whatever the transport.
	d.Head = workerproto.RequestHead{
		Method:      "GET",
		Path:        path,
		Query:       query,
		Headers:     hs,
		Route:       pattern,
		Params:      x.wparams,
		HTTPVersion: h.proto,
		Scheme:      "https",
		Client:      r.RemoteAddr,
		RequestID:   rid,
		TimeoutMS:   rt.Timeout.Milliseconds(),
	}
	if r.TLS == nil {
		d.Head.Scheme = "http"
	} else {
		d.Head.ClientCert = clientCert(r.TLS)
	}
	p := &wsH2Peer{h: h, w: w, r: r, rc: http.NewResponseController(rw)}
	err := h.callServeWS(wb, r, rt, d, p)
	if p.sess != nil {
		p.sess.Close(wsCloseInternal, "")
		return
	}
	switch {
	case err == nil && w.started:
	case r.Context().Err() != nil || w.started:
		panic(http.ErrAbortHandler)
	default:
		if se := statusError(err); se != nil {
			w.answer(se.Status, "", se.RetryAfter)
			return
		}
		s.log.Warn("websocket backend error", "remote", r.RemoteAddr, "request_id", rid, "err", err)
		w.answer(502, "", 0)
	}
}

func (h *handler) callServeWS(wb webSocketBackend, r *http.Request, rt *dispatch.Route, d *dispatch.Request, p *wsH2Peer) (err error) {
	defer func() {
		if v := recover(); v != nil {
			h.s.log.Error("backend panic", "panic", v)
			err = errBackendPanic
		}
	}()
	return wb.ServeWebSocket(r.Context(), rt, d, p)
}

// wsH2Peer is the dispatch.WebSocketPeer of an RFC 8441 stream.
type wsH2Peer struct {
	h    *handler
	w    *hWriter
	r    *http.Request
	rc   *http.ResponseController
	sess *wsSession
}

var _ dispatch.WebSocketPeer = (*wsH2Peer)(nil)

// MaxMessage: see wsPeer.MaxMessage.
func (p *wsH2Peer) MaxMessage() int { return int(p.h.s.cfg.WSMaxMessageBytes) }

func (p *wsH2Peer) WriteHead(status int, headers []workerproto.Header, bodyLen int64) error {
	if p.sess != nil {
		return errWSAccepted
	}
	return p.w.WriteHead(status, headers, bodyLen)
}

func (p *wsH2Peer) WriteBody(b []byte) error {
	if p.sess != nil {
		return errWSAccepted
	}
	return p.w.WriteBody(b)
}

func (p *wsH2Peer) WriteBodyv(bs [][]byte) error {
	if p.sess != nil {
		return errWSAccepted
	}
	return p.w.WriteBodyv(bs)
}

// Accept answers 200 with the subprotocol, permessage-deflate when agreed
// and the worker's fields, and flushes it: the session starts.
func (p *wsH2Peer) Accept(subprotocol string, headers []workerproto.Header) error {
	if p.sess != nil || p.w.started {
		return errWSAccepted
	}
	r := p.r
	if subprotocol != "" && !offersSubprotocol(stringsBytes(r.Header.Values("Sec-Websocket-Protocol")), subprotocol) {
		return errWSSubprotocol
	}
	var dfl wsDeflate
	if p.h.s.cfg.WSCompression {
		dfl = negotiateDeflate(stringsBytes(r.Header.Values("Sec-Websocket-Extensions")))
	}
	hdr := p.w.rw.Header()
	for i := range headers {
		f := &headers[i]
		if wsOwnedField(f.Name) || connectionField(f.Name) {
			continue
		}
		hdr.Add(string(f.Name), string(f.Value))
	}
	if subprotocol != "" {
		hdr["Sec-Websocket-Protocol"] = []string{subprotocol}
	}
	if dfl.on {
		hdr["Sec-Websocket-Extensions"] = []string{string(dfl.response)}
	}
	p.w.fill(hdr)
	p.w.started, p.w.status = true, 200
	p.w.rw.WriteHeader(200)
	if err := p.rc.Flush(); err != nil {
		return err
	}
	p.sess = newWSSession(p.h.s, wsStreamTransport{p}, nil, dfl, wsProtoH2)
	return nil
}

func stringsBytes(vs []string) [][]byte {
	bs := make([][]byte, len(vs))
	for i, v := range vs {
		bs[i] = []byte(v)
	}
	return bs
}

func (p *wsH2Peer) ReadMessage() (bool, []byte, error) {
	if p.sess == nil {
		return false, nil, errWSNotOpen
	}
	return p.sess.ReadMessage()
}

func (p *wsH2Peer) WriteMessage(text bool, b []byte) error {
	if p.sess == nil {
		return errWSNotOpen
	}
	return p.sess.WriteMessage(text, b)
}

func (p *wsH2Peer) Close(code int, reason string) error {
	if p.sess == nil {
		return nil
	}
	return p.sess.Close(code, reason)
}

// errWSNoHalfClose: the transport cannot end its sending side alone.
var errWSNoHalfClose = errors.New("server: no half close on an HTTP/2 stream")

// wsStreamTransport runs a session on an HTTP/2 stream: the request body
// in, the response body out, each write flushed.
type wsStreamTransport struct{ p *wsH2Peer }

func (t wsStreamTransport) Read(b []byte) (int, error) {
	n, err := t.p.r.Body.Read(b)
	if n > 0 {
		t.p.h.s.metrics.BytesIn(n)
	}
	return n, err
}

func (t wsStreamTransport) WriteBuffers(bufs *net.Buffers) error {
	for _, b := range *bufs {
		if _, err := t.p.w.rw.Write(b); err != nil {
			return err
		}
		t.p.w.written += int64(len(b))
	}
	*bufs = nil
	return t.p.rc.Flush()
}

func (t wsStreamTransport) SetReadDeadline(d time.Time) error  { return t.p.rc.SetReadDeadline(d) }
func (t wsStreamTransport) SetWriteDeadline(d time.Time) error { return t.p.rc.SetWriteDeadline(d) }

// CloseWrite: an HTTP/2 stream's sending side ends only when the handler
// returns.
func (t wsStreamTransport) CloseWrite() error { return errWSNoHalfClose }

// Close ends the reading side; the stream ends when the handler returns.
func (t wsStreamTransport) Close() error { return t.p.r.Body.Close() }
