package dispatch

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/covetpy/covetpy/shmring"
	"github.com/covetpy/covetpy/workerproto"
)

func hintPayload(t *testing.T, links ...string) []byte {
	t.Helper()
	var h workerproto.EarlyHints
	for _, l := range links {
		h.Headers = append(h.Headers, workerproto.Header{Name: []byte("link"), Value: []byte(l)})
	}
	b, err := h.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hintSession is a session with one call in slot 0, generation 1, fed frames as the
// response-ring reader feeds them.
func hintSession() (*Session, *call, uint64) {
	id := uint64(1) << 32 // generation 1, slot 0
	c := getCall(id)
	return &Session{slots: []*call{c}, gens: []uint32{1}}, c, id
}

func frame(typ workerproto.FrameType, id uint64, p []byte) shmring.Frame {
	return shmring.Frame{Type: int32(typ), ID: id, Flags: workerproto.FlagBegin | workerproto.FlagEnd, Payload: p}
}

// TestEarlyHintsReader: EARLY_HINTS before the head are kept, in order, for the
// writer; one after the head, one past MaxEarlyHints and a malformed one each end
// the session (onFrame's error); one for a stale id is dropped.
func TestEarlyHintsReader(t *testing.T) {
	s, c, id := hintSession()
	defer putCall(c)
	for _, l := range []string{"</a.css>; rel=preload", "</b.js>; rel=preload"} {
		if err := s.onFrame(frame(workerproto.FrameEarlyHints, id, hintPayload(t, l))); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.hints) != 2 || string(c.hints[1].Headers[0].Value) != "</b.js>; rel=preload" {
		t.Fatalf("hints kept: %d", len(c.hints))
	}
	// A stale generation: dropped, not an error.
	if err := s.onFrame(frame(workerproto.FrameEarlyHints, uint64(2)<<32, hintPayload(t, "</x>"))); err != nil || len(c.hints) != 2 {
		t.Fatalf("stale id: %v, %d hints", err, len(c.hints))
	}
	// A malformed payload (a field name that is not lower case).
	bad := hintPayload(t, "</x>")
	bad[2] = 'L'
	if err := s.onFrame(frame(workerproto.FrameEarlyHints, id, bad)); !errors.Is(err, workerproto.ErrBadValue) {
		t.Fatalf("malformed: %v", err)
	}
	head, _ := (&workerproto.ResponseHead{Status: 200, Body: -1}).Append(nil)
	if err := s.onFrame(frame(workerproto.FrameRespHead, id, head)); err != nil {
		t.Fatal(err)
	}
	if err := s.onFrame(frame(workerproto.FrameEarlyHints, id, hintPayload(t, "</late>"))); !errors.Is(err, errSequence) {
		t.Fatalf("after the head: %v, want errSequence", err)
	}

	s2, c2, id2 := hintSession()
	defer putCall(c2)
	for i := 0; i < workerproto.MaxEarlyHints; i++ {
		if err := s2.onFrame(frame(workerproto.FrameEarlyHints, id2, hintPayload(t, "</x>"))); err != nil {
			t.Fatal(i, err)
		}
	}
	if err := s2.onFrame(frame(workerproto.FrameEarlyHints, id2, hintPayload(t, "</x>"))); err == nil || !strings.Contains(err.Error(), "more than 16") {
		t.Fatalf("hint %d: %v", workerproto.MaxEarlyHints+1, err)
	}
}

type interimRecorder struct {
	plainRecorder
	interim []string // "103 link: v" per field
	fail    error
}

func (r *interimRecorder) WriteInterim(status int, headers []workerproto.Header) error {
	for _, h := range headers {
		r.interim = append(r.interim, strconv.Itoa(status)+" "+string(h.Name)+": "+string(h.Value))
	}
	return r.fail
}

type plainRecorder struct{}

func (plainRecorder) WriteHead(int, []workerproto.Header, int64) error { return nil }
func (plainRecorder) WriteBody([]byte) error                           { return nil }
func (plainRecorder) WriteBodyv([][]byte) error                        { return nil }

// TestWriteInterim: hints reach a writer that implements InterimWriter as 103s, in
// order, and its error stops them; a writer without it drops them.
func TestWriteInterim(t *testing.T) {
	var hints []workerproto.EarlyHints
	for _, l := range []string{"</a>", "</b>"} {
		var h workerproto.EarlyHints
		if err := h.Decode(hintPayload(t, l)); err != nil {
			t.Fatal(err)
		}
		hints = append(hints, h)
	}
	r := &interimRecorder{}
	if err := writeInterim(r, hints); err != nil || strings.Join(r.interim, "|") != "103 link: </a>|103 link: </b>" {
		t.Fatalf("%v %q", err, r.interim)
	}
	boom := errors.New("client gone")
	r = &interimRecorder{fail: boom}
	if err := writeInterim(r, hints); err != boom || len(r.interim) != 1 {
		t.Fatalf("a failing writer: %v after %d", err, len(r.interim))
	}
	if err := writeInterim(plainRecorder{}, hints); err != nil {
		t.Fatalf("a writer without WriteInterim: %v", err)
	}
}
