package grpcgw

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/workerproto"
)

// mode is how a request speaks gRPC, from its content-type.
type mode uint8

const (
	notGRPC mode = iota
	native       // application/grpc, application/grpc+proto, application/grpc;...
	web          // application/grpc-web, +proto: gRPC-Web, binary
	webText      // application/grpc-web-text, +proto: gRPC-Web, base64
)

const (
	ctGRPC    = "application/grpc"
	ctWeb     = "application/grpc-web"
	ctWebText = "application/grpc-web-text"
)

// classify reads a content-type (any case) as PROTOCOL.md 2.10 does: a type
// is gRPC's when it is one of the three or continues it with '+' (a message
// format, +proto) or ';' (parameters).
func classify(ct []byte) mode {
	switch {
	case typeIs(ct, ctWebText):
		return webText
	case typeIs(ct, ctWeb):
		return web
	case typeIs(ct, ctGRPC):
		return native
	}
	return notGRPC
}

// typeIs reports whether ct is base, or base followed by '+' or ';'.
func typeIs(ct []byte, base string) bool {
	if len(ct) < len(base) || !workerproto.NameIs(ct[:len(base)], base) {
		return false
	}
	return len(ct) == len(base) || ct[len(base)] == '+' || ct[len(base)] == ';'
}

// ContentIsGRPC reports whether a request's content-type is gRPC's, native or
// gRPC-Web: a front end answers such a request that no route serves with a
// gRPC status (UNIMPLEMENTED), not an HTTP one.
func ContentIsGRPC(contentType string) bool {
	return classify([]byte(contentType)) != notGRPC
}

// ContentIsNative reports whether a request's content-type is native gRPC's
// (not gRPC-Web): its body streams both ways, message by message.
func ContentIsNative(contentType string) bool {
	return classify([]byte(contentType)) == native
}

// retype returns ct with its gRPC-Web base (of m) replaced by to: the
// content-type a worker sees for a gRPC-Web request (to ctGRPC), and the
// one a gRPC-Web client sees for the worker's answer (from ctGRPC).
func retype(ct []byte, from, to string) []byte {
	b := make([]byte, 0, len(to)+len(ct)-len(from))
	b = append(b, to...)
	return append(b, ct[len(from):]...)
}

// webBase is the content-type base a gRPC-Web client of mode m speaks.
func webBase(m mode) string {
	if m == webText {
		return ctWebText
	}
	return ctWeb
}

// trailerFrame is gRPC-Web's trailer message: flag 0x80, the length (u32
// big-endian), then each field as "name: value\r\n", names lower-case.
func trailerFrame(hs []workerproto.Header) []byte {
	n := 0
	for _, h := range hs {
		n += len(h.Name) + 2 + len(h.Value) + 2
	}
	b := make([]byte, prefixLen, prefixLen+n)
	b[0] = 0x80
	binary.BigEndian.PutUint32(b[1:], uint32(n))
	for _, h := range hs {
		for _, c := range h.Name {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		b = append(b, ':', ' ')
		b = append(b, h.Value...)
		b = append(b, '\r', '\n')
	}
	return b
}

// errBadText: a gRPC-Web text request body that is not base64.
var errBadText = errors.New("grpcgw: gRPC-Web text body is not base64")

// decodeQuanta decodes the whole 4-character quanta at the start of src,
// appending the bytes to dst, and returns the characters left over (fewer
// than 4). A quantum may end in padding anywhere in the stream: gRPC-Web
// text clients may send each message's base64, padded, one after another.
func decodeQuanta(dst, src []byte) ([]byte, []byte, error) {
	for len(src) >= 4 {
		n := len(src) &^ 3
		// Up to the end of the first quantum holding padding, which must
		// be decoded on its own (padding only ends a base64 text).
		for i := 0; i < n; i++ {
			if src[i] == '=' {
				n = i&^3 + 4
				break
			}
		}
		start := len(dst)
		dst = append(dst, make([]byte, base64.StdEncoding.DecodedLen(n))...)
		k, err := base64.StdEncoding.Decode(dst[start:], src[:n])
		if err != nil {
			return dst[:start], src, errBadText
		}
		dst, src = dst[:start+k], src[n:]
	}
	return dst, src, nil
}

// textBody is a gRPC-Web text request body (a dispatch.BodyStream) decoded
// from base64 as it streams in.
type textBody struct {
	src  dispatch.BodyStream
	raw  []byte // base64 read and not yet decoded, then fewer than 4 characters
	out  []byte // decoded, not yet read
	done bool   // src ended
	err  error
}

func newTextBody(src dispatch.BodyStream) *textBody {
	return &textBody{src: src, raw: make([]byte, 0, 16<<10)}
}

// Read implements dispatch.BodyStream.
func (t *textBody) Read(p []byte) (int, error) {
	for len(t.out) == 0 {
		if t.err != nil {
			return 0, t.err
		}
		if t.done {
			if len(t.raw) > 0 {
				t.err = errBadText // a quantum broken off
				continue
			}
			t.err = io.EOF
			continue
		}
		n, err := t.src.Read(t.raw[len(t.raw):cap(t.raw)])
		t.raw = t.raw[:len(t.raw)+n]
		if err == io.EOF {
			t.done = true
		} else if err != nil {
			t.err = err
		}
		var rest []byte
		var derr error
		t.out, rest, derr = decodeQuanta(t.out[:0], t.raw)
		if derr != nil {
			t.err, t.out = derr, t.out[:0]
			continue
		}
		t.raw = t.raw[:copy(t.raw, rest)]
	}
	n := copy(p, t.out)
	t.out = t.out[n:]
	return n, nil
}

// Stop implements dispatch.BodyStream.
func (t *textBody) Stop() { t.src.Stop() }
