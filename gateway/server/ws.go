package server

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/covetpy/covetpy/gateway/dispatch"
)

// This file is the transport-independent half of the gateway's WebSocket
// front end (RFC 6455, RFC 7692 permessage-deflate): the session a
// dispatch.WebSocketPeer drives once the handshake is done. ws_http1.go
// hands it an upgraded HTTP/1.1 connection, ws_h2.go an RFC 8441 stream.
// Frames are read and written with github.com/gobwas/ws (headers, masking,
// protocol checks) and github.com/gobwas/ws/wsflate (negotiation
// parameters); the message assembly, limits, UTF-8 checks, compression and
// the close handshake are here.

const (
	// wsCloseWait bounds the close handshake: how long the gateway waits for
	// the client's Close frame after sending its own, and how long writing
	// its own may take.
	wsCloseWait = 5 * time.Second
	// wsFailWait is how long the gateway keeps reading (and dropping) after
	// it failed a session (1002, 1007, 1009, idle), for the client's Close
	// frame: closing the socket with unread bytes would reset the
	// connection and could destroy the Close frame just sent.
	wsFailWait = time.Second
	// wsReadBuf is the size of a session's buffered reader.
	wsReadBuf = 4 << 10
	// wsKeepBuf is the largest message buffer a session keeps between
	// messages; a larger one is dropped once its message is consumed, so
	// an idle session holds little memory whatever it carried before.
	wsKeepBuf = 64 << 10
	// wsCompressMin is the smallest message the gateway compresses: a
	// smaller one would not shrink enough to pay for the deflate block.
	wsCompressMin = 64
	// wsReadStep is how far ahead of the bytes received a message buffer
	// grows: a frame's declared length is never trusted for allocation.
	wsReadStep = 32 << 10
	// wsMaxReason is the most bytes of a close reason (RFC 6455 5.5: a
	// control frame's payload is at most 125 bytes, 2 of them the code).
	wsMaxReason = 123
)

// The gateway's own close codes (RFC 6455 7.4.1).
const (
	wsCloseNormal      = 1000
	wsCloseGoingAway   = 1001
	wsCloseProtocol    = 1002
	wsCloseNoStatus    = 1005
	wsCloseAbnormal    = 1006
	wsCloseInvalidData = 1007
	wsCloseTooBig      = 1009
	wsCloseInternal    = 1011
)

var (
	// errWSClosed: WriteMessage after the gateway sent its Close frame (or
	// the connection was lost).
	errWSClosed = errors.New("server: websocket session closed")
	// errWSAccepted: the peer's ResponseWriter used after Accept, or Accept
	// called twice or after a rejection began.
	errWSAccepted = errors.New("server: websocket handshake already answered")
	// errWSTextNotUTF8: WriteMessage of a text message that is not UTF-8.
	errWSTextNotUTF8 = errors.New("server: websocket text message to send is not UTF-8")
	// errWSSubprotocol: Accept chose a subprotocol the client did not offer
	// (PROTOCOL.md 2.9: the session is closed with 1011).
	errWSSubprotocol = errors.New("server: websocket subprotocol not offered by the client")
)

