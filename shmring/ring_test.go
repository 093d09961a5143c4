package shmring

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
)

// startAt makes an empty ring look as if pos bytes had already passed through it.
func startAt(r *Ring, pos uint64) {
	putU64(r, CtlTail, pos)
	putU64(r, CtlHeadCache, pos)
	putU64(r, CtlHead, pos)
}

func dataU32(r *Ring, idx uint64) uint32 { return binary.LittleEndian.Uint32(r.buf[idx:]) }

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func TestWrapWithPadding(t *testing.T) {
	for name, mk := range producers(t, 4096) {
		t.Run(name, func(t *testing.T) {
			r, _ := mk()
			startAt(r, 4096-16)
			p := newProducerLike(t, name, r)
			c := mustConsumer(t, r)
			payload := pattern(1, 40) // record 64 bytes: does not fit in the last 16
			if err := p.TryWrite(17, 7, FlagBegin, payload); err != nil {
				t.Fatal(err)
			}
			if got := getU64(r, CtlTail); got != 4096-16+16+64 {
				t.Fatalf("tail = %d, want %d", got, 4096+64)
			}
			if l, typ := dataU32(r, 4080), dataU32(r, 4084); l != 16 || typ != uint32(TypePad) {
				t.Fatalf("PAD at 4080: length %d type %d, want 16, 1", l, typ)
			}
			if l := dataU32(r, 0); l != 24+40 {
				t.Fatalf("record at 0: length %d, want 64", l)
			}
			got := pollAll(t, c)
			if len(got) != 1 || got[0].Type != 17 || got[0].ID != 7 || got[0].Flags != FlagBegin || !bytes.Equal(got[0].payload, payload) {
				t.Fatalf("polled %+v", got)
			}
			if h := getU64(r, CtlHead); h != 4096+64 {
				t.Fatalf("head = %d, want %d", h, 4096+64)
			}
			if !allZero(r.buf) {
				t.Fatal("consumed bytes (PAD included) not zeroed")
			}
		})
	}
}

// newProducerLike builds the named producer kind over r (after startAt).
func newProducerLike(tb testing.TB, kind string, r *Ring) Producer {
	if kind == "mpsc" {
		return NewMPSCProducer(r, nil)
	}
	return mustSPSC(tb, r)
}

func TestExactFitAtEnd(t *testing.T) {
	for name, mk := range producers(t, 4096) {
		t.Run(name, func(t *testing.T) {
			r, _ := mk()
			startAt(r, 3*4096-64)
			p := newProducerLike(t, name, r)
			c := mustConsumer(t, r)
			// 24 + 37 = 61 bytes, padded to 64: exactly the room left, so no PAD.
			if err := p.TryWrite(33, 1, 0, pattern(2, 37)); err != nil {
				t.Fatal(err)
			}
			if err := p.TryWrite(33, 2, 0, pattern(3, 3)); err != nil {
				t.Fatal(err)
			}
			if got := getU64(r, CtlTail); got != 3*4096+32 {
				t.Fatalf("tail = %d, want %d", got, 3*4096+32)
			}
			if l, typ := dataU32(r, 4096-64), dataU32(r, 4096-60); l != 61 || typ != 33 {
				t.Fatalf("last record: length %d type %d", l, typ)
			}
			if l := dataU32(r, 0); l != 27 {
				t.Fatalf("record at 0: length %d, want 27", l)
			}
			got := pollAll(t, c)
			if len(got) != 2 || !bytes.Equal(got[0].payload, pattern(2, 37)) || !bytes.Equal(got[1].payload, pattern(3, 3)) {
				t.Fatalf("polled %+v", got)
			}
			if !allZero(r.buf) {
				t.Fatal("not zeroed")
			}
		})
	}
}

