package shmring

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

const fuzzCapacity = 4096

// encodedRing returns a ring's data, head and tail after writing frames of the
// given payload sizes, starting from position start. It seeds FuzzConsumerPoll.
func encodedRing(start uint64, sizes ...int) ([]byte, uint64, uint64) {
	r := newHeapRing(nil, fuzzCapacity)
	startAt(r, start)
	p := NewMPSCProducer(r, nil)
	for i, n := range sizes {
		p.TryWrite(int32(16+i%100), uint64(i)<<32|uint64(n), uint32(i), pattern(uint64(i), n))
	}
	return bytes.TrimRight(r.buf, "\x00"), getU64(r, CtlHead), getU64(r, CtlTail)
}

type ringSeed struct {
	data       []byte
	head, tail uint64
}

func fuzzRingSeeds() []ringSeed {
	var seeds []ringSeed
	add := func(b []byte, h, t uint64) { seeds = append(seeds, ringSeed{b, h, t}) }
	add(encodedRing(0))
	add(encodedRing(0, 0, 1, 5, 100, MaxPayload(fuzzCapacity)))
	add(encodedRing(fuzzCapacity-16, 40, 0))                      // PAD then records at 0
	add(encodedRing(3*fuzzCapacity-64, 37, 3))                    // exact fit at the end
	add(encodedRing(1<<40, 488, 488, 488, 488, 488, 488, 488, 0)) // nearly full, far along
	b, h, _ := encodedRing(0, 10, 10)
	add(b, h, 8) // tail behind the records
	return seeds
}

// FuzzConsumerPoll feeds arbitrary ring bytes, head and tail to a consumer. It must
// never panic or deliver an invalid frame; every error must wrap ErrCorrupt; the
// released space must read as zero; head must stay within [old head, tail].
func FuzzConsumerPoll(f *testing.F) {
	for _, s := range fuzzRingSeeds() {
		f.Add(s.data, s.head, s.tail)
	}
	f.Fuzz(func(t *testing.T, data []byte, head, tail uint64) {
		r := newHeapRing(t, fuzzCapacity)
		copy(r.buf, data)
		putU64(r, CtlHead, head)
		putU64(r, CtlTail, tail)
		c, err := NewConsumer(r, nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("NewConsumer: %v", err)
			}
			return
		}
		lo := uintptr(unsafe.Pointer(&r.buf[0]))
		hi := lo + fuzzCapacity
		for range 3 {
			before := c.Head()
			_, err := c.Poll(func(f Frame) error {
				if !validType(f.Type) || len(f.Payload) > MaxPayload(fuzzCapacity) || cap(f.Payload) != len(f.Payload) {
					return fmt.Errorf("invalid frame delivered: %+v", f)
				}
				if len(f.Payload) > 0 {
					p := uintptr(unsafe.Pointer(&f.Payload[0]))
					if p < lo || p+uintptr(len(f.Payload)) > hi {
						return fmt.Errorf("payload outside the ring")
					}
				}
				return nil
			})
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatal(err)
			}
			after := c.Head()
			if after < before || after > tail || after-before > fuzzCapacity || getU64(r, CtlHead) != after {
				t.Fatalf("head %d -> %d (shared %d), tail %d", before, after, getU64(r, CtlHead), tail)
			}
			for pos := before; pos < after; pos++ {
				if r.buf[pos&(fuzzCapacity-1)] != 0 {
					t.Fatalf("released byte at position %d not zeroed", pos)
				}
			}
			if err != nil {
				if _, err2 := c.Poll(func(Frame) error { return nil }); err2 != err {
					t.Fatalf("error not sticky: %v then %v", err, err2)
				}
				return
			}
		}
	})
}

// asmOp is one fuzzed Assembler input: 3 bytes -> id, type, flags, payload length.
func asmOps(b []byte) []Frame {
	var fs []Frame
	for ; len(b) >= 3; b = b[3:] {
		fs = append(fs, Frame{
			ID:      uint64(b[0] & 3),
			Type:    int32(32 + 17*(b[0]>>2&1)), // 32 or 49
			Flags:   uint32(b[1]) & 0xf,         // BEGIN, END, CANCEL, ERR
			Payload: pattern(uint64(b[2]), int(b[2]%24)),
		})
	}
	return fs
}