// wsGUID is RFC 6455's magic string for Sec-WebSocket-Accept (1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsAcceptKey computes Sec-WebSocket-Accept for a client's key.
func wsAcceptKey(key []byte) string {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte(wsGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// validWSKey reports whether a Sec-WebSocket-Key value is the base64 of 16
// bytes (RFC 6455 4.1: 24 characters with "==" padding).
func validWSKey(k []byte) bool {
	if len(k) != 24 {
		return false
	}
	var dst [18]byte
	n, err := base64.StdEncoding.Decode(dst[:], k)
	return err == nil && n == 16
}

// hasToken reports whether a comma-separated list field value holds token,
// compared case-insensitively.
func hasToken(v []byte, token string) bool {
	found := false
	httphead.ScanTokens(v, func(t []byte) bool {
		if fieldIs(t, token) {
			found = true
			return false
		}
		return true
	})
	return found
}

// offersSubprotocol reports whether the Sec-WebSocket-Protocol fields of an
// upgrade request (values) list p.
func offersSubprotocol(values [][]byte, p string) bool {
	for _, v := range values {
		ok := false
		httphead.ScanTokens(v, func(t []byte) bool {
			if string(t) == p {
				ok = true
				return false
			}
			return true
		})
		if ok {
			return true
		}
	}
	return false
}

// wsDeflate is the permessage-deflate agreement of a session.
type wsDeflate struct {
	on bool
	// huffmanOnly: the client limited the server's window
	// (server_max_window_bits < 15), which compress/flate cannot honour
	// with back-references; the gateway then compresses without any.
	huffmanOnly bool
	// response is the Sec-WebSocket-Extensions value to answer with.
	response []byte
}

// negotiateDeflate picks the first acceptable permessage-deflate offer of
// the Sec-WebSocket-Extensions fields (RFC 7692 5). The gateway keeps no
// compression context between messages, so it always answers
// server_no_context_takeover and client_no_context_takeover (the client
// must then reset its own context per message, which is what the
// gateway's per-message decompressor expects; RFC 7692 7.1.1.1 lets a
// server add it unasked). An offer with a malformed or repeated parameter
// is skipped, as 5.1 asks.
func negotiateDeflate(values [][]byte) wsDeflate {
	var opts []httphead.Option
	for _, v := range values {
		var ok bool
		if opts, ok = httphead.ParseOptions(v, opts); !ok {
			return wsDeflate{}
		}
	}
	for _, opt := range opts {
		if !bytes.Equal(opt.Name, wsflate.ExtensionNameBytes) {
			continue
		}
		var p wsflate.Parameters
		if p.Parse(opt) != nil {
			continue
		}
		resp := wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}
		d := wsDeflate{on: true}
		if p.ServerMaxWindowBits.Defined() {
			resp.ServerMaxWindowBits = p.ServerMaxWindowBits
			d.huffmanOnly = p.ServerMaxWindowBits < 15
		}
		o := resp.Option()
		d.response = append([]byte(nil), o.Name...)
		o.Parameters.ForEach(func(k, v []byte) bool {
			d.response = append(d.response, "; "...)
			d.response = append(d.response, k...)
			if len(v) > 0 {
				d.response = append(d.response, '=')
				d.response = append(d.response, v...)
			}
			return true
		})
		return d
	}
	return wsDeflate{}
}

// wsTransport is what a session runs on: an upgraded HTTP/1.1 connection or
// an HTTP/2 stream.
type wsTransport interface {
	// Read reads the client's bytes.
	Read(p []byte) (int, error)
	// WriteBuffers writes all of *bufs (consuming them) and makes sure they
	// are on their way to the client.
	WriteBuffers(bufs *net.Buffers) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	// CloseWrite ends the gateway's sending side and keeps reading; an
	// error means the transport cannot (HTTP/2).
	CloseWrite() error
	// Close releases the connection (or stream).
	Close() error
}

// wsSession is one open WebSocket session: the client's side of it, as
// ReadMessage, WriteMessage and Close of dispatch.WebSocketPeer.
//
// Ownership: the read side (br, msg, out, the frame state) belongs to the
// goroutine holding rmu, normally the one calling ReadMessage; the write
// side (frames out, cbuf, closeSent) to the one holding wmu: a message, a
// pong, a ping or a Close frame is written whole under it, so control
// frames never land inside a message. mu guards the rest.
type wsSession struct {
	// Immutable after newWSSession.
	srv       *Server
	t         wsTransport
	maxMsg    int
	deflate   wsDeflate
	idle      time.Duration // no frame for this long: close 1001; 0 none
	ping      time.Duration // ping period; 0 none
	writeTime time.Duration // WriteTimeout: bound on one write, plus the rate credit
	minRate   int64         // MinWriteRate
	proto     string        // metrics label of the session's protocol
	ended     chan struct{} // closed when the read side has ended

	rmu  sync.Mutex
	br   *bufio.Reader
	hbuf [ws.MaxHeaderSize]byte
	msg  []byte // the message being assembled (compressed, when it is)
	out  []byte // the decompressed message
	ctl  [125]byte
	rend *dispatch.CloseError // sticky: how the read side ended
	// skip is what is left unread of the frame the gateway failed the
	// session on (drain skips it to find the next frame); -1 when the
	// stream has no frame boundary left to find.
	skip int64
	// clientClosed: the client's Close frame came (valid or not): it will
	// send nothing more, so there is nothing to drain.
	clientClosed bool

	wmu       sync.Mutex
	whdr      [ws.MaxHeaderSize]byte
	cbuf      bytes.Buffer // compressed output
	bufs      net.Buffers
	bufStore  [3][]byte
	closeSent bool
	werr      error

	mu        sync.Mutex
	sentCode  int    // the gateway's Close frame code, once sent first
	sentWhy   string // and its reason
	sentFirst bool   // the gateway's Close went out before the client's came
	closeBy   atomic.Int64
	timer     *time.Timer // the ping timer
	finished  bool
	endOnce   sync.Once
}

func newWSSession(s *Server, t wsTransport, pre []byte, d wsDeflate, proto string) *wsSession {
	cfg := &s.cfg
	var r io.Reader = t
	if len(pre) > 0 {
		r = io.MultiReader(bytes.NewReader(pre), t)
	}
	ss := &wsSession{
		srv:       s,
		t:         t,
		maxMsg:    int(cfg.WSMaxMessageBytes),
		deflate:   d,
		idle:      max(cfg.WSIdleTimeout, 0),
		ping:      max(cfg.WSPingInterval, 0),
		writeTime: cfg.WriteTimeout,
		minRate:   cfg.MinWriteRate,
		proto:     proto,
		ended:     make(chan struct{}),
		br:        bufio.NewReaderSize(r, wsReadBuf),
	}
	if ss.ping > 0 {
		ss.mu.Lock() // sendPing may run before the assignment is done
		ss.timer = time.AfterFunc(ss.ping, ss.sendPing)
		ss.mu.Unlock()
	}
	s.trackWS(ss, true)
	s.metrics.WSOpened(proto)
	return ss
}

// MaxMessage is the largest client message the session accepts (a larger
// one closes it with 1009): ServeWebSocket sizes the worker's window from
// it (PROTOCOL.md 2.9: twice the largest message).
func (s *wsSession) MaxMessage() int { return s.maxMsg }

// ReadMessage implements dispatch.WebSocketPeer.
func (s *wsSession) ReadMessage() (text bool, p []byte, err error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.readMessageLocked()
}

func (s *wsSession) readMessageLocked() (text bool, p []byte, err error) {
	if s.rend != nil {
		return false, nil, s.rend
	}
	text, p, code, why, err := s.readMessage()
	if err == nil {
		s.srv.metrics.WSMessage(true)
		return text, p, nil
	}
	var ce *dispatch.CloseError
	switch {
	case code == 0: // transport error, no close frame from the client
		ce = &dispatch.CloseError{Code: wsCloseAbnormal, Reason: ""}
		if errors.Is(err, os.ErrDeadlineExceeded) && !s.closing() {
			// The idle timeout: tell the client, briefly, and go.
			ce = &dispatch.CloseError{Code: wsCloseGoingAway, Reason: "idle timeout"}
			s.sendClose(ce.Code, ce.Reason)
			s.drain()
		}
	case errors.Is(err, errClientClosed):
		ce = &dispatch.CloseError{Code: code, Reason: why}
	default: // the gateway fails the session
		s.srv.debugWS("websocket failed", err)
		ce = &dispatch.CloseError{Code: code, Reason: why}
		s.sendClose(code, why)
		s.drain()
	}
	s.mu.Lock()
	if s.sentFirst {
		// The gateway closed first (shutdown, the worker's Close): the
		// session ended with its code, whatever the client answered.
		ce = &dispatch.CloseError{Code: s.sentCode, Reason: s.sentWhy}
	}
	s.mu.Unlock()
	s.rend = ce
	s.endRead()
	return false, nil, ce
}

// errClientClosed marks the client's valid Close frame (readMessage).
var errClientClosed = errors.New("server: websocket closed by the client")

// wsFail is a reason the gateway fails a session.
type wsFail struct {
	code int
	why  string
}

func (f *wsFail) Error() string { return "websocket: " + f.why }

// readMessage reads frames until a whole data message is in. It answers
// pings and drops pongs on the way. code is 0 for a transport error, the
// client's code with errClientClosed (after answering its Close), or the
// code the gateway must fail the session with.
func (s *wsSession) readMessage() (text bool, p []byte, code int, why string, err error) {
	if cap(s.msg) > wsKeepBuf {
		s.msg = nil
	}
	if cap(s.out) > wsKeepBuf {
		s.out = nil
	}
	s.msg = s.msg[:0]
	var (
		op         ws.OpCode
		fragmented bool
		compressed bool
		checked    int // s.msg[:checked] is valid UTF-8 (uncompressed text)
	)
	limit := s.maxMsg
	for {
		s.armRead()
		h, err := ws.ReadHeaderBuffer(s.br, s.hbuf[:])
		if err != nil {
			if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
				s.skip = -1 // out of step: no frame boundary to find
				return false, nil, wsCloseProtocol, "bad frame length", err
			}
			return false, nil, 0, "", err
		}
		state := ws.StateServerSide
		if s.deflate.on {
			state = state.Set(ws.StateExtended)
		}
		if fragmented {
			state = state.Set(ws.StateFragmented)
		}
		if err := ws.CheckHeader(h, state); err != nil {
			s.skip = h.Length
			// A refused Close (a reason over 125 bytes) is still the
			// client's last frame: nothing to wait for after it.
			s.clientClosed = h.OpCode == ws.OpClose
			return false, nil, wsCloseProtocol, err.Error(), err
		}
		// With permessage-deflate only RSV1 has a meaning, and only on the
		// first frame of a data message (RFC 7692 6).
		if h.Rsv2() || h.Rsv3() || (h.Rsv1() && (h.OpCode.IsControl() || h.OpCode == ws.OpContinuation)) {
			s.skip = h.Length
			return false, nil, wsCloseProtocol, "reserved bits set", ws.ErrProtocolNonZeroRsv
		}
		if h.OpCode.IsControl() {
			code, why, err := s.control(h)
			if err != nil {
				return false, nil, code, why, err
			}
			continue
		}
		if !fragmented {
			op, compressed = h.OpCode, h.Rsv1()
			if compressed {
				// Compressed bytes may slightly exceed what they inflate
				// to (stored blocks); the inflated size is checked too.
				limit = s.maxMsg + s.maxMsg/1024 + 64
			}
		}
		if h.Length > int64(limit-len(s.msg)) {
			s.skip = h.Length
			return false, nil, wsCloseTooBig, "message too big", errWSTooBig
		}
		if err := s.readPayload(h, op == ws.OpText && !compressed, &checked); err != nil {
			var f *wsFail
			if errors.As(err, &f) {
				return false, nil, f.code, f.why, err
			}
			return false, nil, 0, "", err
		}
		if !h.Fin {
			fragmented = true
			continue
		}
		p = s.msg
		if compressed {
			if p, err = s.inflate(s.msg); err != nil {
				var f *wsFail
				if errors.As(err, &f) {
					return false, nil, f.code, f.why, err
				}
				return false, nil, wsCloseInvalidData, "bad compressed data", err
			}
			if op == ws.OpText && !utf8.Valid(p) {
				return false, nil, wsCloseInvalidData, "invalid UTF-8", errWSUTF8
			}
		} else if op == ws.OpText && checked != len(s.msg) {
			return false, nil, wsCloseInvalidData, "invalid UTF-8", errWSUTF8
		}
		return op == ws.OpText, p, 0, "", nil
	}
}

