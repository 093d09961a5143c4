package main

// The WebSocket side of tlsload, for bench/ws.py: a minimal RFC 6455 client of its own
// (the opening handshake, masked frames out, fragmented messages, ping and close in),
// an echo check, a closed-loop echo load and a hold of many idle connections.
//
//	tlsload wscheck URL                                 # echo round trips of many sizes, checked
//	tlsload ws -c 64 -size 64 [-binary] -d 10s -w 2s URL
//	tlsload wsidle -n 10000 -srcs 1 -hold 120s URL      # open, hold until stdin says, close
//
// URL is ws://HOST:PORT/PATH. No extension is offered, so every frame the server sends
// must have RSV1..3 clear, and none may be masked.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA

	wsGUID     = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	maxMessage = 16 << 20 // a larger message from the server is an error
)

// wsConn is one client connection. Reads are for one goroutine; writes take mu, so a
// reader may answer a ping while another goroutine sends.
type wsConn struct {
	c    net.Conn
	br   *bufio.Reader
	mu   sync.Mutex
	wbuf []byte
	rng  *mrand.ChaCha8
	msg  []byte // the message being reassembled
	// closeSent: our close frame is out, so the server's is the answer, not to be answered.
	closeSent bool
}

// wsDialConn wraps c, over which the handshake is yet to be done.
func wsDialConn(c net.Conn) *wsConn {
	var seed [32]byte
	rand.Read(seed[:])
	return &wsConn{c: c, br: bufio.NewReaderSize(c, 4096), rng: mrand.NewChaCha8(seed)}
}

// wsDial opens a TCP connection (from src when not nil) and does the opening handshake
// (RFC 6455 4.1): status 101, Upgrade: websocket, Connection: upgrade and the accept
// key derived from ours.
func wsDial(u *url.URL, src net.IP, timeout time.Duration) (*wsConn, error) {
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("%s: only ws:// URLs", u)
	}
	d := net.Dialer{Timeout: timeout}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	c, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	ws := wsDialConn(c)
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(ws.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	want := base64.StdEncoding.EncodeToString(sum[:])
	switch {
	case resp.StatusCode != http.StatusSwitchingProtocols:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		err = fmt.Errorf("handshake: status %d %q", resp.StatusCode, body)
	case !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket"):
		err = fmt.Errorf("handshake: Upgrade %q", resp.Header.Get("Upgrade"))
	case !headerHasToken(resp.Header, "Connection", "upgrade"):
		err = fmt.Errorf("handshake: Connection %q", resp.Header.Get("Connection"))
	case resp.Header.Get("Sec-WebSocket-Accept") != want:
		err = fmt.Errorf("handshake: Sec-WebSocket-Accept %q, want %q", resp.Header.Get("Sec-WebSocket-Accept"), want)
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		err = fmt.Errorf("handshake: extensions %q accepted though none was offered", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return ws, nil
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// write sends one unfragmented frame, masked with a fresh key, in one write.
func (w *wsConn) write(op byte, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closeSent {
		return errors.New("write after the close frame")
	}
	w.closeSent = op == opClose
	n := len(payload)
	b := append(w.wbuf[:0], 0x80|op)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], uint32(w.rng.Uint64()))
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range b[start:] {
		b[start+i] ^= key[i&3]
	}
	w.wbuf = b
	_, err := w.c.Write(b)
	return err
}

// closeError is the server's close frame.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string {
	if e.code == 0 {
		return "closed by the server (no status)"
	}
	return fmt.Sprintf("closed by the server: %d %q", e.code, e.reason)
}