// asmModel is the rule set of PROTOCOL.md §2.4, written as plainly as possible.
type asmModel struct {
	open         map[asmKey][]byte
	max, maxOpen int
}

func (m *asmModel) add(f Frame) ([]byte, bool, bool) {
	k := asmKey{f.ID, f.Type}
	cur, isOpen := m.open[k]
	begin, end := f.Flags&FlagBegin != 0, f.Flags&FlagEnd != 0
	switch {
	case begin && isOpen:
		delete(m.open, k)
		return nil, false, true
	case !begin && !isOpen:
		return nil, false, true
	case begin && len(f.Payload) > m.max:
		return nil, false, true
	case begin && end:
		return f.Payload, true, false
	case begin:
		if len(m.open) >= m.maxOpen {
			return nil, false, true
		}
		m.open[k] = bytes.Clone(f.Payload)
		return nil, false, false
	case len(cur)+len(f.Payload) > m.max:
		delete(m.open, k)
		return nil, false, true
	}
	cur = append(cur, f.Payload...)
	if end {
		delete(m.open, k)
		return cur, true, false
	}
	m.open[k] = cur
	return nil, false, false
}

func asmSeed(frames ...[3]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f[:]...)
	}
	return b
}

func fuzzAsmSeeds() [][]byte {
	return [][]byte{
		asmSeed([3]byte{0, 3, 5}), // one frame
		asmSeed([3]byte{1, 1, 20}, [3]byte{1, 0, 23}, [3]byte{1, 0xa, 3}),               // three fragments, ERR on the last
		asmSeed([3]byte{0, 1, 1}, [3]byte{4, 1, 2}, [3]byte{0, 2, 3}, [3]byte{4, 2, 4}), // interleaved types
		asmSeed([3]byte{2, 1, 23}, [3]byte{2, 0, 23}, [3]byte{2, 0, 23}),                // over the limit
		asmSeed([3]byte{3, 0, 1}, [3]byte{3, 1, 1}, [3]byte{3, 1, 1}),                   // no BEGIN, then BEGIN twice
	}
}

// FuzzAssembler compares the Assembler with asmModel on arbitrary fragment sequences.
func FuzzAssembler(f *testing.F) {
	for _, s := range fuzzAsmSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a := &Assembler{MaxMessage: 40, MaxOpen: 3}
		m := &asmModel{open: map[asmKey][]byte{}, max: 40, maxOpen: 3}
		for i, fr := range asmOps(b) {
			msg, done, err := a.Add(fr)
			wmsg, wdone, werr := m.add(fr)
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("op %d: error %v does not wrap ErrCorrupt", i, err)
			}
			if (err != nil) != werr || done != wdone || !bytes.Equal(msg, wmsg) {
				t.Fatalf("op %d %+v: got %q %v %v, model %q %v %v", i, fr, msg, done, err, wmsg, wdone, werr)
			}
			if a.Open() != len(m.open) {
				t.Fatalf("op %d: %d open, model %d", i, a.Open(), len(m.open))
			}
		}
	})
}

// TestWriteFuzzSeeds writes the encoder-made seeds as files under testdata/fuzz
// (with -update), so that plain go test runs them and go test -fuzz starts there.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*update {
		t.Skip("only with -update")
	}
	write := func(fuzzer string, i int, vals ...any) {
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, v := range vals {
			switch v := v.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case uint64:
				fmt.Fprintf(&b, "uint64(%d)\n", v)
			}
		}
		dir := filepath.Join("testdata", "fuzz", fuzzer)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range fuzzRingSeeds() {
		write("FuzzConsumerPoll", i, s.data, s.head, s.tail)
	}
	for i, s := range fuzzAsmSeeds() {
		write("FuzzAssembler", i, s)
	}
}