var (
	errWSTooBig = errors.New("server: websocket message over ws_max_message_bytes")
	errWSUTF8   = errors.New("server: websocket text message not valid UTF-8")
)

// readPayload appends a data frame's payload to s.msg, unmasked, growing
// the buffer as bytes arrive. For uncompressed text it checks UTF-8 as the
// bytes come (failing fast, within the frame), *checked being how far the
// message is known valid: a sequence cut by the end of what has arrived is
// checked once the rest is in.
func (s *wsSession) readPayload(h ws.Header, text bool, checked *int) error {
	start := len(s.msg)
	for rem := h.Length; rem > 0; {
		if len(s.msg) == cap(s.msg) {
			// Grow by at most what the frame still declares: a false
			// length costs what the client really sent, or one step.
			grow := min(rem, int64(max(wsReadStep, len(s.msg)/2)))
			nb := make([]byte, len(s.msg), len(s.msg)+int(grow))
			copy(nb, s.msg)
			s.msg = nb
		}
		room := s.msg[len(s.msg) : len(s.msg)+int(min(rem, int64(cap(s.msg)-len(s.msg))))]
		s.armRead() // the idle timer runs from the last bytes received
		n, err := s.br.Read(room)
		if n > 0 {
			s.msg = s.msg[:len(s.msg)+n]
			rem -= int64(n)
			ws.Cipher(s.msg[len(s.msg)-n:], h.Mask, len(s.msg)-n-start)
			if text {
				k, ok := validUTF8Prefix(s.msg[*checked:])
				if !ok {
					s.skip = rem
					return &wsFail{code: wsCloseInvalidData, why: "invalid UTF-8"}
				}
				*checked += k
			}
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// validUTF8Prefix reports how many leading bytes of b are whole, valid
// UTF-8 sequences, and whether the rest (at most 3 bytes) can still begin
// one. utf8.FullRune is false only for a valid, incomplete prefix.
func validUTF8Prefix(b []byte) (int, bool) {
	i := 0
	for i < len(b) {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		if !utf8.FullRune(b[i:]) {
			return i, true
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i, false
		}
		i += size
	}
	return i, true
}

// control handles a control frame: it answers a ping, drops a pong, and
// answers and reports a close (errClientClosed, with the code: 1005 for
// none).
func (s *wsSession) control(h ws.Header) (code int, why string, err error) {
	p := s.ctl[:h.Length]
	if _, err := io.ReadFull(s.br, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, "", err
	}
	ws.Cipher(p, h.Mask, 0)
	switch h.OpCode {
	case ws.OpPing:
		s.writeControl(ws.OpPong, p)
		return 0, "", nil
	case ws.OpPong:
		return 0, "", nil
	}
	// Close (RFC 6455 5.5.1): no payload, or a code and a UTF-8 reason.
	s.clientClosed = true
	switch {
	case len(p) == 0:
		s.answerClose(nil)
		return wsCloseNoStatus, "", errClientClosed
	case len(p) == 1:
		return wsCloseProtocol, "bad close frame", &wsFail{code: wsCloseProtocol, why: "close frame of 1 byte"}
	}
	c, reason := ws.ParseCloseFrameData(p)
	if c > 4999 { // no meaning in RFC 6455 7.4.2, nor a valid WS_CLOSE code
		return wsCloseProtocol, "bad close code", &wsFail{code: wsCloseProtocol, why: "close code over 4999"}
	}
	if err := ws.CheckCloseFrameData(c, reason); err != nil {
		if errors.Is(err, ws.ErrProtocolInvalidUTF8) {
			return wsCloseInvalidData, "invalid UTF-8 in close reason", err
		}
		return wsCloseProtocol, "bad close code", err
	}
	s.answerClose(p[:2])
	return int(c), reason, errClientClosed
}

// answerClose echoes the client's Close frame with its code (RFC 6455
// 5.5.1), unless the gateway's went out first.
func (s *wsSession) answerClose(code []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closeSent {
		return
	}
	s.closeSent = true
	s.writeFrameLocked(ws.OpClose, false, code, wsCloseWait)
}

// inflate decompresses a permessage-deflate message (RFC 7692 7.2.2: the
// tail 0x00 0x00 0xff 0xff is appended), refusing output beyond the
// message limit with 1009: a small compressed message cannot make the
// gateway hold more than ws_max_message_bytes.
func (s *wsSession) inflate(p []byte) ([]byte, error) {
	src := wsInflateSrc{parts: [2][]byte{p, wsInflateTail}}
	fr := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(fr)
	if err := fr.(flate.Resetter).Reset(&src, nil); err != nil {
		return nil, err
	}
	s.out = s.out[:0]
	for {
		if len(s.out) == cap(s.out) {
			nb := make([]byte, len(s.out), len(s.out)+max(wsReadStep, len(s.out)/2))
			copy(nb, s.out)
			s.out = nb
		}
		n, err := fr.Read(s.out[len(s.out):cap(s.out)])
		s.out = s.out[:len(s.out)+n]
		if len(s.out) > s.maxMsg {
			return nil, &wsFail{code: wsCloseTooBig, why: "message too big"}
		}
		if err == io.EOF {
			return s.out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// wsDeflateTail ends each compressed message (RFC 7692 7.2.2: the tail a
// sender removes). wsInflateTail is what the gateway appends before
// inflating: that tail, then an empty final block, so that a whole message
// ends the stream with io.EOF and a truncated one fails.
var (
	wsDeflateTail = []byte{0x00, 0x00, 0xff, 0xff}
	wsInflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}
)

// wsInflateSrc reads the message, then the tail, without copying them
// together. It implements io.ByteReader so that flate reads no further
// than it must.
type wsInflateSrc struct {
	parts [2][]byte
	i     int
}

func (r *wsInflateSrc) Read(p []byte) (int, error) {
	for r.i < 2 && len(r.parts[r.i]) == 0 {
		r.i++
	}
	if r.i == 2 {
		return 0, io.EOF
	}
	n := copy(p, r.parts[r.i])
	r.parts[r.i] = r.parts[r.i][n:]
	return n, nil
}

func (r *wsInflateSrc) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := r.Read(b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

// inflaters and deflaters are shared by all sessions: the gateway keeps no
// context between messages, so any reader or writer serves any message,
// and a session holds none between messages (a flate writer is about
// 600 KiB).
var (
	inflaters = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}
	deflaters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(io.Discard, flate.BestSpeed)
		return w
	}}
	huffDeflaters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(io.Discard, flate.HuffmanOnly)
		return w
	}}
)

// armRead sets the read deadline for the next read: the idle timeout from
// now, or the close handshake's end once the gateway has sent its Close.
func (s *wsSession) armRead() {
	var dl time.Time
	if by := s.closeBy.Load(); by != 0 {
		dl = time.Unix(0, by)
	} else if s.idle > 0 {
		dl = time.Now().Add(s.idle)
	}
	s.t.SetReadDeadline(dl)
}

// closing reports whether the gateway has sent its Close frame.
func (s *wsSession) closing() bool { return s.closeBy.Load() != 0 }

// drain follows the gateway's Close frame when it fails a session: it
// reads and drops the rest of the refused frame, then frames, until the
// client's Close arrives, the connection fails or wsFailWait passes.
// Closing at once, with the client's bytes unread, would reset the
// connection and could destroy the Close frame just sent. When no frame
// boundary can be found (a malformed length), it half-closes and drops
// bytes until the client closes its side.
func (s *wsSession) drain() {
	if s.clientClosed {
		return
	}
	s.t.SetReadDeadline(time.Now().Add(wsFailWait))
	if s.skip < 0 {
		if s.t.CloseWrite() == nil {
			io.Copy(io.Discard, s.br)
		}
		return
	}
	if _, err := io.CopyN(io.Discard, s.br, s.skip); err != nil {
		return
	}
	for {
		h, err := ws.ReadHeaderBuffer(s.br, s.hbuf[:])
		if err != nil {
			return
		}
		if _, err := io.CopyN(io.Discard, s.br, h.Length); err != nil || h.OpCode == ws.OpClose {
			return
		}
	}
}

// endRead marks the read side ended (Close waits for it).
func (s *wsSession) endRead() {
	s.endOnce.Do(func() { close(s.ended) })
}

// WriteMessage implements dispatch.WebSocketPeer: it writes p as one frame,
// compressed when permessage-deflate was agreed and p is not tiny. A write
// may take WriteTimeout plus one second per MinWriteRate bytes; a client
// that reads slower loses its connection, and until then the caller waits
// (the worker's credit is not granted back), so a slow client costs the
// gateway no more than the message being written. Text that is not UTF-8
// is refused (errWSTextNotUTF8) and nothing is written: the caller closes
// the session (PROTOCOL.md 2.9: 1011).
func (s *wsSession) WriteMessage(text bool, p []byte) error {
	if text && !utf8.Valid(p) {
		return errWSTextNotUTF8
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closeSent {
		return errWSClosed
	}
	if s.werr != nil {
		return s.werr
	}
	op := ws.OpBinary
	if text {
		op = ws.OpText
	}
	payload, compressed := p, false
	if s.deflate.on && len(p) >= wsCompressMin {
		if c, err := s.compress(p); err == nil && len(c) < len(p) {
			payload, compressed = c, true
		}
	}
	credit, _ := rateCredit(int64(len(payload)), s.minRate)
	err := s.writeFrameLocked(op, compressed, payload, s.writeTime+credit)
	if s.cbuf.Cap() > wsKeepBuf {
		s.cbuf = bytes.Buffer{}
	}
	if err == nil {
		s.srv.metrics.WSMessage(false)
	}
	return err
}

// compress deflates p into s.cbuf without the final 0x00 0x00 0xff 0xff
// (RFC 7692 7.2.1), with a pooled writer reset for each message.
func (s *wsSession) compress(p []byte) ([]byte, error) {
	pool := &deflaters
	if s.deflate.huffmanOnly {
		pool = &huffDeflaters
	}
	fw := pool.Get().(*flate.Writer)
	defer pool.Put(fw)
	s.cbuf.Reset()
	fw.Reset(&s.cbuf)
	if _, err := fw.Write(p); err != nil {
		return nil, err
	}
	if err := fw.Flush(); err != nil {
		return nil, err
	}
	b := s.cbuf.Bytes()
	if !bytes.HasSuffix(b, wsDeflateTail) {
		return nil, errors.New("server: deflate output lacks its sync tail")
	}
	return b[:len(b)-len(wsDeflateTail)], nil
}

// writeFrameLocked writes one unfragmented, unmasked frame within d. The
// caller holds wmu. A failed write is sticky.
func (s *wsSession) writeFrameLocked(op ws.OpCode, rsv1 bool, p []byte, d time.Duration) error {
	if s.werr != nil {
		return s.werr
	}
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(p))}
	if rsv1 {
		h.Rsv = ws.Rsv(true, false, false)
	}
	n := putWSHeader(s.whdr[:], h)
	s.bufs = append(s.bufStore[:0], s.whdr[:n])
	if len(p) > 0 {
		s.bufs = append(s.bufs, p)
	}
	s.t.SetWriteDeadline(time.Now().Add(d))
	err := s.t.WriteBuffers(&s.bufs)
	clear(s.bufStore[:])
	s.bufs = nil
	if err != nil {
		s.werr = err
		s.srv.debugWS("websocket write", err)
	} else {
		s.srv.metrics.BytesOut(int64(n + len(p)))
	}
	return err
}

