package main

import (
	"io"
	"syscall"
	"testing"
	"time"
)

// TestHostileClientSettings: the bounds under hostile clients are settings
// like the others, as flags and COVET_* variables.
func TestHostileClientSettings(t *testing.T) {
	env := []string{"COVET_MAX_BUFFERED_RESPONSE_BYTES=67108864", "COVET_RESPONSE_BUDGET_WAIT=250ms", "COVET_MAX_CONNECTIONS=100"}
	cfg, _, err := parseFlags([]string{"--workers", "0", "--max-connections", "8", "--min-write-rate", "1000"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server
	if s.MaxConnections != 8 || s.MinWriteRate != 1000 || s.MaxBufferedResponseBytes != 64<<20 || s.ResponseBudgetWait != 250*time.Millisecond {
		t.Fatalf("got max_connections %d, min_write_rate %d, max_buffered_response_bytes %d, response_budget_wait %v",
			s.MaxConnections, s.MinWriteRate, s.MaxBufferedResponseBytes, s.ResponseBudgetWait)
	}
	if _, _, err := parseFlags([]string{"--workers", "0", "--max-buffered-response-bytes", "1000"}, nil, io.Discard); err == nil {
		t.Error("a response budget smaller than one response was accepted")
	}
}

// TestOpenFileLimit: the gateway runs with its soft open-file limit raised
// to the hard limit (Go's runtime does so when the process starts, to one
// below the hard limit, and gives spawned processes the original back; see
// syscall/rlimit.go), and max_connections defaults to 7/8 of it, leaving
// the rest for workers, segments and files. Run it under `ulimit -Sn 1000`
// to see the raise.
func TestOpenFileLimit(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < rl.Max-1 {
		t.Errorf("soft open-file limit %d, hard %d: not raised", rl.Cur, rl.Max)
	}
	cfg, _, err := parseFlags([]string{"--workers", "0"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := int(rl.Cur - rl.Cur/8); rl.Cur <= 1<<30 && cfg.Server.MaxConnections != want {
		t.Errorf("max_connections defaults to %d, want %d (7/8 of %d)", cfg.Server.MaxConnections, want, rl.Cur)
	}
}
