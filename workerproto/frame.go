package workerproto

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MaxFrame is the largest control-frame length (the map bytes, without the 4-byte
// prefix), PROTOCOL.md 1.2.
const MaxFrame = 1 << 20

// FrameHeaderLen is the size of the control-frame length prefix.
const FrameHeaderLen = 4

// ParseFrame parses one control frame (u32 LE length, then a MessagePack map) from
// the start of b and returns the message and the number of bytes it took. A b that
// holds only a prefix of a frame gives ErrTruncated; a length of 0 gives
// ErrZeroLength and one over MaxFrame ErrFrameTooLarge (both as soon as the prefix is
// readable, without waiting for the body).
func ParseFrame(b []byte) (Message, int, error) {
	n, err := frameLen(b)
	if err != nil {
		return nil, 0, err
	}
	if len(b)-FrameHeaderLen < n {
		return nil, 0, ErrTruncated
	}
	m, err := DecodeMessage(b[FrameHeaderLen : FrameHeaderLen+n])
	if err != nil {
		return nil, 0, err
	}
	return m, FrameHeaderLen + n, nil
}

// frameLen reads and checks the length prefix.
func frameLen(b []byte) (int, error) {
	if len(b) < FrameHeaderLen {
		return 0, ErrTruncated
	}
	n := binary.LittleEndian.Uint32(b)
	switch {
	case n == 0:
		return 0, ErrZeroLength
	case n > MaxFrame:
		return 0, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	return int(n), nil
}

// AppendFrame appends m as a control frame (length prefix and map) to b.
func AppendFrame(b []byte, m Message) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b, err := AppendMessage(b, m)
	if err != nil {
		return b[:start], err
	}
	n := len(b) - start - FrameHeaderLen
	if n > MaxFrame {
		return b[:start], fmt.Errorf("%w: %s message of %d bytes", ErrFrameTooLarge, m.Type(), n)
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(n))
	return b, nil
}

// ReadFrame reads one control frame from r and returns its map bytes (without the
// prefix), reusing buf's memory when it is large enough. A stream that ends inside a
// frame gives an error wrapping ErrTruncated; one that ends before a frame gives
// io.EOF.
func ReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [FrameHeaderLen]byte
	if k, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF && k == 0 {
			return nil, io.EOF
		}
		return nil, truncatedRead(err)
	}
	n, err := frameLen(hdr[:])
	if err != nil {
		return nil, err
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, truncatedRead(err)
	}
	return buf, nil
}

func truncatedRead(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: stream ended inside a frame", ErrTruncated)
	}
	return err
}

// ReadMessage reads and decodes one control frame from r.
func ReadMessage(r io.Reader) (Message, error) {
	b, err := ReadFrame(r, nil)
	if err != nil {
		return nil, err
	}
	return DecodeMessage(b)
}

// WriteMessage writes m to w as one control frame, in one Write call.
func WriteMessage(w io.Writer, m Message) error {
	b, err := AppendFrame(nil, m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
