package supervisor

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestReadRSS(t *testing.T) {
	rss, err := readRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 || rss > 64<<30 {
		t.Errorf("readRSS(self) = %d bytes, implausible", rss)
	}
	if _, err := readRSS(1 << 30); err == nil {
		t.Error("readRSS of a pid that cannot exist succeeded")
	}
}

func TestLifecycleDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.MaxRequests != 0 || c.MaxRSS != 0 || c.WatchdogTimeout != 0 {
		t.Errorf("recycling must be off by default: %+v", c.Lifecycle)
	}
	if c.RSSInterval != time.Second || c.RetireTimeout != 30*time.Second {
		t.Errorf("defaults: %+v", c.Lifecycle)
	}
}

func TestRollNeedsStartAndACommand(t *testing.T) {
	s := New(Config{}, nil, nil)
	if err := s.Roll(context.Background(), Spec{App: "a"}); err == nil {
		t.Error("Roll with an empty command succeeded")
	}
	if err := s.Roll(context.Background(), Spec{App: "a", Command: []string{"true"}}); err == nil {
		t.Error("Roll before Start succeeded")
	}
}

func TestRecycleCounting(t *testing.T) {
	var got []string
	s := New(Config{Lifecycle: Lifecycle{OnRecycle: func(app, reason string) { got = append(got, app+"/"+reason) }}}, nil, nil)
	s.countRecycle("a", ReasonMaxRequests)
	s.countRecycle("a", ReasonMaxRequests)
	s.countRecycle("b", ReasonWatchdog)
	if m := s.Recycles(); m[ReasonMaxRequests] != 2 || m[ReasonWatchdog] != 1 || len(m) != 2 {
		t.Errorf("Recycles() = %v", m)
	}
	if len(got) != 3 || got[2] != "b/watchdog" {
		t.Errorf("OnRecycle calls %v", got)
	}
}
