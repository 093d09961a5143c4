package main

import (
	"io"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "4096": 4096, "512M": 512 << 20, "512MiB": 512 << 20,
		"1g": 1 << 30, "2 GB": 2 << 30, "64k": 64 << 10, "10B": 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "1.5G", "12X", "99999999999G"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestLifecycleFlags(t *testing.T) {
	cfg, _, err := parseFlags([]string{"--worker-cmd", "x", "--max-requests", "1000", "--max-requests-jitter", "50",
		"--max-rss", "256MiB", "--watchdog-timeout", "3s"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Supervisor
	if s.MaxRequests != 1000 || s.MaxRequestsJitter != 50 || s.MaxRSS != 256<<20 || s.WatchdogTimeout != 3*time.Second {
		t.Errorf("lifecycle flags not mapped: %+v", s.Lifecycle)
	}
	if _, _, err := parseFlags([]string{"--worker-cmd", "x", "--max-rss", "lots"}, nil, io.Discard); err == nil {
		t.Error("--max-rss lots accepted")
	}
}
