package dispatch

import (
	"errors"
	"testing"
	"time"

	"github.com/covetpy/covetpy/workerproto"
)

// TestCallTimerRearm: armTimer leaves a pending timer that fires no later than
// the new deadline, and re-arms one that is stopped, already due or later.
func TestCallTimerRearm(t *testing.T) {
	// A fresh call, not a pooled one: a call the pool hands back may carry a
	// timer still pending from an earlier test, which armTimer rightly keeps.
	c := callPool.New().(*call)
	c.id = 1
	defer putCall(c)
	now := time.Now()
	c.armTimer(now, now.Add(time.Hour))
	if !c.timerAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("first arm: timerAt %v", c.timerAt)
	}
	c.armTimer(now, now.Add(2*time.Hour))
	if !c.timerAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("a later deadline re-armed a timer due earlier: timerAt %v", c.timerAt)
	}
	short := now.Add(20 * time.Millisecond)
	c.armTimer(now, short)
	if !c.timerAt.Equal(short) {
		t.Fatalf("an earlier deadline kept the later timer: timerAt %v", c.timerAt)
	}
	select {
	case <-c.timer.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the re-armed timer did not fire")
	}
	// Fired: timerAt is in the past, so the next deadline arms it again.
	later := time.Now()
	c.armTimer(later, later.Add(30*time.Millisecond))
	if !c.timerAt.Equal(later.Add(30 * time.Millisecond)) {
		t.Fatalf("a timer already due was not re-armed: timerAt %v", c.timerAt)
	}
	select {
	case <-c.timer.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the timer re-armed after firing did not fire")
	}
}

// TestHeldResponseBytes: HeldResponseBytes counts the pooled chunks of a response,
// whole, from the ring reader's copy until the writer puts them back; chunks the
// writer puts back early (written ones, before their bytes are granted) are not
// counted off twice; a whole window, with the writer stuck on a chunk taken before
// it, stays within MaxResponseHeld; and a call put back leaves nothing counted.
func TestHeldResponseBytes(t *testing.T) {
	base := HeldResponseBytes()
	held := func() int64 { return HeldResponseBytes() - base }
	c := getCall(1)
	c.gotHead = true
	if err := c.addBody(1, make([]byte, bodyChunk+1), false); err != nil {
		t.Fatal(err)
	}
	if h := held(); h != 2*bodyChunk {
		t.Fatalf("%d body bytes: %d held, want two chunks", bodyChunk+1, h)
	}
	// The writer takes the chunks (Session.do), puts the first back once written,
	// then the list.
	take := func() [][]byte {
		c.mu.Lock()
		defer c.mu.Unlock()
		chunks := c.body
		c.body = c.spare
		return chunks
	}
	chunks := take()
	putChunks(chunks[:1])
	if h := held(); h != bodyChunk {
		t.Fatalf("one of two chunks put back: %d held, want one chunk", h)
	}
	c.spare = putChunks(chunks)
	if h := held(); h != 0 {
		t.Fatalf("all put back: %d held", h)
	}

	// The worker sends one byte, the writer takes it and blocks on the client, and
	// the worker sends the rest of its window (granted back for what was written).
	c.grant(bodyChunk + 1)
	if err := c.addBody(1, []byte{0}, false); err != nil {
		t.Fatal(err)
	}
	stuck := take()
	piece := make([]byte, 1000)
	for rest := workerproto.ResponseWindow - 1; rest > 0; rest -= len(piece) {
		if err := c.addBody(1, piece[:min(rest, len(piece))], false); err != nil {
			t.Fatal(err)
		}
	}
	if h := held(); h > MaxResponseHeld || h != workerproto.ResponseWindow+bodyChunk {
		t.Fatalf("a window behind a stuck chunk: %d held, want %d, at most MaxResponseHeld %d",
			h, workerproto.ResponseWindow+bodyChunk, MaxResponseHeld)
	}
	if err := c.addBody(1, []byte{0}, false); !errors.Is(err, errWindow) {
		t.Fatalf("a byte past the window: %v, want errWindow", err)
	}
	c.spare = stuck
	putCall(c)
	if h := held(); h != 0 {
		t.Fatalf("call put back: %d held", h)
	}
}
