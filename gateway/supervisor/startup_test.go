package supervisor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
)

// A worker that exits before it says hello fails at startup; max_startup_failures of
// those in a row and the supervisor gives up, saying why.
func TestStartupFailuresInARow(t *testing.T) {
	d, err := dispatch.New(dispatch.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	restarts := 0
	s := New(Config{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxStartupFailures: 3,
		OnRestart: func(string, string) { restarts++ }}, d, nil)
	if err := s.Start(context.Background(), []Spec{{App: "app", Command: []string{"/bin/sh", "-c", "exit 7"}}}); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(time.Second)
	select {
	case err := <-s.Failed():
		want := `app "app": a worker failed at startup 3 times in a row: worker exited during startup: it ended (exit status 7) before saying hello`
		if err == nil || err.Error() != want {
			t.Errorf("Failed: %v\nwant %s", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor did not give up")
	}
	if restarts != 2 {
		t.Errorf("%d restarts before giving up, want 2", restarts)
	}
	if err := d.Ready(); err == nil || !strings.Contains(err.Error(), `"app"`) {
		t.Errorf("Ready: %v, want the app named as down", err)
	}
}

// Stop does not wait out a restart backoff.
func TestStopEndsBackoff(t *testing.T) {
	d, _ := dispatch.New(dispatch.Config{}, nil)
	failed := make(chan struct{}, 1)
	s := New(Config{MinBackoff: time.Minute, MaxBackoff: time.Minute, MaxStartupFailures: -1,
		OnRestart: func(string, string) { failed <- struct{}{} }}, d, nil)
	if err := s.Start(context.Background(), []Spec{{App: "app", Command: []string{"/bin/sh", "-c", "exit 1"}}}); err != nil {
		t.Fatal(err)
	}
	<-failed
	start := time.Now()
	s.Stop(time.Second)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Stop took %v with a worker slot in its backoff", el)
	}
}
