package workerproto

import (
	"errors"
	"strings"
	"testing"
)

func TestRespFileRoundTrip(t *testing.T) {
	f := RespFile{Status: 200, Headers: []Header{{Name: []byte("cache-control"), Value: []byte("no-cache")}}, Path: "/srv/a b.txt"}
	b, err := f.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := DecodeRespFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if g.Status != 200 || g.Path != f.Path || len(g.Headers) != 1 || string(g.Headers[0].Value) != "no-cache" {
		t.Fatalf("got %+v", g)
	}
	for _, bad := range []string{"", "rel/x", "/a\x00b", "/" + strings.Repeat("x", MaxFilePath)} {
		if _, err := (&RespFile{Status: 200, Path: bad}).Append(nil); !errors.Is(err, ErrBadValue) {
			t.Errorf("path %q: %v", bad, err)
		}
	}
	if _, err := DecodeRespFile(append(b, 0)); err != ErrTrailingBytes {
		t.Errorf("trailing: %v", err)
	}
	b[1] = 0x64 // status 100
	if _, err := DecodeRespFile(b); !errors.Is(err, ErrBadValue) {
		t.Errorf("status 100: %v", err)
	}
}

func TestWSOpenRoundTrip(t *testing.T) {
	o := WSOpen{Head: *sampleRequestHead(), Resumed: true, Window: 2 << 20}
	o.Head.Body = 0
	b, err := o.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := DecodeWSOpen(b)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Resumed || g.Window != o.Window || g.Head.Path != o.Head.Path || g.Head.Method != o.Head.Method {
		t.Fatalf("got %+v", g)
	}
	if _, err := (&WSOpen{Head: o.Head, Window: 0}).Append(nil); !errors.Is(err, ErrBadValue) {
		t.Errorf("window 0: %v", err)
	}
	for i := range b { // every truncation is refused, never a panic
		if _, err := DecodeWSOpen(b[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
}

func TestWSAcceptAndClose(t *testing.T) {
	a := WSAccept{Subprotocol: "chat.v2", Headers: []Header{{Name: []byte("set-cookie"), Value: []byte("a=1")}}}
	b, err := a.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := DecodeWSAccept(b)
	if err != nil || g.Subprotocol != "chat.v2" || len(g.Headers) != 1 {
		t.Fatalf("accept: %+v %v", g, err)
	}
	b, _ = (&WSAccept{Subprotocol: "a b"}).Append(nil)
	if _, err := DecodeWSAccept(b); !errors.Is(err, ErrBadValue) {
		t.Errorf("subprotocol with a space: %v", err)
	}
	c := WSClose{Code: 4403, Reason: "forbidden"}
	if b, err = c.Append(nil); err != nil {
		t.Fatal(err)
	}
	if d, err := DecodeWSClose(b); err != nil || d != c {
		t.Fatalf("close: %+v %v", d, err)
	}
	for _, bad := range []WSClose{{Code: 999}, {Code: 5000}, {Code: 1000, Reason: strings.Repeat("x", 124)}, {Code: 1000, Reason: "\xff"}} {
		if _, err := bad.Append(nil); !errors.Is(err, ErrBadValue) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if WSCost(0) != WSFrameCost {
		t.Error("WSCost")
	}
}
