// Package server is CovetPy's HTTP front end: on a socket engine
// (gateway/engine: io_uring or Go's netpoll, Config.Engine) it accepts
// connections, parses requests with the sans-IO gateway/http1 codec,
// routes them through a Backend (the dispatcher, which hands them to Python
// workers) and writes the answers back.
//
// With Server.TLS set every connection is TLS, handshaken on its own
// goroutine (tls.go); the client's ALPN choice sends it to HTTP/2 (h2) or
// to the HTTP/1.1 front end described below, over a tlsConn. HTTP/2, over
// TLS or as h2c with prior knowledge (Config.H2C), is Go's net/http server
// fed those connections through a listener of its own (h2.go); its handler
// (Server.Handler, also what HTTP/3 serves) routes with the same
// routeRequest, answers the same gateway statuses and calls the same
// Backend.Serve, one goroutine per stream. HTTP/3 (Server.ServeHTTP3, on
// a UDP socket) is quic-go's http3 server with that handler, told "3"
// (h3.go); its QUIC connections count with the others for MaxConnections,
// Shutdown (GOAWAY, then the streams in flight finish) and the connection
// metrics. With Config.AltSvc set, HTTP/1.1 and HTTP/2 responses advertise
// it in Alt-Svc.
//
// # Before the first HTTP byte
//
// With Config.ProxyProtocol every accepted connection first has its PROXY
// protocol header read (accept.go, parsed by gateway/proxyproto) on its own
// goroutine, within ReadHeaderTimeout, before TLS or h2c look at it; bytes
// read past the header are kept and served first. The header's source
// becomes the connection's remote address: conn.remote for HTTP/1.1, and
// RemoteAddr of the proxiedConn that TLS and HTTP/2 run over. A connection
// without a valid header is closed unanswered. Config.MaxConnsPerIP then
// counts the connection against its IP (the header's source, else the
// socket's peer; before MaxConnections, so that a refused one sheds no
// idle connection): one over the limit is closed at once; the count is
// released when the conn's reader finishes (HTTP/1.1 on a plain socket) or
// when its proxiedConn is closed (TLS, HTTP/2, h2c). HTTP/3 is not counted.
//
// # Connection model
//
// Each connection has a reader goroutine and, while it has work, a writer
// goroutine. The reader owns the socket's read side, the read buffer and
// the http1.Parser: it reads, parses, looks each request head up in the
// route table at once, buffers a body of at most 64 KiB (streamMin) and
// queues the complete request. A larger body, or a chunked one, is not
// buffered: the request is queued as soon as its head is parsed, and the
// reader feeds the body through a bounded pipe (pipe.go, 256 KiB) that the
// backend drains as the worker takes the body (PROTOCOL.md 2.8); while the
// pipe is full the reader reads nothing more, so TCP's window slows the
// client, and the time it waits does not count against the body's
// minimum-rate deadline. The next request is parsed only once that body has
// ended. A body that breaks off (over Limits.MaxBodyBytes, bad chunked
// framing, too slow) fails the backend's read; the writer answers 413, 400
// or 408 and closes if the response has not begun, else closes. A backend
// that answers before it read the whole body gets its answer out at once;
// the reader then drops the rest (at most Limits.MaxBodyBytes) and the
// connection goes on. The writer takes the queue in order and
// answers one request at a time: it calls Backend.Serve, which streams the
// worker's answer into the connection's ResponseWriter. Pipelined requests
// are therefore parsed ahead (up to Config.MaxPipelined; then the reader
// stops reading) and answered strictly in request order. The reader starts
// the writer, with a new queue, when it queues a request on a connection
// that has none; a writer with nothing left to answer waits one second for
// the next request (so a busy keep-alive connection keeps its writer, whose
// stack has grown to what serving takes), then the reader stops it and
// drops its queue and write buffer, and moves on to a new goroutine: a
// fresh stack is 2 KiB, where the reader's has grown with parsing and
// routing, and the runtime would shrink it, parked, only to 4 KiB.
//
// An idle keep-alive connection (answered, waiting for its next request)
// therefore holds one goroutine, the reader, parked in the engine's wait
// for readability, and its conn and socket state: no writer, no answer
// queue, no exchange (request storage comes from a pool, taken when a
// request's first bytes arrive and given back once it is answered) and no
// write buffer. When the engine's Conn has ReadIdle (both engines' do), it
// holds no read buffer either: ReadIdle takes one from a pool only once
// bytes are in (netpoll: inside the readiness callback, giving it back
// before it waits). BenchmarkIdleConns measures the cost per idle
// connection: on netpoll about 3.7 KiB of heap and a 2 KiB stack; on uring
// 4.3 KiB of heap and a 4 KiB stack, as its wait grows the new stack, and
// the runtime's stack spans then hold about 8 KiB, the writers' freed
// stacks being gaps among the readers'.
//
// The reader keeps reading while a request is served, so it notices a
// client that goes away: on EOF or a socket error it cancels the
// connection's context, which is the context every request on it is served
// with; the dispatcher then sends CANCEL to the worker. Requests parsed
// ahead behind it are dropped. (A client that half-closes its side after
// sending a request is treated as gone, as net/http does.)
//
// The read buffer is 8 KiB and grows, only for a head that needs it, to
// MaxRequestLine+MaxHeaderBytes+2, the most a head can occupy; a grown one
// is dropped when the connection goes idle (with ReadIdle, below). When
// it runs dry inside a Content-Length body with 4 KiB or more still to
// come, the reader reads straight into the body buffer, never past the
// body's end, so a large body is neither copied out of the read buffer nor
// read 8 KiB at a time.
//
// The socket itself is the engine's engine.Conn: reads, writev, deadlines,
// the half close. The server does not know which engine runs; the engine
// package says how each moves the bytes. A Server opens the engine named by
// Config.Engine at its first Serve (or Prepare) and closes it when shut
// down, unless it was given one (Server.Engine).
//
// Request objects, parameter arrays, body buffers and worker head storage
// are reused from request to request, so a keep-alive request costs no
// allocation in steady state beyond what the backend does. The strings in
// the dispatch.Request (path, query, request id, parameters without
// escapes) alias that reused storage; they are valid until Serve returns,
// which is what the dispatch contract allows.
//
// # Timeouts
//
// Deadlines are read deadlines on the socket, chosen from the parser's
// state before each read: IdleTimeout once every response has been
// written and no byte of a next request has arrived, counted from the last
// response or the last bytes read (the connection is closed silently);
// ReadHeaderTimeout from the first byte of a head (408,
// close); for a body, BodyReadTimeout of grace plus one second per
// MinBodyRate bytes received (408, close), counted from the end of the head
// or, for a request that asked for 100 Continue, from when that was sent
// (with no deadline before). While a request is being served
// and nothing else has arrived, no read deadline applies: a slow handler is
// bounded by the dispatcher's deadline, not by the idle timer. Each write
// to the client is bounded by WriteTimeout, and a whole response by
// MinWriteRate: the time spent waiting on the client to take it may exceed
// WriteTimeout only by one second per MinWriteRate bytes taken, so a client
// that keeps each write creeping forward is cut too (time the backend takes
// to produce a stream does not count).
//
// Every deadline is anchored to a past event (a read, a response, the
// start of a write), and the socket's deadline is changed only when it
// must move earlier. An earlier one, left from a previous request, stays
// armed; when it passes, the reader or writer works out the deadline that
// really applies and, if that has not passed, arms it and goes on. So a
// keep-alive request normally costs no timer operation, where setting and
// clearing deadlines per request cost about 8% of the gateway's CPU. The
// one deadline that is not a timeout is the idle writer's: the read
// deadline is armed no later than a second after the last answer, for the
// reader to stop the writer then (on a busy connection it passes about once
// a second and is re-armed).
//
// A connection that must close after a response half-closes (FIN), then
// reads and discards input for up to half a second before closing, so that
// bytes the client already sent do not turn the close into a reset that
// could destroy the response.
//
// # Responses
//
// Backend answers go through http1.ResponseHead: Content-Length when the
// worker gives the length, else chunked (HTTP/1.1) or close-delimited
// (HTTP/1.0); Date, "Server: covetpy" and X-Request-ID are added when the
// worker did not set them; the worker's Content-Length, Transfer-Encoding,
// Connection and Keep-Alive fields are dropped, since framing is the
// gateway's. A head with a body of known length goes out with the body's
// first bytes: a body of up to 4 KiB is copied behind the head and written
// in one call, a larger one that arrives whole goes from the worker's chunks
// in the head's writev, and one that arrives in pieces is buffered up to
// 32 KiB between writes; a streamed body
// is written as each piece arrives. A HEAD response carries
// no body bytes even if the worker sends some, but keeps the Content-Length
// the worker declared (its header, or the length of the body it sent).
//
// The worker gets the request's header fields as received, hop-by-hop
// ones included; a chunked body arrives decoded and whole, Head.Body
// giving its length. Each request carries a request id: the client's X-Request-ID when it is
// 1 to 128 visible ASCII characters, otherwise a generated 16-hex-digit id.
// It goes to the worker in the request head and back in the response.
//
// When Serve fails before any byte of the response was written, the
// gateway answers: a *dispatch.StatusError with its status (502, 503 with
// Retry-After, 504) and a one-line text body; any other error 502 (a panic
// in the backend is recovered, logged and answered 502 with Connection:
// close). When the response broke off after its head (dispatch.ErrAborted,
// a short body, a write error) the connection is closed without completing
// the response — for chunked, without the last chunk — so the client sees
// it incomplete.
// dispatch.ErrCanceled (the client is gone) just closes.
//
// # Answered by the gateway
//
//	400  a malformed request (see the http1 rule table; close), a path
//	     not starting with '/' or holding a dot segment ("." or "..",
//	     also as %2e: the router matches raw paths and never resolves
//	     them, and a worker must never see a path whose meaning depends on
//	     who normalises it), a path parameter with a bad %-escape or not
//	     UTF-8 once decoded, a missing or invalid Host
//	404  no route for the path (text body)
//	405  a route for the path, not for the method; Allow lists the methods
//	     (404 and 405: while no app has registered, or one has no live
//	     worker, the table may lack routes, and the dispatcher's Lookup
//	     turns such a miss into a route that Serve answers 503)
//	204  OPTIONS for a routed path with no OPTIONS route; Allow as above.
//	     OPTIONS * gets 204 without Allow
//	408  head or body too slow (close)
//	413  body over Limits.MaxBodyBytes (close)
//	414  request line too long (close)
//	417  an Expect other than 100-continue
//	431  header or trailer section too large (close)
//	501  CONNECT (this is not a proxy), or a transfer coding other than
//	     chunked (close)
//	505  HTTP major version other than 1 (close)
//	502, 503, 504  dispatcher failures, as above
//	503  the response bytes held stayed over MaxBufferedResponseBytes for
//	     ResponseBudgetWait (Retry-After: 1)
//
// Expect: 100-continue (HTTP/1.1) is answered with 100 Continue, in
// response order, before the body is read — unless the request is
// rejected from its head (404, 405, 413...), in which case the final
// answer is sent, the body is never read and the connection closes. A
// rejected request whose body is on its way is read to its end and
// dropped, keeping the connection.
//
// A worker's 103 Early Hints (PROTOCOL.md 3.5) reach the response writer
// through dispatch.InterimWriter and are written at once, each as
// "HTTP/1.1 103 Early Hints" with the worker's fields (less Content-Length,
// Transfer-Encoding, Connection and Keep-Alive), ahead of the final head; an
// HTTP/1.0 client gets none (RFC 9110 15.2). They are not responses for the
// access log or the metrics. One the writer refuses (a field that could split
// the response) leaves nothing on the wire and the request is answered 502.
//
// # Static files
//
// A request under one of Config.Static's mounts (matched before any route)
// or routed to a route of kind static is answered from disk by the front end
// itself, and a worker's RESP_FILE through dispatch.FileWriter the same way
// (static.go; gateway/static opens the file, confined to the directory, and
// decides 200, 206, 304, 412 or 416). On HTTP/1.1 over a plain socket the
// head goes with MSG_MORE and the body with sendfile(2) (engine.FileSender),
// under the same write deadlines as any response; over TLS, HTTP/2 and
// HTTP/3 the bytes are copied. docs/operations.md ("Static files") has the
// rules.
//
// # Bounds on all clients together
//
// MaxConnections bounds the connections open at once (by default 7/8 of the
// open-file limit, so accepting never fails for want of descriptors): a
// connection accepted at the limit closes the longest-idle keep-alive
// connection in its place, or is closed at once when every connection is
// busy. MaxBufferedResponseBytes bounds the response bytes held for all
// clients (dispatch.HeldResponseBytes: a worker may send a response's first
// 2 MiB unasked, its window, and they wait in the gateway for a client that
// does not read): it is read every 100ms (10ms past a quarter of it), and
// over it the connections whose writes have been blocked longest are
// closed, while new requests wait up to ResponseBudgetWait for the bytes
// to fall within it, then are answered 503 with Retry-After: 1. After a
// burst that held 32 MiB or more has ended, the server returns freed
// memory to the system (limits.go). docs/operations.md has the figures.
//
// # WebSocket
//
// A request routed to a dispatch.KindWebSocket route is a WebSocket
// upgrade (RFC 6455; ws_http1.go checks the handshake as the head is
// parsed, answering 426 or 400 itself), or, over HTTP/2, a CONNECT with
// :protocol websocket (RFC 8441, ws_h2.go); any other request for it is
// answered 426, unless the route also serves HTTP (dispatch.Route.AlsoHTTP):
// then it is served as a plain request. An upgrade is served by the Backend's
// optional ServeWebSocket (501 without it) with a dispatch.WebSocketPeer:
// the connection's response writer until the backend accepts (101, or 200
// over HTTP/2), then a session (ws.go) that reads whole, validated,
// decompressed messages and writes messages, pings and the close
// handshake, framed with github.com/gobwas/ws. An HTTP/1.1 upgrade ends the
// reader's work on the connection: the bytes it read past the head go to
// the session, and no request pipelined behind it is served; the writer
// goroutine runs the session and the connection closes after it.
// docs/operations.md has the settings (Config.WS*), limits and close codes.
//
// # Shutdown
//
// Server.Shutdown closes the listeners, closes idle keep-alive connections
// at once and lets busy ones finish the response being written, sent with
// Connection: close; it sends every open WebSocket session a Close frame
// with 1001, and each ends when the client answers; when its context ends
// it closes the rest, cancelling their requests. Server.Close does that at
// once.
package server
