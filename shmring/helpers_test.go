package shmring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"
)

// newHeapRing makes a ring over Go heap memory. Unlike a mapped segment, the race
// detector sees every access to it, so tests over heap rings also check the
// package's happens-before edges.
func newHeapRing(_ testing.TB, capacity uint64) *Ring {
	words := make([]uint64, (ControlBlockSize+capacity)/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	return newRing("request ring", HeaderSize, mem, capacity)
}

// ctlBytes is the ring's control block as a slice, for scribbling.
func ctlBytes(r *Ring) []byte { return unsafe.Slice((*byte)(r.ctl), ControlBlockSize) }

func putU64(r *Ring, off int, v uint64) { binary.LittleEndian.PutUint64(ctlBytes(r)[off:], v) }
func getU64(r *Ring, off int) uint64    { return binary.LittleEndian.Uint64(ctlBytes(r)[off:]) }
func getU32(r *Ring, off int) uint32    { return binary.LittleEndian.Uint32(ctlBytes(r)[off:]) }

// pattern fills a payload deterministically from a seed.
func pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

type polled struct {
	Frame
	payload []byte // copied
}

// pollAll polls until the ring is empty and returns copies of the frames.
func pollAll(tb testing.TB, c *Consumer) []polled {
	tb.Helper()
	var out []polled
	for {
		n, err := c.Poll(func(f Frame) error {
			out = append(out, polled{Frame: f, payload: bytes.Clone(f.Payload)})
			return nil
		})
		if err != nil {
			tb.Fatalf("Poll: %v", err)
		}
		if n == 0 && !c.Ready() {
			return out
		}
	}
}

func mustConsumer(tb testing.TB, r *Ring) *Consumer {
	tb.Helper()
	c, err := NewConsumer(r, nil)
	if err != nil {
		tb.Fatalf("NewConsumer: %v", err)
	}
	return c
}

func mustSPSC(tb testing.TB, r *Ring) *SPSCProducer {
	tb.Helper()
	p, err := NewSPSCProducer(r, nil)
	if err != nil {
		tb.Fatalf("NewSPSCProducer: %v", err)
	}
	return p
}

// wantCorrupt fails unless err wraps ErrCorrupt and its text contains reason.
func wantCorrupt(tb testing.TB, err error, reason string) {
	tb.Helper()
	if !errors.Is(err, ErrCorrupt) {
		tb.Fatalf("got error %v, want one wrapping ErrCorrupt (%q)", err, reason)
	}
	var ce *CorruptError
	var me *MessageError
	switch {
	case errors.As(err, &ce):
		if !bytes.Contains([]byte(ce.Reason), []byte(reason)) {
			tb.Fatalf("got reason %q, want %q", ce.Reason, reason)
		}
	case errors.As(err, &me):
		if !bytes.Contains([]byte(me.Reason), []byte(reason)) {
			tb.Fatalf("got reason %q, want %q", me.Reason, reason)
		}
	default:
		tb.Fatalf("error %T is neither *CorruptError nor *MessageError", err)
	}
}

// producers lists the two producer kinds over fresh heap rings, for table tests.
func producers(tb testing.TB, capacity uint64) map[string]func() (*Ring, Producer) {
	return map[string]func() (*Ring, Producer){
		"mpsc": func() (*Ring, Producer) {
			r := newHeapRing(tb, capacity)
			return r, NewMPSCProducer(r, nil)
		},
		"spsc": func() (*Ring, Producer) {
			r := newHeapRing(tb, capacity)
			return r, mustSPSC(tb, r)
		},
	}
}
