package shmring

import (
	"encoding/binary"
	"errors"
	"testing"
)

// TestConsumerRejectsCorruptRecords scribbles on one committed record (or on tail)
// and expects Poll to return ErrCorrupt with the right reason, without delivering
// the bad record, and to keep returning it.
func TestConsumerRejectsCorruptRecords(t *testing.T) {
	const capacity = 4096
	le := binary.LittleEndian
	cases := []struct {
		name   string
		mutate func(r *Ring) // the good record (24+10 bytes) sits at index 0
		reason string
	}{
		{"length 4", func(r *Ring) { le.PutUint32(r.buf[0:], 4) }, "below 8"},
		{"length negative", func(r *Ring) { le.PutUint32(r.buf[0:], 0x80000000) }, "below 8"},
		{"frame length 16", func(r *Ring) { le.PutUint32(r.buf[0:], 16) }, "below 24"},
		{"length above max_record", func(r *Ring) { le.PutUint32(r.buf[0:], capacity/8+1) }, "above capacity/8"},
		{"type 0", func(r *Ring) { le.PutUint32(r.buf[4:], 0) }, "invalid record type"},
		{"type 2", func(r *Ring) { le.PutUint32(r.buf[4:], 2) }, "invalid record type"},
		{"type 15", func(r *Ring) { le.PutUint32(r.buf[4:], 15) }, "invalid record type"},
		{"type 128", func(r *Ring) { le.PutUint32(r.buf[4:], 128) }, "invalid record type"},
		{"type -1", func(r *Ring) { le.PutUint32(r.buf[4:], 0xffffffff) }, "invalid record type"},
		{"reserved", func(r *Ring) { le.PutUint32(r.buf[20:], 1) }, "reserved"},
		{"PAD short of the end", func(r *Ring) { le.PutUint32(r.buf[4:], 1) }, "wrap point"},
		{"tail behind record", func(r *Ring) { putU64(r, CtlTail, 8) }, "beyond tail"},
		{"tail misaligned", func(r *Ring) { putU64(r, CtlTail, 41) }, "misaligned"},
		{"tail beyond head+capacity", func(r *Ring) { putU64(r, CtlTail, capacity+8) }, "more than capacity"},
		{"tail huge", func(r *Ring) { putU64(r, CtlTail, 1<<63) }, "out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newHeapRing(t, capacity)
			p := NewMPSCProducer(r, nil)
			c := mustConsumer(t, r)
			if err := p.TryWrite(16, 1, 3, make([]byte, 10)); err != nil {
				t.Fatal(err)
			}
			tc.mutate(r)
			n, err := c.Poll(func(f Frame) error {
				t.Fatalf("corrupt record delivered: %+v", f)
				return nil
			})
			if n != 0 {
				t.Fatalf("n = %d", n)
			}
			wantCorrupt(t, err, tc.reason)
			if _, err2 := c.Poll(func(Frame) error { return nil }); err2 != err {
				t.Fatalf("second Poll: %v, want the same sticky error", err2)
			}
		})
	}
}

// TestConsumerRejectsRecordsCrossingTheEnd puts records near the wrap point.
func TestConsumerRejectsRecordsCrossingTheEnd(t *testing.T) {
	const capacity = 4096
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		typ    uint32
		length uint32
		reason string
	}{
		{"frame crossing", 16, 40, "crosses the end"},
		{"PAD crossing", 1, 40, "crosses the end"},
		{"PAD too short", 1, 8, "wrap point"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHeapRing(t, capacity)
			startAt(r, capacity-32)
			putU64(r, CtlTail, capacity+64)
			c := mustConsumer(t, r)
			le.PutUint32(r.buf[capacity-32+4:], tc.typ)
			le.PutUint32(r.buf[capacity-32:], tc.length)
			_, err := c.Poll(func(Frame) error { return nil })
			wantCorrupt(t, err, tc.reason)
		})
	}
}