// read returns the next data message (text or binary), answering pings and skipping
// pongs on the way; the slice is valid until the next read. A close frame is answered
// (once) and returned as *closeError.
func (w *wsConn) read() (byte, []byte, error) {
	w.msg = w.msg[:0]
	var op byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return 0, nil, err
		}
		fin, rsv, fop := h[0]&0x80 != 0, h[0]&0x70, h[0]&0x0F
		if rsv != 0 {
			return 0, nil, fmt.Errorf("frame with RSV bits %#x (no extension was negotiated)", rsv)
		}
		if h[1]&0x80 != 0 {
			return 0, nil, errors.New("masked frame from the server")
		}
		n := uint64(h[1] & 0x7F)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(w.br, e[:]); err != nil {
				return 0, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(w.br, e[:]); err != nil {
				return 0, nil, err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if fop >= opClose {
			if !fin || n > 125 {
				return 0, nil, fmt.Errorf("control frame %#x: fin %v, length %d", fop, fin, n)
			}
			var ctl [125]byte
			if _, err := io.ReadFull(w.br, ctl[:n]); err != nil {
				return 0, nil, err
			}
			switch fop {
			case opPing:
				if err := w.write(opPong, ctl[:n]); err != nil {
					return 0, nil, err
				}
			case opPong:
			case opClose:
				ce := &closeError{}
				if n >= 2 {
					ce.code, ce.reason = int(binary.BigEndian.Uint16(ctl[:2])), string(ctl[2:n])
				}
				w.mu.Lock()
				answer := !w.closeSent
				w.mu.Unlock()
				if answer {
					w.write(opClose, ctl[:min(n, 2)])
				}
				return 0, nil, ce
			default:
				return 0, nil, fmt.Errorf("unknown control opcode %#x", fop)
			}
			continue
		}
		switch {
		case fop == opCont && op == 0:
			return 0, nil, errors.New("continuation frame with no message begun")
		case fop != opCont && op != 0:
			return 0, nil, fmt.Errorf("opcode %#x inside a fragmented message", fop)
		case fop != opCont && fop != opText && fop != opBinary:
			return 0, nil, fmt.Errorf("unknown data opcode %#x", fop)
		}
		if fop != opCont {
			op = fop
		}
		if uint64(len(w.msg))+n > maxMessage {
			return 0, nil, fmt.Errorf("message over %d bytes", maxMessage)
		}
		start := len(w.msg)
		w.msg = slices.Grow(w.msg, int(n))[:start+int(n)]
		if _, err := io.ReadFull(w.br, w.msg[start:]); err != nil {
			return 0, nil, err
		}
		if fin {
			return op, w.msg, nil
		}
	}
}

// close sends a close frame (1000), waits up to wait for the server's close frame and
// the end of the stream, then closes the socket with RST (no TIME_WAIT on the client).
func (w *wsConn) close(wait time.Duration) error {
	err := w.write(opClose, []byte{0x03, 0xE8})
	if err == nil {
		w.c.SetReadDeadline(time.Now().Add(wait))
		for err == nil {
			_, _, err = w.read()
		}
		var ce *closeError
		if errors.As(err, &ce) {
			_, err = io.Copy(io.Discard, w.br) // the server now closes the TCP connection
		}
	}
	if tc, ok := w.c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	w.c.Close()
	return err
}

// echo sends one message and checks that the next message is the same, same opcode.
func (w *wsConn) echo(op byte, payload []byte) error {
	if err := w.write(op, payload); err != nil {
		return err
	}
	gop, got, err := w.read()
	if err != nil {
		return err
	}
	if gop != op || !bytes.Equal(got, payload) {
		return &mismatchError{fmt.Sprintf("echo mismatch: sent opcode %d, %d bytes %.40q; got opcode %d, %d bytes %.40q",
			op, len(payload), payload, gop, len(got), got)}
	}
	return nil
}

// mismatchError is an echo unlike the message sent.
type mismatchError struct{ what string }

func (e *mismatchError) Error() string { return e.what }

// fillMessage writes message number seq of connection id into p: the two numbers in
// hex first (so every echo is told apart), then printable filler.
func fillMessage(p []byte, id, seq int) {
	var tag [16]byte
	n := copy(p, fmt.Appendf(tag[:0], "%08x%08x", uint32(id), uint32(seq)))
	for i := n; i < len(p); i++ {
		p[i] = 'a' + byte((i+seq)%26)
	}
}

func wsURL(fs *flag.FlagSet) (*url.URL, error) {
	if fs.NArg() != 1 {
		return nil, fmt.Errorf("%s: one ws:// URL", fs.Name())
	}
	u, err := url.Parse(fs.Arg(0))
	if err == nil && u.Scheme != "ws" {
		err = fmt.Errorf("%s: only ws:// URLs", u)
	}
	return u, err
}

