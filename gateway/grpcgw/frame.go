package grpcgw

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// gRPC's length-prefixed messages (gRPC's HTTP/2 protocol, "Length-Prefixed-Message"):
// a 1-byte compressed flag, a 4-byte big-endian length, the message.
const (
	prefixLen = 5
	// maxMessage bounds a request message the gateway's own services take,
	// before and after decompression (gRPC's usual default receive limit).
	maxMessage = 4 << 20
)

// callError is a failure answered to the client as a gRPC status.
type callError struct {
	code Code
	msg  string
}

func (e *callError) Error() string { return "grpcgw: " + e.code.String() + ": " + e.msg }

func statusErr(code Code, format string, args ...any) error {
	return &callError{code: code, msg: fmt.Sprintf(format, args...)}
}

// msgReader reads the length-prefixed messages of a request body. next
// returns io.EOF after the last whole message, a *callError for a body that
// breaks gRPC's framing or limits, and the body's own error when it broke off.
type msgReader struct {
	r        io.Reader
	encoding string // the request's grpc-encoding, "" for none
	hdr      [prefixLen]byte
	buf      []byte // the last message; reused
	gz       *gzip.Reader
}

// next returns the next message; it is valid until the following call.
func (m *msgReader) next() ([]byte, error) {
	if _, err := io.ReadFull(m.r, m.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, statusErr(Internal, "request body ends inside a message prefix")
		}
		return nil, err // io.EOF: no more messages
	}
	flag, n := m.hdr[0], binary.BigEndian.Uint32(m.hdr[1:])
	if flag > 1 {
		return nil, statusErr(Internal, "invalid message flag %#x", flag)
	}
	if n > maxMessage {
		return nil, statusErr(ResourceExhausted, "received message larger than max (%d vs. %d)", n, maxMessage)
	}
	if cap(m.buf) < int(n) {
		m.buf = make([]byte, n)
	}
	m.buf = m.buf[:n]
	if _, err := io.ReadFull(m.r, m.buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, statusErr(Internal, "request body ends inside a message")
		}
		return nil, err
	}
	if flag == 0 {
		return m.buf, nil
	}
	switch m.encoding {
	case "gzip":
		return m.gunzip()
	case "", "identity":
		return nil, statusErr(Internal, "compressed message without a grpc-encoding")
	default:
		return nil, statusErr(Unimplemented, "message compressed with %q, which is not supported (gzip is)", m.encoding)
	}
}

// gunzip decompresses m.buf within maxMessage.
func (m *msgReader) gunzip() ([]byte, error) {
	var err error
	if m.gz == nil {
		m.gz, err = gzip.NewReader(bytes.NewReader(m.buf))
	} else {
		err = m.gz.Reset(bytes.NewReader(m.buf))
	}
	if err != nil {
		return nil, statusErr(Internal, "invalid gzip message: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(m.gz, maxMessage+1))
	if err != nil {
		return nil, statusErr(Internal, "invalid gzip message: %v", err)
	}
	if len(out) > maxMessage {
		return nil, statusErr(ResourceExhausted, "decompressed message larger than max (%d)", maxMessage)
	}
	return out, nil
}

// appendMessage appends m as an uncompressed length-prefixed message to dst.
func appendMessage(dst []byte, m proto.Message) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, prefixLen)...)
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, m)
	if err != nil {
		return dst[:start], err
	}
	// proto.Marshal refuses a message of 2 GiB or more, so the length fits.
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-prefixLen))
	return dst, nil
}
