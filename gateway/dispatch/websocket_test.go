package dispatch

import (
	"errors"
	"testing"

	"github.com/covetpy/covetpy/shmring"
	"github.com/covetpy/covetpy/workerproto"
)

func wsSessionFixture(window int64, resumed bool) (*Session, *call, uint64) {
	s, c, id := hintSession()
	c.ws = &wsState{accepted: resumed, resumed: resumed, limit: window, credit: window, creditWake: make(chan struct{}, 1)}
	return s, c, id
}

func wsFrame(typ workerproto.FrameType, id uint64, flags uint32, p []byte) shmring.Frame {
	return shmring.Frame{Type: int32(typ), ID: id, Flags: flags, Payload: p}
}

const be = workerproto.FlagBegin | workerproto.FlagEnd

// TestWSReaderSequence: a session's frames are taken in the order PROTOCOL.md 2.9
// gives (accept, messages assembled from fragments, close) and every frame out of
// that order ends the worker's session.
func TestWSReaderSequence(t *testing.T) {
	s, c, id := wsSessionFixture(1<<20, false)
	defer putCall(c)
	if err := s.onFrame(wsFrame(workerproto.FrameWSText, id, be, []byte("early"))); !errors.Is(err, errWSFrame) {
		t.Fatalf("a message before WS_ACCEPT: %v", err)
	}
	acc, _ := (&workerproto.WSAccept{Subprotocol: "chat", Headers: []workerproto.Header{{Name: []byte("x-a"), Value: []byte("1")}}}).Append(nil)
	if err := s.onFrame(wsFrame(workerproto.FrameWSAccept, id, be, acc)); err != nil {
		t.Fatal(err)
	}
	if !c.ws.accepted || c.ws.subproto != "chat" || string(c.ws.accHeaders[0].Value) != "1" {
		t.Fatalf("accept: %+v", c.ws)
	}
	if err := s.onFrame(wsFrame(workerproto.FrameWSAccept, id, be, acc)); !errors.Is(err, errWSFrame) {
		t.Fatalf("a second WS_ACCEPT: %v", err)
	}
	head, _ := (&workerproto.ResponseHead{Status: 403}).Append(nil)
	if err := s.onFrame(frame(workerproto.FrameResp, id, head)); !errors.Is(err, errSequence) {
		t.Fatalf("a response after WS_ACCEPT: %v", err)
	}
	// A fragmented binary message, then a one-frame text message.
	for _, f := range []shmring.Frame{
		wsFrame(workerproto.FrameWSBinary, id, workerproto.FlagBegin, []byte("ab")),
		wsFrame(workerproto.FrameWSBinary, id, 0, []byte("cd")),
		wsFrame(workerproto.FrameWSBinary, id, workerproto.FlagEnd, []byte("e")),
		wsFrame(workerproto.FrameWSText, id, be, []byte("hi")),
	} {
		if err := s.onFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.ws.msgs) != 2 || string(c.ws.msgs[0].p) != "abcde" || c.ws.msgs[0].text || !c.ws.msgs[1].text {
		t.Fatalf("messages: %+v", c.ws.msgs)
	}
	if c.ws.msgs[0].cost != 5+3*workerproto.WSFrameCost {
		t.Fatalf("cost %d", c.ws.msgs[0].cost)
	}
	if err := s.onFrame(wsFrame(workerproto.FrameWSText, id, 0, []byte("x"))); !errors.Is(err, errWSFrame) {
		t.Fatalf("a fragment continuing no message: %v", err)
	}
	if err := s.onFrame(wsFrame(workerproto.FrameWSText, id, workerproto.FlagBegin, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := s.onFrame(wsFrame(workerproto.FrameWSBinary, id, workerproto.FlagEnd, []byte("x"))); !errors.Is(err, errWSFrame) {
		t.Fatalf("a binary fragment ending a text message: %v", err)
	}
	cl, _ := (&workerproto.WSClose{Code: 4000, Reason: "bye"}).Append(nil)
	if err := s.onFrame(wsFrame(workerproto.FrameWSClose, id, be, cl)); err != nil {
		t.Fatal(err)
	}
	if !c.ws.closed || c.ws.closeCode != 4000 || c.ws.closeReason != "bye" {
		t.Fatalf("close: %+v", c.ws)
	}
	if err := s.onFrame(wsFrame(workerproto.FrameWSText, id, be, []byte("late"))); !errors.Is(err, errWSFrame) {
		t.Fatalf("a message after WS_CLOSE: %v", err)
	}
	// A frame for an id that is not a session at all.
	s2, c2, id2 := hintSession()
	defer putCall(c2)
	if err := s2.onFrame(wsFrame(workerproto.FrameWSClose, id2, be, cl)); !errors.Is(err, errWSFrame) {
		t.Fatalf("WS_CLOSE for a request: %v", err)
	}
}

// TestWSReaderWindow: the worker's messages are held to its window, each frame
// costing its payload plus WSFrameCost, so that a flood of empty frames runs out
// too; WS_CREDIT from the worker raises the gateway's credit and wakes a waiter.
func TestWSReaderWindow(t *testing.T) {
	const window = 10 * workerproto.WSFrameCost
	s, c, id := wsSessionFixture(window, true) // resumed: no accept needed
	defer putCall(c)
	acc, _ := (&workerproto.WSAccept{}).Append(nil)
	if err := s.onFrame(wsFrame(workerproto.FrameWSAccept, id, be, acc)); err != nil {
		t.Fatalf("WS_ACCEPT for a resumed session is ignored: %v", err)
	}
	for i := 0; i < 10; i++ {
		if err := s.onFrame(wsFrame(workerproto.FrameWSBinary, id, be, nil)); err != nil {
			t.Fatal(i, err)
		}
	}
	if err := s.onFrame(wsFrame(workerproto.FrameWSBinary, id, be, nil)); err == nil {
		t.Fatal("the 11th empty frame overran a window of 10 frames' cost")
	}
	g, _ := workerproto.WindowPayload{Grant: 500}.Append(nil)
	if err := s.onFrame(wsFrame(workerproto.FrameWSCredit, id, be, g)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.ws.creditWake:
	default:
		t.Fatal("WS_CREDIT did not wake a waiter")
	}
	if !c.ws.take(window+500) || c.ws.take(1) {
		t.Fatal("credit is the window plus the grants, spent once")
	}
	if err := s.onFrame(wsFrame(workerproto.FrameWSCredit, id, workerproto.FlagBegin, g)); !errors.Is(err, errWSFrame) {
		t.Fatalf("a fragmented WS_CREDIT: %v", err)
	}
}