// wscheck: one connection, echo round trips of text and binary messages of sizes
// around every frame-length encoding (0, 125, 126, 65535, 65536 bytes and more), each
// checked; then a clean close.
func wscheck(args []string) error {
	fs := flag.NewFlagSet("wscheck", flag.ExitOnError)
	fs.Parse(args)
	u, err := wsURL(fs)
	if err != nil {
		return err
	}
	w, err := wsDial(u, nil, 10*time.Second)
	if err != nil {
		return err
	}
	w.c.SetDeadline(time.Now().Add(30 * time.Second))
	n := 0
	for _, size := range []int{1, 0, 16, 64, 125, 126, 127, 1000, 16 << 10, 65535, 65536, 200_000} {
		for _, op := range []byte{opText, opBinary} {
			p := make([]byte, size)
			fillMessage(p, 0, n)
			if err := w.echo(op, p); err != nil {
				w.c.Close()
				return fmt.Errorf("echo %d of %d bytes: %w", n, size, err)
			}
			n++
		}
	}
	w.c.SetDeadline(time.Time{})
	closeErr := w.close(5 * time.Second)
	out := map[string]any{"echoes": n, "ok": true}
	if closeErr != nil && !errors.Is(closeErr, io.EOF) {
		out["close"] = closeErr.Error() // a server that drops the socket without a close frame
	}
	emit(out)
	return nil
}

// wsload: c connections, each a closed loop of one message sent and its echo awaited
// and checked (a different message each time); a wrong echo or a dropped connection is
// an error, after which that connection is opened again.
func wsload(args []string) error {
	fs := flag.NewFlagSet("ws", flag.ExitOnError)
	conns := fs.Int("c", 64, "connections")
	size := fs.Int("size", 64, "message size in bytes")
	bin := fs.Bool("binary", false, "binary messages (default: text)")
	dur := fs.Duration("d", 10*time.Second, "measured time")
	warm := fs.Duration("w", 2*time.Second, "unmeasured load first")
	fs.Parse(args)
	u, err := wsURL(fs)
	if err != nil {
		return err
	}
	if *size < 0 || *size > maxMessage {
		return fmt.Errorf("-size %d: want 0 ..= %d", *size, maxMessage)
	}
	op := byte(opText)
	if *bin {
		op = opBinary
	}
	var (
		st      stats
		stopped atomic.Bool
		wg      sync.WaitGroup
		mu      sync.Mutex
		lats    [][]time.Duration
		opened  atomic.Int64
		wrong   atomic.Int64 // echoes unlike what was sent, warm-up included
	)
	for id := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, *size)
			var mine []time.Duration
			var w *wsConn
			for seq := 0; !stopped.Load(); seq++ {
				if w == nil {
					var err error
					if w, err = wsDial(u, nil, 5*time.Second); err != nil {
						st.record(0, err)
						time.Sleep(10 * time.Millisecond)
						continue
					}
					opened.Add(1)
				}
				fillMessage(p, id, seq)
				w.c.SetDeadline(time.Now().Add(5 * time.Second)) // an echo stuck past this is an error
				t0 := time.Now()
				err := w.echo(op, p)
				d := time.Since(t0)
				if err != nil {
					var m *mismatchError
					if errors.As(err, &m) {
						wrong.Add(1)
					}
					st.record(d, err)
					w.c.Close()
					w = nil
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if st.measuring.Load() {
					st.ok.Add(1)
					mine = append(mine, d)
				}
			}
			if w != nil {
				w.c.SetDeadline(time.Time{})
				w.close(time.Second)
			}
			mu.Lock()
			lats = append(lats, mine)
			mu.Unlock()
		}()
	}
	res := st.run(*warm, *dur, func() { stopped.Store(true) })
	wg.Wait()
	all := slices.Concat(lats...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds())
	}
	res["p50_us"], res["p99_us"], res["p999_us"] = pct(0.50), pct(0.99), pct(0.999)
	res["connections"], res["size"], res["binary"], res["dials"] = *conns, *size, *bin, opened.Load()
	res["mismatches"] = wrong.Load()
	emit(res)
	return nil
}

// raiseNofile lifts RLIMIT_NOFILE to at least want (the hard limit too, where this
// process may); Go has already raised the soft limit to the hard one.
func raiseNofile(want uint64) error {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return err
	}
	if r.Cur >= want {
		return nil
	}
	r.Cur = want
	if r.Max < want {
		r.Max = want
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return fmt.Errorf("RLIMIT_NOFILE to %d: %w", want, err)
	}
	return nil
}

