package server

import (
	"context"
	"errors"
	"net"
	"runtime/debug"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/covetpy/covetpy/workerproto"
)

// The HTTP/1.1 side of the WebSocket front end (RFC 6455 4.2): the
// handshake is checked on the reader goroutine as soon as the head is
// parsed (classify, then wsClassify); a valid upgrade to a KindWebSocket
// route ends the reader's work on the connection: the bytes it holds past
// the head go with the exchange (wsHandOver) and it reads no more, so no
// request pipelined behind an upgrade is ever served. The writer goroutine
// then serves the exchange with Backend.ServeWebSocket (serveWebSocket),
// and once the session is over the connection closes.

// webSocketBackend is the Backend's optional WebSocket side
// (*dispatch.Dispatcher implements it). A KindWebSocket route on a Backend
// without it is answered 501.
type webSocketBackend interface {
	ServeWebSocket(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, peer dispatch.WebSocketPeer) error
}

// wsExchange is what an exchange holds for a WebSocket route.
type wsExchange struct {
	upgrade bool // a valid upgrade: served by serveWebSocket
	// hint426 says which field a 426 answer carries: Upgrade: websocket
	// (no upgrade asked), or Sec-WebSocket-Version: 13 as well (a version
	// the gateway does not speak, RFC 6455 4.2.2).
	hint426 wsHint
	pre     []byte // bytes read past the head: the start of the WebSocket stream
}

type wsHint uint8

const (
	wsHintNone wsHint = iota
	wsHintUpgrade
	wsHintVersion
)

var (
	nameUpgrade   = []byte("Upgrade")
	nameWSVersion = []byte("Sec-WebSocket-Version")
	valWebSocket  = []byte("websocket")
	valWSVersion  = []byte("13")
)

// wsClassify checks the handshake of a request routed to a KindWebSocket
// route (RFC 6455 4.2.1) and decides its answer: a valid upgrade is
// served, one without "Upgrade: websocket" (and "Connection: upgrade") is
// answered 426 with Upgrade, a version other than 13 426 with
// Sec-WebSocket-Version: 13, and a malformed one (HTTP/1.0, a body, a
// Sec-WebSocket-Key that is not 16 base64-encoded bytes) 400. On a route
// that also serves HTTP (Route.AlsoHTTP) a request that asks for no
// WebSocket is served as a plain request instead of the 426, as is a
// request with Upgrade for any other route.
func (c *conn) wsClassify(x *exchange) {
	x.ws = wsExchange{pre: x.ws.pre[:0]}
	if x.answer != 0 || x.route == nil || x.route.Kind != dispatch.KindWebSocket {
		return
	}
	r := &x.req
	upgrade := r.Upgrade && x.method == "GET"
	if upgrade {
		upgrade = false
		for _, f := range r.Headers {
			if fieldIs(f.Name, "upgrade") && hasToken(f.Value, "websocket") {
				upgrade = true
			}
		}
	}
	switch {
	case !upgrade && x.route.AlsoHTTP:
		// A plain GET or HEAD: the route's HTTP side (serveRouted).
	case !upgrade:
		x.answer, x.ws.hint426 = 426, wsHintUpgrade
	case r.Minor == 0 || r.HasBody():
		x.answer = 400
	case string(r.Header("sec-websocket-version")) != "13":
		x.answer, x.ws.hint426 = 426, wsHintVersion
	case !validWSKey(r.Header("sec-websocket-key")):
		x.answer = 400
	default:
		x.ws.upgrade = true
		// A rejection (the worker answers instead of accepting) ends the
		// connection: the client may have sent WebSocket frames already.
		x.closeAfter = true
	}
}

// wsHandOver queues an upgrade exchange with the bytes read past its head,
// and tells the read loop to stop: from here on the connection's bytes are
// the WebSocket session's, read through its own buffer, so the read buffer
// goes back to the pool.
func (c *conn) wsHandOver(x *exchange) parseResult {
	x.ws.pre = append(x.ws.pre[:0], c.buf[c.r:c.w]...)
	c.releaseBuf()
	c.enqueue(item{x: x})
	return parseStop
}

