package shmring

import (
	"bytes"
	"testing"
)

func TestAssembler(t *testing.T) {
	const B, E = FlagBegin, FlagEnd
	fr := func(id uint64, typ int32, flags uint32, p string) Frame {
		return Frame{ID: id, Type: typ, Flags: flags, Payload: []byte(p)}
	}
	type step struct {
		f      Frame
		msg    string // want done with this payload ("" and !done: not done)
		done   bool
		reason string // want a MessageError with this reason
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"single frame", []step{{f: fr(1, 32, B|E, "abc"), msg: "abc", done: true}}},
		{"empty single frame", []step{{f: fr(1, 32, B|E, ""), done: true}}},
		{"three fragments", []step{
			{f: fr(1, 32, B, "ab")}, {f: fr(1, 32, 0, "cd")}, {f: fr(1, 32, E|0x8, "e"), msg: "abcde", done: true},
		}},
		{"interleaved ids and types", []step{
			{f: fr(1, 32, B, "a")}, {f: fr(2, 32, B, "x")}, {f: fr(1, 49, B, "q")},
			{f: fr(2, 32, E, "y"), msg: "xy", done: true},
			{f: fr(1, 32, E, "b"), msg: "ab", done: true},
			{f: fr(1, 49, E, ""), msg: "q", done: true},
		}},
		{"continuation without BEGIN", []step{{f: fr(1, 32, 0, "a"), reason: "without BEGIN"}}},
		{"END without BEGIN", []step{{f: fr(1, 32, E, "a"), reason: "without BEGIN"}}},
		{"BEGIN while open", []step{{f: fr(1, 32, B, "a")}, {f: fr(1, 32, B, "b"), reason: "BEGIN while"}}},
		{"BEGIN|END while open", []step{{f: fr(1, 32, B, "a")}, {f: fr(1, 32, B|E, "b"), reason: "BEGIN while"}}},
		{"over the limit single", []step{{f: fr(1, 32, B|E, "0123456789x"), reason: "larger"}}},
		{"over the limit begin", []step{{f: fr(1, 32, B, "0123456789x"), reason: "larger"}}},
		{"over the limit assembled", []step{
			{f: fr(1, 32, B, "01234")}, {f: fr(1, 32, 0, "56789")}, {f: fr(1, 32, E, "x"), reason: "larger"},
		}},
		{"exactly the limit", []step{
			{f: fr(1, 32, B, "01234")}, {f: fr(1, 32, E, "56789"), msg: "0123456789", done: true},
		}},
		{"too many open", []step{
			{f: fr(1, 32, B, "")}, {f: fr(2, 32, B, "")}, {f: fr(3, 32, B, "")}, {f: fr(4, 32, B, ""), reason: "too many"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Assembler{MaxMessage: 10, MaxOpen: 3}
			for i, s := range tc.steps {
				msg, done, err := a.Add(s.f)
				if s.reason != "" {
					wantCorrupt(t, err, s.reason)
					continue
				}
				if err != nil || done != s.done || string(msg) != s.msg {
					t.Fatalf("step %d: got %q, %v, %v; want %q, %v", i, msg, done, err, s.msg, s.done)
				}
			}
		})
	}
}

func TestAssemblerDiscardAndReuse(t *testing.T) {
	var a Assembler // zero value works
	a.Add(Frame{ID: 1, Type: 16, Flags: FlagBegin, Payload: []byte("x")})
	if a.Open() != 1 {
		t.Fatal("not open")
	}
	a.Discard(1, 16)
	if a.Open() != 0 {
		t.Fatal("Discard left it open")
	}
	if _, _, err := a.Add(Frame{ID: 1, Type: 16, Flags: FlagEnd}); err == nil {
		t.Fatal("continuation after Discard accepted")
	}
	// Steady state reuses buffers: no allocation per multi-fragment message.
	p := bytes.Repeat([]byte("z"), 100)
	allocs := testing.AllocsPerRun(100, func() {
		a.Add(Frame{ID: 2, Type: 16, Flags: FlagBegin, Payload: p})
		m, done, err := a.Add(Frame{ID: 2, Type: 16, Flags: FlagEnd, Payload: p})
		if err != nil || !done || len(m) != 200 {
			t.Fatalf("%d %v %v", len(m), done, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per message", allocs)
	}
}