func TestFullAndTooLarge(t *testing.T) {
	for name, mk := range producers(t, 4096) {
		t.Run(name, func(t *testing.T) {
			r, p := mk()
			c := mustConsumer(t, r)
			max := p.MaxPayload()
			if max != 4096/8-24 {
				t.Fatalf("MaxPayload = %d", max)
			}
			if err := p.TryWrite(16, 1, 0, make([]byte, max+1)); err != ErrTooLarge {
				t.Fatalf("oversize: %v, want ErrTooLarge", err)
			}
			for _, typ := range []int32{0, TypePad, 15, 128, -1} {
				if err := p.TryWrite(typ, 1, 0, nil); err != ErrInvalid {
					t.Fatalf("type %d: %v, want ErrInvalid", typ, err)
				}
			}
			// 8 records of 512 bytes fill 4096 exactly.
			for i := range 8 {
				if err := p.TryWrite(16, uint64(i), 0, make([]byte, max)); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			if err := p.TryWrite(16, 9, 0, nil); err != ErrFull {
				t.Fatalf("write to a full ring: %v, want ErrFull", err)
			}
			// Consume one record: exactly one more fits.
			if n, err := c.Poll(func(Frame) error { return errStop }); n != 1 || err != errStop {
				t.Fatalf("Poll = %d, %v", n, err)
			}
			if err := p.TryWrite(16, 9, 0, make([]byte, max)); err != nil {
				t.Fatalf("after release: %v", err)
			}
			if err := p.TryWrite(16, 10, 0, nil); err != ErrFull {
				t.Fatalf("full again: %v", err)
			}
			if got := len(pollAll(t, c)); got != 8 {
				t.Fatalf("polled %d, want 8", got)
			}
		})
	}
}

var errStop = errors.New("stop")

func TestPollCallbackErrorConsumesFrame(t *testing.T) {
	r := newHeapRing(t, 4096)
	p := NewMPSCProducer(r, nil)
	c := mustConsumer(t, r)
	for i := range 3 {
		if err := p.TryWrite(16, uint64(i), 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.Poll(func(f Frame) error {
		if f.ID == 1 {
			return errStop
		}
		return nil
	})
	if n != 2 || err != errStop {
		t.Fatalf("Poll = %d, %v; want 2, errStop", n, err)
	}
	if c.Head() != 48 || getU64(r, CtlHead) != 48 {
		t.Fatalf("head = %d/%d, want 48", c.Head(), getU64(r, CtlHead))
	}
	got := pollAll(t, c) // not sticky
	if len(got) != 1 || got[0].ID != 2 {
		t.Fatalf("after error: %+v", got)
	}
}

func TestZeroedAfterConsume(t *testing.T) {
	r := newHeapRing(t, 8192)
	p := mustSPSC(t, r)
	c := mustConsumer(t, r)
	var total uint64
	for i := range 40 {
		pl := pattern(uint64(i), i*13%p.MaxPayload())
		if err := p.TryWrite(33, uint64(i), 0, pl); err != nil {
			t.Fatal(err)
		}
		total += align8(uint64(24 + len(pl)))
		if i%3 == 2 {
			pollAll(t, c)
			if !allZero(r.buf) {
				t.Fatalf("after %d records: data not zeroed", i+1)
			}
			if h := getU64(r, CtlHead); h < total {
				t.Fatalf("head %d < %d", h, total)
			}
		}
	}
}

func TestPayloadCapacityIsLength(t *testing.T) {
	r := newHeapRing(t, 4096)
	p := NewMPSCProducer(r, nil)
	c := mustConsumer(t, r)
	p.TryWrite(16, 1, 0, []byte("abc"))
	p.TryWrite(16, 2, 0, []byte("def"))
	c.Poll(func(f Frame) error {
		if cap(f.Payload) != len(f.Payload) {
			t.Fatalf("cap %d != len %d", cap(f.Payload), len(f.Payload))
		}
		return nil
	})
}

// collectMessages polls c and assembles whole messages, checking fragment flags.
func collectMessages(t *testing.T, c *Consumer, max int) (msgs [][]byte, frames []Frame) {
	a := &Assembler{MaxMessage: max}
	for _, f := range pollAll(t, c) {
		frames = append(frames, f.Frame)
		f.Payload = f.payload
		m, done, err := a.Add(f.Frame)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			msgs = append(msgs, bytes.Clone(m))
		}
	}
	if a.Open() != 0 {
		t.Fatalf("%d messages left open", a.Open())
	}
	return msgs, frames
}

func TestFragmentRoundTrip(t *testing.T) {
	const capacity = 1 << 16
	mp := MaxPayload(capacity)
	sizes := []int{0, 1, mp - 1, mp, mp + 1, 2 * mp, 3*mp + 7}
	for name, mk := range producers(t, capacity) {
		t.Run(name, func(t *testing.T) {
			r, p := mk()
			c := mustConsumer(t, r)
			w := &Writer{Producer: p}
			for _, n := range sizes {
				want := pattern(uint64(n), n)
				if err := w.WriteMessage(context.Background(), 32, uint64(n), 0x8, want); err != nil {
					t.Fatalf("size %d: %v", n, err)
				}
				msgs, frames := collectMessages(t, c, 4*mp)
				if len(msgs) != 1 || !bytes.Equal(msgs[0], want) {
					t.Fatalf("size %d: assembled %d messages", n, len(msgs))
				}
				nf := max(1, (n+mp-1)/mp)
				if len(frames) != nf {
					t.Fatalf("size %d: %d frames, want %d", n, len(frames), nf)
				}
				for i, f := range frames {
					want := uint32(0x8)
					if i == 0 {
						want |= FlagBegin
					}
					if i == nf-1 {
						want |= FlagEnd
					}
					if f.Flags != want || f.ID != uint64(n) || f.Type != 32 {
						t.Fatalf("size %d frame %d: %+v, want flags %#x", n, i, f, want)
					}
				}
			}
		})
	}
}

func TestStream(t *testing.T) {
	r := newHeapRing(t, 4096)
	c := mustConsumer(t, r)
	w := &Writer{Producer: NewMPSCProducer(r, nil)}
	ctx := context.Background()
	max := w.Producer.MaxPayload()

	s := w.Stream(17, 5, 0)
	if err := s.Write(ctx, nil); err != nil { // nothing sent
		t.Fatal(err)
	}
	if err := s.Write(ctx, pattern(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, pattern(2, max+1)); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx, nil, 0x8); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []byte("x")); err != ErrInvalid {
		t.Fatalf("Write after End: %v", err)
	}
	msgs, frames := collectMessages(t, c, 1<<20)
	wantFlags := []uint32{FlagBegin, 0, 0, FlagEnd | 0x8}
	if len(frames) != len(wantFlags) {
		t.Fatalf("%d frames", len(frames))
	}
	for i, f := range frames {
		if f.Flags != wantFlags[i] {
			t.Fatalf("frame %d flags %#x, want %#x", i, f.Flags, wantFlags[i])
		}
	}
	want := append(pattern(1, 10), pattern(2, max+1)...)
	if len(msgs) != 1 || !bytes.Equal(msgs[0], want) {
		t.Fatal("stream payload mismatch")
	}

	// A stream ended before any Write is one BEGIN|END frame, even if empty.
	s = w.Stream(17, 6, 0)
	if err := s.End(ctx, nil, 0); err != nil {
		t.Fatal(err)
	}
	_, frames = collectMessages(t, c, 1<<20)
	if len(frames) != 1 || frames[0].Flags != FlagBegin|FlagEnd || len(frames[0].Payload) != 0 {
		t.Fatalf("empty stream: %+v", frames)
	}

	if err := w.WriteMessage(ctx, 17, 1, FlagEnd, nil); err != ErrInvalid {
		t.Fatalf("WriteMessage with FlagEnd: %v", err)
	}
	s = w.Stream(17, 1, FlagBegin)
	if err := s.Write(ctx, []byte("x")); err != ErrInvalid {
		t.Fatalf("Stream with FlagBegin: %v", err)
	}
}

func TestWriterWithoutSpaceReturnsFull(t *testing.T) {
	r := newHeapRing(t, 4096)
	w := &Writer{Producer: NewMPSCProducer(r, nil)}
	err := w.WriteMessage(context.Background(), 17, 1, 0, make([]byte, 5000))
	if err != ErrFull {
		t.Fatalf("got %v, want ErrFull", err)
	}
}
