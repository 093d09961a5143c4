package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// pipeConn is a wsConn over one end of net.Pipe; the test plays the server on the other.
func pipeConn(t *testing.T) (*wsConn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	deadline := time.Now().Add(10 * time.Second) // a safety bound, not a measure
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	w := wsDialConn(a)
	return w, b
}

// readClientFrame reads one frame the client sent, checks it is final and masked,
// and returns its opcode and unmasked payload.
func readClientFrame(r io.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[0]&0x70 != 0 {
		return 0, nil, fmt.Errorf("frame byte 0 %#x: want FIN and no RSV", h[0])
	}
	if h[1]&0x80 == 0 {
		return 0, nil, errors.New("client frame not masked")
	}
	n := uint64(h[1] & 0x7F)
	var ext [8]byte
	switch n {
	case 126:
		if _, err := io.ReadFull(r, ext[:2]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:2]))
	case 127:
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	var key [4]byte
	if _, err := io.ReadFull(r, key[:]); err != nil {
		return 0, nil, err
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	for i := range p {
		p[i] ^= key[i&3]
	}
	return h[0] & 0x0F, p, nil
}

type frame struct {
	op  byte
	p   []byte
	err error
}

// nextFrame reads the client's next frame in the background.
func nextFrame(r io.Reader) <-chan frame {
	ch := make(chan frame, 1)
	go func() { op, p, err := readClientFrame(r); ch <- frame{op, p, err} }()
	return ch
}

// The examples of RFC 6455 5.7: a ping between the two fragments of "Hello" is
// answered with a pong of the same payload, and the message comes out whole.
func TestReadFragmentsAndPing(t *testing.T) {
	w, srv := pipeConn(t)
	go srv.Write([]byte{
		0x01, 0x03, 'H', 'e', 'l', // text, not final
		0x89, 0x05, 'H', 'e', 'l', 'l', 'o', // ping
		0x80, 0x02, 'l', 'o', // continuation, final
	})
	pong := nextFrame(srv)
	op, msg, err := w.read()
	if err != nil || op != opText || string(msg) != "Hello" {
		t.Fatalf("read: %d %q %v; want text \"Hello\"", op, msg, err)
	}
	if f := <-pong; f.err != nil || f.op != opPong || string(f.p) != "Hello" {
		t.Fatalf("answer to the ping: opcode %d %q %v; want a pong \"Hello\"", f.op, f.p, f.err)
	}
}

func TestReadRejects(t *testing.T) {
	for name, frame := range map[string][]byte{
		"masked":            {0x81, 0x81, 1, 2, 3, 4, 'x'},
		"rsv1":              {0xC1, 0x01, 'x'},
		"lone continuation": {0x80, 0x01, 'x'},
		"long ping":         append([]byte{0x89, 126, 0, 126}, make([]byte, 126)...),
		"opcode 3":          {0x83, 0x00},
	} {
		t.Run(name, func(t *testing.T) {
			w, srv := pipeConn(t)
			go srv.Write(frame)
			if _, _, err := w.read(); err == nil {
				t.Fatal("read accepted it")
			}
		})
	}
}

func TestReadClose(t *testing.T) {
	w, srv := pipeConn(t)
	go srv.Write([]byte{0x88, 0x05, 0x03, 0xE9, 'b', 'y', 'e'})
	got := nextFrame(srv)
	_, _, err := w.read()
	var ce *closeError
	if !errors.As(err, &ce) || ce.code != 1001 || ce.reason != "bye" {
		t.Fatalf("read: %v; want a close 1001 \"bye\"", err)
	}
	if f := <-got; f.err != nil || f.op != opClose || !bytes.Equal(f.p, []byte{0x03, 0xE9}) {
		t.Fatalf("close answered with opcode %d %x %v; want a close 03e9", f.op, f.p, f.err)
	}
}

// A close we began is not answered again when the server's close frame comes back.
func TestCloseAnswerNotAnswered(t *testing.T) {
	w, srv := pipeConn(t)
	ours := nextFrame(srv)
	done := make(chan error, 1)
	go func() { done <- w.close(5 * time.Second) }()
	if f := <-ours; f.err != nil || f.op != opClose || !bytes.Equal(f.p, []byte{0x03, 0xE8}) {
		t.Fatalf("close sent as opcode %d %x %v; want a close 03e8", f.op, f.p, f.err)
	}
	after := nextFrame(srv)
	srv.Write([]byte{0x88, 0x02, 0x03, 0xE8})
	srv.Close()
	if err := <-done; err != nil {
		t.Fatalf("close: %v; want a clean end", err)
	}
	if f := <-after; f.err == nil {
		t.Fatalf("the client answered the server's close with opcode %d %x", f.op, f.p)
	}
}

// Every length encoding, from the client's side, unmasked by the test.
func TestWriteLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		w, srv := pipeConn(t)
		p := make([]byte, n)
		fillMessage(p, 7, n)
		got := nextFrame(srv)
		if err := w.write(opBinary, p); err != nil {
			t.Fatal(err)
		}
		if f := <-got; f.err != nil || f.op != opBinary || !bytes.Equal(f.p, p) {
			t.Fatalf("%d bytes: opcode %d, %d bytes, equal %v, %v", n, f.op, len(f.p), bytes.Equal(f.p, p), f.err)
		}
	}
}

// The whole client (handshake, echo, close) against golang.org/x/net/websocket's
// server, which echoes each message with its own opcode.
func TestEchoAgainstXNet(t *testing.T) {
	var last byte
	codec := websocket.Codec{
		Marshal: func(v any) ([]byte, byte, error) { return v.([]byte), last, nil },
		Unmarshal: func(data []byte, pt byte, v any) error {
			*(v.(*[]byte)) = append([]byte(nil), data...)
			last = pt
			return nil
		},
	}
	// websocket.Server without a Handshake takes any Origin (or none, as this client).
	srv := httptest.NewServer(websocket.Server{Handler: func(c *websocket.Conn) {
		for {
			var m []byte
			if err := codec.Receive(c, &m); err != nil {
				return
			}
			if err := codec.Send(c, m); err != nil {
				return
			}
		}
	}})
	defer srv.Close()
	u, _ := url.Parse("ws://" + strings.TrimPrefix(srv.URL, "http://") + "/")
	w, err := wsDial(u, nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	w.c.SetDeadline(time.Now().Add(10 * time.Second))
	for i, size := range []int{1, 64, 126, 16 << 10, 70000} {
		for _, op := range []byte{opText, opBinary} {
			p := make([]byte, size)
			fillMessage(p, 1, i)
			if err := w.echo(op, p); err != nil {
				t.Fatalf("%d bytes, opcode %d: %v", size, op, err)
			}
		}
	}
	if err := w.close(5 * time.Second); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("close: %v", err)
	}
}

func TestDialRefusesWrongAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1024)
		c.Read(buf)
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
	}()
	u, _ := url.Parse("ws://" + ln.Addr().String() + "/")
	if _, err := wsDial(u, nil, 5*time.Second); err == nil || !strings.Contains(err.Error(), "Sec-WebSocket-Accept") {
		t.Fatalf("dial: %v; want the accept key refused", err)
	}
}