// putWSHeader encodes h into b (at least ws.MaxHeaderSize long) and returns
// its length.
func putWSHeader(b []byte, h ws.Header) int {
	w := fixedWriter{b: b[:0:len(b)]}
	_ = ws.WriteHeaderBuffer(&w, h, w.scratch[:]) // cannot fail: b has room
	return len(w.b)
}

// fixedWriter appends into a slice that never grows (putWSHeader).
type fixedWriter struct {
	b       []byte
	scratch [ws.MaxHeaderSize]byte
}

func (w *fixedWriter) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > cap(w.b) {
		return 0, io.ErrShortWrite
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

// writeControl writes a control frame (pong, ping) unless the gateway has
// sent its Close.
func (s *wsSession) writeControl(op ws.OpCode, p []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.closeSent {
		s.writeFrameLocked(op, false, p, s.writeTime)
	}
}

// sendPing is the ping timer's: a ping, unless a message is being written
// (which shows the connection alive as well as a pong would), then the
// next period.
func (s *wsSession) sendPing() {
	if s.wmu.TryLock() {
		if !s.closeSent {
			s.writeFrameLocked(ws.OpPing, false, nil, s.writeTime)
		}
		s.wmu.Unlock()
	}
	s.mu.Lock()
	if !s.finished {
		s.timer.Reset(s.ping)
	}
	s.mu.Unlock()
}

// sendClose sends the gateway's Close frame with code and reason, once
// (nothing if a Close frame already went out), and starts the close
// handshake's clock. 1005 goes out as a Close without a code; a code that
// may not be sent (1006, 1015, out of range) as 1011.
func (s *wsSession) sendClose(code int, reason string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closeSent {
		return
	}
	s.closeSent = true
	s.mu.Lock()
	s.sentFirst, s.sentCode, s.sentWhy = true, code, reason
	s.mu.Unlock()
	by := time.Now().Add(wsCloseWait)
	s.closeBy.Store(by.UnixNano())
	s.t.SetReadDeadline(by) // a reader waiting for the next frame waits no longer
	var body [125]byte
	n := 0
	if code != wsCloseNoStatus {
		if !wsSendable(code) {
			code = wsCloseInternal
		}
		binary.BigEndian.PutUint16(body[:2], uint16(code))
		n = 2 + copy(body[2:], truncUTF8(reason, wsMaxReason))
	}
	s.writeFrameLocked(ws.OpClose, false, body[:n], wsCloseWait)
}

// wsSendable reports whether code may appear in a Close frame (RFC 6455
// 7.4.1 and 7.4.2: 1004, 1005, 1006 and 1015 never do).
func wsSendable(code int) bool {
	switch {
	case code >= 3000 && code <= 4999:
		return true
	case code < 1000 || code > 1014:
		return false
	}
	return code != 1004 && code != 1005 && code != 1006
}

// truncUTF8 cuts s to at most n bytes, at a rune boundary.
func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Close implements dispatch.WebSocketPeer: it sends the gateway's Close
// frame (unless one went out, or the client's came first and was
// answered), waits up to wsCloseWait for the client's, then closes the
// connection. It may be called while a ReadMessage is blocked: that one
// then returns the session's end, which Close waits for.
func (s *wsSession) Close(code int, reason string) error {
	s.sendClose(code, reason)
	s.wmu.Lock()
	lost := s.werr != nil // the client cannot have seen the Close: no wait
	s.wmu.Unlock()
	select {
	case <-s.ended:
	default:
		if lost {
			break
		}
		if s.rmu.TryLock() {
			// No reader: read (and drop) up to the client's Close here.
			for {
				if _, _, err := s.readMessageLocked(); err != nil {
					break
				}
			}
			s.rmu.Unlock()
		} else {
			t := time.NewTimer(wsCloseWait)
			select {
			case <-s.ended:
			case <-t.C:
			}
			t.Stop()
		}
	}
	s.finish()
	return nil
}

// goAway starts the close handshake with 1001 (Server.Shutdown).
func (s *wsSession) goAway() {
	s.sendClose(wsCloseGoingAway, "server shutting down")
}

// finish releases the session: the ping timer stops, the connection
// closes, the server forgets it. Idempotent.
func (s *wsSession) finish() {
	s.mu.Lock()
	done := s.finished
	s.finished = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	if done {
		return
	}
	s.t.Close()
	s.endRead()
	s.srv.trackWS(s, false)
	s.srv.metrics.WSClosed(s.proto)
}

// trackWS adds a session to (or removes it from) the ones Shutdown closes
// with 1001. A session opened once Shutdown has begun is told at once.
func (s *Server) trackWS(ss *wsSession, add bool) {
	s.wsMu.Lock()
	if !add {
		delete(s.wsSessions, ss)
		s.wsMu.Unlock()
		return
	}
	if s.wsSessions == nil {
		s.wsSessions = make(map[*wsSession]struct{})
	}
	s.wsSessions[ss] = struct{}{}
	s.wsMu.Unlock()
	if s.inShutdown.Load() {
		go ss.goAway()
	}
}

// closeWebSockets starts the close handshake (1001) of every open session,
// each on its own goroutine: one blocked on a slow client holds up none of
// the others.
func (s *Server) closeWebSockets() {
	s.wsMu.Lock()
	defer s.wsMu.Unlock()
	for ss := range s.wsSessions {
		go ss.goAway()
	}
}

func (s *Server) debugWS(what string, err error) {
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug(what, "err", err)
	}
}