// appendWSHint adds the fields a 426 for a WebSocket route carries.
func appendWSHint(hs []http1.Header, x *exchange) []http1.Header {
	if x.ws.hint426 == wsHintNone || x.answer != 426 {
		return hs
	}
	hs = append(hs, http1.Header{Name: nameUpgrade, Value: valWebSocket})
	if x.ws.hint426 == wsHintVersion {
		hs = append(hs, http1.Header{Name: nameWSVersion, Value: valWSVersion})
	}
	return hs
}

// serveWebSocket serves an upgrade exchange on the writer goroutine: the
// backend either accepts it (101, then the session runs until it ends and
// the connection closes) or answers it as an HTTP response, after which
// the connection closes too.
func (c *conn) serveWebSocket(x *exchange) ending {
	wb, ok := c.srv.Backend.(webSocketBackend)
	if !ok {
		return c.answer(x, 501, "", 0)
	}
	d := &c.dreq
	c.fillRequest(d, x)
	w := &c.rw
	w.reset(x)
	p := &wsPeer{c: c, x: x}
	err := c.callServeWS(wb, x, d, p)
	d.Body = nil
	if p.sess != nil {
		// The session ran: whatever the backend did, it is over now.
		p.sess.Close(wsCloseInternal, "")
		if err != nil && !errors.Is(err, dispatch.ErrCanceled) {
			var ce *dispatch.CloseError
			if !errors.As(err, &ce) {
				c.srv.log.Warn("websocket session failed", "remote", c.remote, "request_id", x.rid, "err", err)
			}
		}
		c.wbuf = c.wbuf[:0]
		return closeHard
	}
	switch {
	case err == nil && w.started:
		return w.end()
	case errors.Is(err, dispatch.ErrCanceled) || c.ctx.Err() != nil:
		return closeHard
	case w.started || c.sent:
		c.wbuf = c.wbuf[:0]
		return closeHard
	}
	c.wbuf = c.wbuf[:0]
	if se := statusError(err); se != nil {
		return c.answer(x, se.Status, "", se.RetryAfter)
	}
	if err == nil {
		err = errors.New("server: websocket backend neither accepted nor answered")
	}
	c.srv.log.Warn("websocket backend error", "remote", c.remote, "request_id", x.rid, "err", err)
	return c.answer(x, 502, "", 0)
}

func (c *conn) callServeWS(wb webSocketBackend, x *exchange, d *dispatch.Request, p *wsPeer) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.srv.log.Error("backend panic", "panic", r, "stack", string(debug.Stack()))
			err = errBackendPanic
		}
	}()
	return wb.ServeWebSocket(c.ctx, x.route, d, p)
}

// wsPeer is the dispatch.WebSocketPeer of an HTTP/1.1 upgrade: the
// connection's response writer until Accept, the session after.
type wsPeer struct {
	c    *conn
	x    *exchange
	sess *wsSession // set by Accept
}

var _ dispatch.WebSocketPeer = (*wsPeer)(nil)

// MaxMessage is the largest client message the session will accept
// (Config.WSMaxMessageBytes); valid before Accept.
func (p *wsPeer) MaxMessage() int { return int(p.c.srv.cfg.WSMaxMessageBytes) }

func (p *wsPeer) WriteHead(status int, headers []workerproto.Header, bodyLen int64) error {
	if p.sess != nil {
		return errWSAccepted
	}
	return p.c.rw.WriteHead(status, headers, bodyLen)
}

func (p *wsPeer) WriteBody(b []byte) error {
	if p.sess != nil {
		return errWSAccepted
	}
	return p.c.rw.WriteBody(b)
}

func (p *wsPeer) WriteBodyv(bs [][]byte) error {
	if p.sess != nil {
		return errWSAccepted
	}
	return p.c.rw.WriteBodyv(bs)
}