func TestConsumerRejectsBadHeadTailAtStart(t *testing.T) {
	for _, tc := range []struct {
		name       string
		head, tail uint64
		reason     string
	}{
		{"head misaligned", 4, 8, "head misaligned"},
		{"tail misaligned", 8, 12, "tail misaligned"},
		{"head beyond tail", 64, 8, "tail behind head"},
		{"tail beyond head+capacity", 0, 4096 + 8, "more than capacity"},
		{"head huge", 1 << 63, 1 << 63, "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, role := range []string{"consumer", "spsc"} {
				r := newHeapRing(t, 4096)
				putU64(r, CtlHead, tc.head)
				putU64(r, CtlTail, tc.tail)
				var err error
				if role == "consumer" {
					_, err = NewConsumer(r, nil)
				} else {
					_, err = NewSPSCProducer(r, nil)
				}
				wantCorrupt(t, err, tc.reason)
			}
		})
	}
}

// TestProducersRejectScribbledControlFields: the consumer (a worker, on the request
// ring) can write head, head_cache and tail; producers must notice, not misbehave.
func TestProducersRejectScribbledControlFields(t *testing.T) {
	fill := func(t *testing.T, p Producer) {
		for i := range 8 { // fill the ring so the next write must read head
			if err := p.TryWrite(16, uint64(i), 0, make([]byte, p.MaxPayload())); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("mpsc", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			full   bool
			off    int
			v      uint64
			reason string
		}{
			{"tail misaligned", false, CtlTail, 3, "tail misaligned"},
			{"tail huge", false, CtlTail, 1 << 62, "out of range"},
			{"head_cache beyond tail", false, CtlHeadCache, 4096, "head_cache"},
			{"head_cache misaligned", false, CtlHeadCache, 1, "head_cache"},
			{"head misaligned", true, CtlHead, 4, "head misaligned"},
			{"head beyond tail", true, CtlHead, 8192, "outside"},
			{"head far behind tail", true, CtlHead, 0, ""}, // honest-looking: just full
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := newHeapRing(t, 4096)
				p := NewMPSCProducer(r, nil)
				if tc.full {
					fill(t, p)
				}
				putU64(r, tc.off, tc.v)
				err := p.TryWrite(16, 1, 0, nil)
				if tc.reason == "" {
					if err != ErrFull {
						t.Fatalf("got %v, want ErrFull", err)
					}
					return
				}
				wantCorrupt(t, err, tc.reason)
			})
		}
	})
	t.Run("spsc", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			v      uint64
			reason string
		}{
			{"head misaligned", 4, "head misaligned"},
			{"head beyond tail", 4096 + 8, "outside"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := newHeapRing(t, 4096)
				p := mustSPSC(t, r)
				fill(t, p)
				putU64(r, CtlHead, tc.v)
				wantCorrupt(t, p.TryWrite(16, 1, 0, nil), tc.reason)
			})
		}
		// A scribbled shared tail does not move the SPSC producer.
		r := newHeapRing(t, 4096)
		p := mustSPSC(t, r)
		c := mustConsumer(t, r)
		putU64(r, CtlTail, 1000)
		if err := p.TryWrite(33, 1, 0, []byte("ok")); err != nil {
			t.Fatal(err)
		}
		if getU64(r, CtlTail) != 32 {
			t.Fatalf("tail = %d, want 32", getU64(r, CtlTail))
		}
		if got := pollAll(t, c); len(got) != 1 || string(got[0].payload) != "ok" {
			t.Fatalf("%+v", got)
		}
	})
}

func TestCorruptErrorText(t *testing.T) {
	r := newHeapRing(t, 4096)
	err := r.corruptAt(4096+16, "record length below 8", 3)
	want := "shmring: request ring corrupt at segment offset 5136: record length below 8 (value 3)"
	if err.Error() != want {
		t.Fatalf("got %q\nwant %q", err, want)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatal("does not wrap ErrCorrupt")
	}
}