// wsidle opens n connections (c handshakes at a time, source addresses 127.0.0.1 ..
// 127.0.0.srcs in turn), has each echo one checked message, and prints
// "TLSLOAD-MARK open" once all are open. It then holds them, answering pings, until a
// line or EOF on stdin (or -hold), sends one more checked echo on each to count the
// ones still open, closes them all cleanly and prints the result.
func wsidle(args []string) error {
	fs := flag.NewFlagSet("wsidle", flag.ExitOnError)
	n := fs.Int("n", 10000, "connections to hold")
	par := fs.Int("c", 64, "handshakes in flight while opening")
	srcs := fs.Int("srcs", 1, "source addresses 127.0.0.1 .. 127.0.0.N, used in turn")
	hold := fs.Duration("hold", 10*time.Minute, "the longest hold (stdin ends it sooner)")
	fs.Parse(args)
	u, err := wsURL(fs)
	if err != nil {
		return err
	}
	if *n < 1 || *par < 1 || *srcs < 1 || *srcs > 254 {
		return fmt.Errorf("-n %d -c %d -srcs %d: want n, c >= 1 and 1 <= srcs <= 254", *n, *par, *srcs)
	}
	if err := raiseNofile(uint64(*n) + 256); err != nil {
		return err
	}
	type held struct {
		w     *wsConn
		check []byte
		alive chan error // the idle reader's verdict on the check echo
	}
	conns := make([]*held, *n)
	var (
		openErrs  atomic.Int64
		firstErr  atomic.Value
		next      atomic.Int64
		wg        sync.WaitGroup
		readersWG sync.WaitGroup
	)
	fail := func(err error) {
		openErrs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	t0 := time.Now()
	for range *par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				src := net.IPv4(127, 0, 0, byte(1+i%*srcs))
				w, err := wsDial(u, src, 10*time.Second)
				if err != nil {
					fail(fmt.Errorf("connection %d: %w", i, err))
					continue
				}
				p := make([]byte, 32)
				fillMessage(p, i, 0)
				w.c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := w.echo(opText, p); err != nil {
					fail(fmt.Errorf("connection %d: first echo: %w", i, err))
					w.c.Close()
					continue
				}
				w.c.SetDeadline(time.Time{})
				h := &held{w: w, check: p, alive: make(chan error, 1)}
				fillMessage(h.check, i, 1)
				conns[i] = h
			}
		}()
	}
	wg.Wait()
	openSecs := time.Since(t0).Seconds()
	open := 0
	for _, h := range conns {
		if h == nil {
			continue
		}
		open++
		readersWG.Add(1)
		go func() { // answers pings while idle; the next data message must be the check's echo
			defer readersWG.Done()
			op, got, err := h.w.read()
			if err == nil && (op != opText || !bytes.Equal(got, h.check)) {
				err = fmt.Errorf("check echo mismatch: %.40q", got)
			}
			h.alive <- err
		}()
	}
	fmt.Printf("TLSLOAD-MARK open %d\n", open)
	done := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n')
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(*hold):
	}
	heldSecs := time.Since(t0).Seconds() - openSecs
	// The check: one echo on every connection still open, 64 at a time.
	var alive atomic.Int64
	var checkErr atomic.Value
	sem := make(chan struct{}, 64)
	for _, h := range conns {
		if h == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := h.w.write(opText, h.check)
			if err == nil {
				select {
				case err = <-h.alive:
				case <-time.After(10 * time.Second):
					err = errors.New("no echo within 10s")
					h.w.c.SetReadDeadline(time.Now()) // ends the reader
					<-h.alive
				}
			} else {
				h.w.c.SetReadDeadline(time.Now())
				<-h.alive
			}
			if err != nil {
				checkErr.CompareAndSwap(nil, err.Error())
				h.w.c.Close()
				return
			}
			alive.Add(1)
			h.w.close(5 * time.Second)
		}()
	}
	wg.Wait()
	readersWG.Wait()
	res := map[string]any{"requested": *n, "opened": open, "open_seconds": openSecs, "held_seconds": heldSecs,
		"alive_after": alive.Load(), "errors": openErrs.Load(), "srcs": *srcs}
	if e := firstErr.Load(); e != nil {
		res["first_error"] = e
	}
	if e := checkErr.Load(); e != nil {
		res["check_error"] = e
	}
	emit(res)
	return nil
}
