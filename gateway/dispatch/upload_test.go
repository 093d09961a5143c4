package dispatch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/covetpy/covetpy/shmring"
	"github.com/covetpy/covetpy/workerproto"
)

// ringSession is a session on a real segment with no worker process: the test plays
// the worker, reading the request ring (worker.poll) and handing the session its
// answers as the response-ring reader would (s.onFrame).
type ringSession struct {
	s    *Session
	seg  *shmring.Segment
	cons *shmring.Consumer
}

func newRingSession(t *testing.T) *ringSession {
	t.Helper()
	seg, err := shmring.CreateSegment(shmring.Geometry{}.WithDefaults(), shmring.HeaderInit{GatewayPID: 1, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{seg: seg, log: slog.New(slog.DiscardHandler)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.w = shmring.Writer{Producer: shmring.NewMPSCProducer(seg.RequestRing(), nil), Space: &s.space, Timeout: time.Millisecond}
	cons, err := shmring.NewConsumer(seg.RequestRing(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.cancel()
		seg.Close()
	})
	return &ringSession{s: s, seg: seg, cons: cons}
}

// poll hands fn every frame on the request ring (copied), then frees the space.
func (r *ringSession) poll(t *testing.T, fn func(f shmring.Frame)) {
	t.Helper()
	if _, err := r.cons.Poll(func(f shmring.Frame) error {
		f.Payload = bytes.Clone(f.Payload)
		fn(f)
		return nil
	}); err != nil {
		t.Error(err)
	}
	r.s.space.Broadcast()
}

func windowFrame(t *testing.T, id uint64, n int64) shmring.Frame {
	p, err := workerproto.WindowPayload{Grant: n}.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return frame(workerproto.FrameReqWindow, id, p)
}

func respFrame(t *testing.T, id uint64, status int) shmring.Frame {
	p, err := (&workerproto.ResponseHead{Status: status}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return frame(workerproto.FrameResp, id, p)
}

// slowStream is a BodyStream that hands out a fixed body a little at a time, then
// ends with end (io.EOF or a failure); Stop makes a blocked Read return.
type slowStream struct {
	body  []byte
	end   error
	mu    sync.Mutex
	stop  chan struct{}
	once  sync.Once
	gate  chan struct{} // when not nil, each Read waits for a token
	stops int
}

func newSlowStream(body []byte, end error) *slowStream {
	return &slowStream{body: body, end: end, stop: make(chan struct{})}
}

func (b *slowStream) Read(p []byte) (int, error) {
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-b.stop:
			return 0, errors.New("stopped")
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.body) == 0 {
		return 0, b.end
	}
	n := copy(p[:min(len(p), 10000)], b.body)
	b.body = b.body[n:]
	return n, nil
}

func (b *slowStream) Stop() {
	b.mu.Lock()
	b.stops++
	b.mu.Unlock()
	b.once.Do(func() { close(b.stop) })
}

type bodyResult struct {
	status int
	err    error
}

type statusRecorder struct {
	plainRecorder
	status int
}

func (r *statusRecorder) WriteHead(status int, _ []workerproto.Header, _ int64) error {
	r.status = status
	return nil
}

func serveStream(r *ringSession, src BodyStream, length int64, out chan<- bodyResult) {
	head, _ := (&workerproto.RequestHead{Method: "POST", Path: "/", HTTPVersion: "1.1", Scheme: "http", Body: length}).Append(nil)
	w := &statusRecorder{}
	err := r.s.do(context.Background(), time.Now().Add(time.Minute), false, head, nil, src, length, w)
	out <- bodyResult{w.status, err}
}

// TestUploadWindow: a 5 MiB body streamed to a worker that grants in quarters of
// the window, as the SDK does: the ring never holds more body than the window plus
// the grants, every byte arrives in order, once (same hash), the last fragment
// carries END, and the response ends the exchange.
func TestUploadWindow(t *testing.T) {
	r := newRingSession(t)
	body := make([]byte, 5<<20)
	for i := range body {
		body[i] = byte(rand.Uint32())
	}
	src := newSlowStream(body, io.EOF)
	out := make(chan bodyResult, 1)
	go serveStream(r, src, -1, out)

	h := sha256.New()
	var got, granted, taken int64
	var id uint64
	ended := false
	deadline := time.Now().Add(30 * time.Second)
	for !ended && time.Now().Before(deadline) {
		r.poll(t, func(f shmring.Frame) {
			switch workerproto.FrameType(f.Type) {
			case workerproto.FrameReqHead:
				id = f.ID
			case workerproto.FrameReqBody:
				if f.ID != id {
					t.Fatalf("body for id %#x, head was %#x", f.ID, id)
				}
				h.Write(f.Payload)
				got += int64(len(f.Payload))
				taken += int64(len(f.Payload))
				if f.Flags&workerproto.FlagErr != 0 {
					t.Fatalf("ERR fragment on a body that ended well")
				}
				ended = f.Flags&workerproto.FlagEnd != 0
			default:
				t.Fatalf("frame type %d on the request ring", f.Type)
			}
		})
		if got > workerproto.RequestWindow+granted {
			t.Fatalf("%d body bytes on the ring, window %d + grants %d", got, workerproto.RequestWindow, granted)
		}
		// The handler consumes what arrived and grants it back a quarter at a time.
		for taken >= workerproto.RequestWindow/4 {
			if err := r.s.onFrame(windowFrame(t, id, workerproto.RequestWindow/4)); err != nil {
				t.Fatal(err)
			}
			granted += workerproto.RequestWindow / 4
			taken -= workerproto.RequestWindow / 4
		}
		time.Sleep(100 * time.Microsecond)
	}
	if !ended || got != int64(len(body)) {
		t.Fatalf("body ended %v after %d of %d bytes", ended, got, len(body))
	}
	want := sha256.Sum256(body)
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("the body arrived changed")
	}
	if err := r.s.onFrame(respFrame(t, id, 201)); err != nil {
		t.Fatal(err)
	}
	res := <-out
	if res.err != nil || res.status != 201 {
		t.Fatalf("Serve: %d %v", res.status, res.err)
	}
	if src.stops != 1 {
		t.Fatalf("Stop called %d times, want once", src.stops)
	}
}

// TestUploadStallsWithoutGrant: a worker that takes the window and grants nothing
// gets exactly the window, and the stream is read no further than that; its
// early answer ends the exchange, stops the stream and unblocks the upload.
func TestUploadStallsWithoutGrant(t *testing.T) {
	r := newRingSession(t)
	src := newSlowStream(make([]byte, 3<<20), io.EOF)
	out := make(chan bodyResult, 1)
	go serveStream(r, src, 3<<20, out)
	var got int64
	var id uint64
	for deadline := time.Now().Add(10 * time.Second); got < workerproto.RequestWindow && time.Now().Before(deadline); {
		r.poll(t, func(f shmring.Frame) {
			if workerproto.FrameType(f.Type) == workerproto.FrameReqHead {
				id = f.ID
			} else {
				got += int64(len(f.Payload))
			}
		})
		time.Sleep(100 * time.Microsecond)
	}
	time.Sleep(20 * time.Millisecond) // room for a wrong extra fragment to show
	r.poll(t, func(f shmring.Frame) { got += int64(len(f.Payload)) })
	if got != workerproto.RequestWindow {
		t.Fatalf("%d body bytes sent without a grant, want the window %d", got, workerproto.RequestWindow)
	}
	src.mu.Lock()
	left := len(src.body)
	src.mu.Unlock()
	if read := 3<<20 - left; read != workerproto.RequestWindow {
		t.Fatalf("%d bytes read from the stream, want the window %d", read, workerproto.RequestWindow)
	}
	// The handler answers without reading further (a 413 of its own).
	if err := r.s.onFrame(respFrame(t, id, 413)); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-out:
		if res.err != nil || res.status != 413 {
			t.Fatalf("Serve: %d %v", res.status, res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an early answer did not end the exchange")
	}
	if src.stops != 1 {
		t.Fatalf("Stop called %d times", src.stops)
	}
	// A grant for the finished exchange is ignored.
	if err := r.s.onFrame(windowFrame(t, id, 100)); err != nil {
		t.Fatal(err)
	}
}

// TestUploadBrokenBody: a body that breaks off (here: over max_body_bytes) ends
// with a REQ_BODY fragment flagged ERR|END, the worker is sent CANCEL, and Serve
// returns the stream's error as a *BodyError, for the front end to answer.
func TestUploadBrokenBody(t *testing.T) {
	r := newRingSession(t)
	tooLarge := errors.New("body too large")
	src := newSlowStream(make([]byte, 25000), tooLarge)
	out := make(chan bodyResult, 1)
	go serveStream(r, src, -1, out)
	var res bodyResult
	select {
	case res = <-out:
	case <-time.After(10 * time.Second):
		t.Fatal("a broken body did not end the exchange")
	}
	var be *BodyError
	if !errors.As(res.err, &be) || !errors.Is(res.err, tooLarge) {
		t.Fatalf("Serve: %v, want a BodyError wrapping the stream's", res.err)
	}
	var flags []uint32
	var got int
	r.poll(t, func(f shmring.Frame) {
		if workerproto.FrameType(f.Type) == workerproto.FrameReqBody {
			got += len(f.Payload)
		}
		if f.Type != int32(workerproto.FrameReqHead) {
			flags = append(flags, f.Flags)
		}
	})
	if got != 25000 {
		t.Fatalf("%d body bytes before the break, want 25000", got)
	}
	last := len(flags) - 2 // the ERR fragment, then CANCEL
	if last < 0 || flags[last] != workerproto.FlagErr|workerproto.FlagEnd || flags[last+1] != workerproto.FlagBegin|workerproto.FlagEnd|workerproto.FlagCancel {
		t.Fatalf("frame flags after the head: %#x, want ... ERR|END, then CANCEL", flags)
	}
}

// TestUploadMalformedGrant: a REQ_WINDOW not flagged BEGIN|END, or with a grant
// out of range, is a violation (onFrame's error ends the session).
func TestUploadMalformedGrant(t *testing.T) {
	s, c, id := hintSession()
	defer putCall(c)
	f := windowFrame(t, id, 10)
	f.Flags = workerproto.FlagBegin
	if err := s.onFrame(f); err == nil {
		t.Fatal("REQ_WINDOW flagged BEGIN only was accepted")
	}
	bad, _ := workerproto.WindowPayload{Grant: 1}.Append(nil)
	bad[1] = 0 // grant 0
	if err := s.onFrame(frame(workerproto.FrameReqWindow, id, bad)); !errors.Is(err, workerproto.ErrBadValue) {
		t.Fatalf("a zero grant: %v", err)
	}
	// A well-formed grant for a call whose body went whole: ignored.
	if err := s.onFrame(windowFrame(t, id, 10)); err != nil {
		t.Fatal(err)
	}
}

// TestWholeBodyOverWindow: a whole body larger than the window (Request.Body) is
// sent within it too.
func TestWholeBodyOverWindow(t *testing.T) {
	r := newRingSession(t)
	body := bytes.Repeat([]byte("x"), workerproto.RequestWindow+5000)
	src := &bytesStream{}
	src.Reset(body)
	out := make(chan bodyResult, 1)
	go serveStream(r, src, int64(len(body)), out)
	var got int64
	var id uint64
	for deadline := time.Now().Add(10 * time.Second); got < workerproto.RequestWindow && time.Now().Before(deadline); {
		r.poll(t, func(f shmring.Frame) {
			if workerproto.FrameType(f.Type) == workerproto.FrameReqHead {
				id = f.ID
			} else {
				got += int64(len(f.Payload))
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	r.poll(t, func(f shmring.Frame) { got += int64(len(f.Payload)) })
	if got != workerproto.RequestWindow {
		t.Fatalf("%d bytes without a grant", got)
	}
	if err := r.s.onFrame(windowFrame(t, id, 5000)); err != nil {
		t.Fatal(err)
	}
	ended := false
	for deadline := time.Now().Add(10 * time.Second); !ended && time.Now().Before(deadline); {
		r.poll(t, func(f shmring.Frame) {
			got += int64(len(f.Payload))
			ended = f.Flags&workerproto.FlagEnd != 0
		})
	}
	if !ended || got != int64(len(body)) {
		t.Fatalf("ended %v after %d of %d", ended, got, len(body))
	}
	if err := r.s.onFrame(respFrame(t, id, 200)); err != nil {
		t.Fatal(err)
	}
	if res := <-out; res.err != nil {
		t.Fatal(res.err)
	}
}
