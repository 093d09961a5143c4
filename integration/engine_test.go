package integration

import (
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The engine tests choose their engine themselves: they run the same way whatever
// $COVET_TEST_ENGINE says.

// fallbackMsg is the one line the gateway logs when --engine auto finds io_uring
// refused and serves on netpoll.
const fallbackMsg = "io_uring unavailable, using the netpoll engine"

// buildNouring builds integration/nouring, the helper that runs a program with
// io_uring refused by a seccomp filter as under Docker's default profile.
func buildNouring(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nouring")
	// go test puts its own go first on PATH.
	out, err := exec.Command("go", "build", "-o", bin, "github.com/covetpy/covetpy/integration/nouring").CombinedOutput()
	if err != nil {
		t.Fatalf("go build nouring: %v\n%s", err, out)
	}
	return bin
}

// hostIOUring is why io_uring_setup fails in this (unfiltered) process, or nil
// when it works.
func hostIOUring() error {
	var params [120]byte // struct io_uring_params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
	if errno != 0 {
		return errno
	}
	unix.Close(int(fd))
	return nil
}

// logRecords is every JSON log line of out (--log-format json) whose msg is msg.
func logRecords(t *testing.T, out, msg string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(out, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			recs = append(recs, rec)
		}
	}
	return recs
}

// engineInfo is the engine the admin /metrics names in covet_engine_info, failing
// unless exactly one series is 1.
func (a *admin) engineInfo() string {
	a.t.Helper()
	var on []string
	for series, v := range a.scrape() {
		if e, ok := strings.CutPrefix(series, `covet_engine_info{engine="`); ok && v == 1 {
			on = append(on, strings.TrimSuffix(e, `"}`))
		}
	}
	if len(on) != 1 {
		a.t.Fatalf("covet_engine_info is 1 for engines %q, want exactly one", on)
	}
	return on[0]
}

// TestEngineFallback: with io_uring refused by seccomp (EPERM, as under Docker's
// default profile), --engine auto starts on netpoll, logs why in one WARN line,
// serves, and says netpoll in covet_engine_info; with no --engine (the default,
// netpoll) it serves on netpoll without probing, so with no such line.
func TestEngineFallback(t *testing.T) {
	nouring := buildNouring(t)
	for _, tc := range []struct {
		name     string
		flags    []string
		fallback int // fallback lines logged
	}{
		{"auto", []string{"--engine", "auto"}, 1},
		{"default", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &admin{t: t, addr: freePort(t), c: &http.Client{Timeout: 10 * time.Second}}
			flags := append([]string{"--admin-listen", a.addr, "--log-format", "json"}, tc.flags...)
			g := launchGatewayUnder(t, []string{nouring}, "gwapp", sdkWorker(t, "gwapp"), 1, flags...)
			t.Cleanup(g.stop)
			g.waitServing(1)

			recs := logRecords(t, g.out.String(), fallbackMsg)
			if len(recs) != tc.fallback {
				t.Fatalf("%d log lines %q, want %d; output:\n%s", len(recs), fallbackMsg, tc.fallback, g.out)
			}
			if tc.fallback == 0 {
				if e := a.engineInfo(); e != "netpoll" {
					t.Errorf("covet_engine_info names %q, want netpoll", e)
				}
				return
			}
			if recs[0]["level"] != "WARN" {
				t.Errorf("fallback logged at level %v, want WARN: %v", recs[0]["level"], recs[0])
			}
			if reason, _ := recs[0]["reason"].(string); !strings.Contains(reason, "operation not permitted") {
				t.Errorf("fallback reason %q, want it to say operation not permitted (EPERM): %v", reason, recs[0])
			}
			if st, body, _ := g.get("/hello"); st != 200 || body != "hello" {
				t.Errorf("GET /hello on the fallback: %d %q, want 200 \"hello\"", st, body)
			}
			if e := a.engineInfo(); e != "netpoll" {
				t.Errorf("covet_engine_info names %q, want netpoll", e)
			}
		})
	}
}

// TestEngineUringRefused: --engine uring with io_uring refused by seccomp makes the
// gateway exit non-zero, naming the engine and why, rather than serve on netpoll.
func TestEngineUringRefused(t *testing.T) {
	nouring := buildNouring(t)
	g := launchGatewayUnder(t, []string{nouring}, "gwapp", sdkWorker(t, "gwapp"), 1, "--engine", "uring")
	var err error
	select {
	case err = <-g.exited:
	case <-time.After(20 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
		t.Fatalf("the gateway still runs 20s after --engine uring under seccomp; output:\n%s", g.out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("gateway exited with %v, want a non-zero status; output:\n%s", err, g.out)
	}
	found := false
	for _, line := range strings.Split(g.out.String(), "\n") {
		if strings.Contains(line, "operation not permitted") && strings.Contains(line, "engine") && strings.Contains(line, "uring") {
			found = true
		}
	}
	if !found {
		t.Errorf("no line names the engine (uring) and the reason (operation not permitted); output:\n%s", g.out)
	}
	if logRecords(t, g.out.String(), fallbackMsg) != nil || strings.Contains(g.out.String(), fallbackMsg) {
		t.Errorf("--engine uring fell back to netpoll; output:\n%s", g.out)
	}
}

// TestEngineAutoPicksUring: without the filter, on a host where io_uring works,
// --engine auto serves on uring, and logs no fallback.
func TestEngineAutoPicksUring(t *testing.T) {
	if err := hostIOUring(); err != nil {
		t.Skipf("io_uring_setup fails on this host (%v): auto rightly picks netpoll here", err)
	}
	a := &admin{t: t, addr: freePort(t), c: &http.Client{Timeout: 10 * time.Second}}
	g := launchGatewayUnder(t, nil, "gwapp", sdkWorker(t, "gwapp"), 1, "--engine", "auto", "--admin-listen", a.addr)
	t.Cleanup(g.stop)
	g.waitServing(1)
	if e := a.engineInfo(); e != "uring" {
		t.Errorf("covet_engine_info names %q, want uring; output:\n%s", e, g.out)
	}
	if strings.Contains(g.out.String(), fallbackMsg) {
		t.Errorf("auto fell back with io_uring working; output:\n%s", g.out)
	}
}