// Accept writes the 101 response: Upgrade, Connection,
// Sec-WebSocket-Accept, the subprotocol and permessage-deflate when agreed,
// then the worker's fields (less those the handshake owns).
func (p *wsPeer) Accept(subprotocol string, headers []workerproto.Header) error {
	c, x := p.c, p.x
	if p.sess != nil || c.rw.started {
		return errWSAccepted
	}
	if subprotocol != "" && !offersSubprotocol(h1Values(x.req.Headers, "sec-websocket-protocol"), subprotocol) {
		return errWSSubprotocol
	}
	var dfl wsDeflate
	if c.srv.cfg.WSCompression {
		dfl = negotiateDeflate(h1Values(x.req.Headers, "sec-websocket-extensions"))
	}
	hs := c.rhdrs[:0]
	hs = append(hs,
		http1.Header{Name: nameUpgrade, Value: valWebSocket},
		http1.Header{Name: []byte("Connection"), Value: []byte("Upgrade")},
		http1.Header{Name: []byte("Sec-WebSocket-Accept"), Value: []byte(wsAcceptKey(x.req.Header("sec-websocket-key")))},
	)
	if subprotocol != "" {
		hs = append(hs, http1.Header{Name: []byte("Sec-WebSocket-Protocol"), Value: []byte(subprotocol)})
	}
	if dfl.on {
		hs = append(hs, http1.Header{Name: []byte("Sec-WebSocket-Extensions"), Value: dfl.response})
	}
	haveServer := false
	for i := range headers {
		f := &headers[i]
		if wsOwnedField(f.Name) {
			continue
		}
		if fieldIs(f.Name, "server") {
			haveServer = true
		}
		hs = append(hs, http1.Header{Name: f.Name, Value: f.Value})
	}
	if !haveServer {
		hs = append(hs, http1.Header{Name: nameServer, Value: valServer})
	}
	hs = append(hs, http1.Header{Name: nameRequestID, Value: stringBytes(x.rid)})
	rh := http1.ResponseHead{Status: 101, Header: hs, Date: c.srv.date.Value(time.Now())}
	b, _, err := rh.Append(c.wbuf, &x.req)
	c.rhdrs = hs[:0]
	if err != nil {
		return err
	}
	c.wbuf = b
	if err := c.flush(); err != nil {
		return err
	}
	c.status = 101
	p.sess = newWSSession(c.srv, wsConnTransport{c}, x.ws.pre, dfl, wsProtoHTTP1)
	return nil
}

// wsOwnedField reports whether a worker's field for the 101 response is one
// the handshake or the framing owns (dropped).
func wsOwnedField(name []byte) bool {
	for _, n := range [...]string{"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
		"sec-websocket-accept", "sec-websocket-extensions", "sec-websocket-protocol", "sec-websocket-version"} {
		if fieldIs(name, n) {
			return true
		}
	}
	return false
}

// h1Values collects the values of every field named name (lower case).
func h1Values(hs []http1.Header, name string) [][]byte {
	var vs [][]byte
	for _, f := range hs {
		if fieldIs(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

func (p *wsPeer) ReadMessage() (bool, []byte, error) {
	if p.sess == nil {
		return false, nil, errWSNotOpen
	}
	return p.sess.ReadMessage()
}

func (p *wsPeer) WriteMessage(text bool, b []byte) error {
	if p.sess == nil {
		return errWSNotOpen
	}
	return p.sess.WriteMessage(text, b)
}

// Close ends the session (see wsSession.Close); before Accept it does
// nothing: serveWebSocket answers the request if nothing was.
func (p *wsPeer) Close(code int, reason string) error {
	if p.sess == nil {
		return nil
	}
	return p.sess.Close(code, reason)
}

// errWSNotOpen: ReadMessage or WriteMessage before Accept.
var errWSNotOpen = errors.New("server: websocket session not accepted yet")

// wsConnTransport runs a session on an upgraded HTTP/1.1 connection.
type wsConnTransport struct{ c *conn }

func (t wsConnTransport) Read(p []byte) (int, error) {
	n, err := t.c.nc.Read(p)
	if n > 0 {
		t.c.srv.metrics.BytesIn(n)
	}
	return n, err
}

func (t wsConnTransport) WriteBuffers(bufs *net.Buffers) error {
	_, err := t.c.nc.WriteBuffers(bufs)
	return err
}

func (t wsConnTransport) SetReadDeadline(d time.Time) error  { return t.c.nc.SetReadDeadline(d) }
func (t wsConnTransport) SetWriteDeadline(d time.Time) error { return t.c.nc.SetWriteDeadline(d) }
func (t wsConnTransport) CloseWrite() error                  { return t.c.nc.CloseWrite() }
func (t wsConnTransport) Close() error                       { return t.c.nc.Close() }

// wsProtoHTTP1 and wsProtoH2 label sessions in the metrics.
const (
	wsProtoHTTP1 = metrics.ProtoHTTP1
	wsProtoH2    = metrics.ProtoH2
)
