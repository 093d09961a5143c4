package dispatch

import (
	"testing"
	"time"
)

// TestCallTimerRearm: armTimer leaves a pending timer that fires no later than
// the new deadline, and re-arms one that is stopped, already due or later.
func TestCallTimerRearm(t *testing.T) {
	c := getCall(1)
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
