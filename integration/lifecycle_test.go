package integration

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Worker lifecycle: rolling restarts on SIGHUP, recycling after --max-requests, and
// the heartbeat watchdog (gateway/supervisor/lifecycle.go).

// loadResult is what a bounded load run saw.
type loadResult struct {
	ok       int
	failures []string       // every non-200 answer or transport error
	pids     map[string]int // worker pid (GET /pid's body) -> answers
}

// runLoad makes keep-alive GET /pid requests from clients goroutines, each at most
// perClient requests, for at least minDur and then until done() (checked between
// requests), but never longer than maxDur.
func runLoad(g *gateway, clients, perClient int, minDur, maxDur time.Duration, done func() bool) loadResult {
	var (
		mu  sync.Mutex
		res = loadResult{pids: map[string]int{}}
		wg  sync.WaitGroup
	)
	start := time.Now()
	var stop atomic.Bool
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Timeout: 15 * time.Second, Transport: tr}
			for i := 0; i < perClient && !stop.Load(); i++ {
				el := time.Since(start)
				if el > maxDur || (el > minDur && done()) {
					stop.Store(true)
					return
				}
				resp, err := c.Get(g.url("/pid"))
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				switch {
				case err != nil:
					res.failures = append(res.failures, fmt.Sprintf("after %v: %v", time.Since(start).Round(time.Millisecond), err))
				case resp.StatusCode != 200:
					res.failures = append(res.failures, fmt.Sprintf("after %v: status %d: %s", time.Since(start).Round(time.Millisecond), resp.StatusCode, body))
				default:
					res.ok++
					res.pids[string(body)]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return res
}

// workerPids asks /pid until it has seen n distinct pids (ties between idle workers
// go round-robin, so a few requests suffice).
func workerPids(t *testing.T, g *gateway, n int) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for i := 0; len(seen) < n; i++ {
		if i == 200 {
			t.Fatalf("saw only pids %v of %d workers; output:\n%s", seen, n, g.out)
		}
		if code, pid, _ := g.get("/pid"); code == 200 {
			seen[pid] = true
		}
	}
	return seen
}

func checkNoFailures(t *testing.T, g *gateway, res loadResult) {
	t.Helper()
	if len(res.failures) > 0 {
		n := min(len(res.failures), 10)
		t.Fatalf("%d of %d requests failed; first %d:\n%s\noutput:\n%s", len(res.failures), len(res.failures)+res.ok, n,
			strings.Join(res.failures[:n], "\n"), g.out)
	}
	if res.ok == 0 {
		t.Fatal("no request was made")
	}
}

func waitLog(t *testing.T, g *gateway, substr string, count int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for strings.Count(g.out.String(), substr) < count {
		if time.Now().After(deadline) {
			t.Fatalf("log has %d of %d %q within %v; output:\n%s", strings.Count(g.out.String(), substr), count, substr, within, g.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLifecycleSIGHUPRollingRestart: under constant load, SIGHUP replaces every worker
// (new pids) and not one request fails.
func TestLifecycleSIGHUPRollingRestart(t *testing.T) {
	const workers = 2
	g := startGateway(t, "gwapp", workers)
	before := workerPids(t, g, workers)

	var sent atomic.Bool
	go func() {
		time.Sleep(500 * time.Millisecond)
		g.cmd.Process.Signal(syscall.SIGHUP)
		sent.Store(true)
	}()
	res := runLoad(g, 4, 5000, 3*time.Second, 30*time.Second, func() bool {
		return sent.Load() && strings.Contains(g.out.String(), "rolling restart done")
	})
	checkNoFailures(t, g, res)
	waitLog(t, g, "rolling restart done", 1, 30*time.Second)
	if strings.Contains(g.out.String(), "rolling restart failed") {
		t.Fatalf("roll failed; output:\n%s", g.out)
	}
	after := workerPids(t, g, workers)
	for pid := range after {
		if before[pid] {
			t.Errorf("worker %s survived the rolling restart (before %v, after %v)", pid, before, after)
		}
	}
	// The old pids served during the load, and so did the new ones.
	for pid := range before {
		if res.pids[pid] == 0 {
			t.Errorf("old worker %s served nothing under load: %v", pid, res.pids)
		}
	}
	t.Logf("%d requests, all 200; answers per pid: %v", res.ok, res.pids)
}

// TestLifecycleMaxRequestsRecycles: with --max-requests, workers are replaced under
// load (new pids, a log line per recycle) and not one request fails.
func TestLifecycleMaxRequestsRecycles(t *testing.T) {
	const workers = 2
	g := startGateway(t, "gwapp", workers, "--max-requests", "200", "--max-requests-jitter", "20")
	res := runLoad(g, 4, 3000, 3*time.Second, 3*time.Second, func() bool { return true })
	checkNoFailures(t, g, res)
	if n := strings.Count(g.out.String(), "reason=max_requests"); n == 0 {
		t.Fatalf("no recycle logged; output:\n%s", g.out)
	}
	if len(res.pids) <= workers {
		t.Fatalf("only %d worker pids answered (%v): no recycle took effect", len(res.pids), res.pids)
	}
	// Each worker serves past its limit until its replacement is ready (a Python
	// start takes a few hundred milliseconds), so the counts run above 200.
	t.Logf("%d requests, all 200; %d worker pids: %v", res.ok, len(res.pids), res.pids)
}

// TestLifecycleWatchdogKillsBlockedWorker: a handler that blocks the worker's event
// loop stops its heartbeat; the watchdog kills the worker with the request in flight
// (502), and a new worker serves afterwards.
func TestLifecycleWatchdogKillsBlockedWorker(t *testing.T) {
	g := startGateway(t, "gwapp", 1, "--watchdog-timeout", "1s")
	_, oldPid, _ := g.get("/pid")

	start := time.Now()
	code, body, _ := g.get("/block?ms=8000")
	took := time.Since(start)
	if code != 502 {
		t.Fatalf("GET /block: %d %q after %v, want 502; output:\n%s", code, body, took, g.out)
	}
	if took > 6*time.Second {
		t.Errorf("502 took %v: the watchdog (1s) should have killed the worker well before the handler ended (8s)", took)
	}
	blocked, ok := g.waitFile("blocked.pid", time.Second)
	if !ok || blocked != oldPid {
		t.Fatalf("blocked.pid %q (found %v), want the worker's pid %s", blocked, ok, oldPid)
	}
	pid, _ := strconv.Atoi(blocked)
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil { // gone, not even a zombie: the supervisor reaped it
		if time.Now().After(deadline) {
			t.Fatalf("worker %d still exists", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill(%d, 0): %v", pid, err)
	}
	if !strings.Contains(g.out.String(), "watchdog: worker heartbeat stalled") {
		t.Errorf("no watchdog log line; output:\n%s", g.out)
	}
	// A replacement serves.
	deadline = time.Now().Add(20 * time.Second)
	for {
		code, newPid, _ := g.get("/pid")
		if code == 200 && newPid != oldPid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replacement worker served within 20s (last %d %q); output:\n%s", code, newPid, g.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body, _ := g.get("/hello"); code != 200 || body != "hello" {
		t.Fatalf("after the restart GET /hello: %d %q", code, body)
	}
}

// TestLifecycleMaxRSSRecycles: a worker above --max-rss is replaced, under load,
// without a failed request (every Python worker is above 1 MiB, so each recycles).
func TestLifecycleMaxRSSRecycles(t *testing.T) {
	g := startGateway(t, "gwapp", 1, "--max-rss", "1M")
	_, first, _ := g.get("/pid")
	// Load until a recycle has completed (memory is checked every second).
	res := runLoad(g, 2, 20000, 1500*time.Millisecond, 15*time.Second, func() bool {
		return strings.Contains(g.out.String(), "retiring worker")
	})
	checkNoFailures(t, g, res)
	if !strings.Contains(g.out.String(), "reason=max_rss") {
		t.Fatalf("no max_rss recycle logged; output:\n%s", g.out)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, now, _ := g.get("/pid"); code == 200 && now != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %s still serving after its recycle; output:\n%s", first, g.out)
		}
	}
}

// TestLifecycleSIGHUPWithNewRoutes: when the restarted app's routes differ (a route
// added), the old workers cannot share the route table with the new ones: the roll
// drains them first, then starts the new ones, which serve the new route.
func TestLifecycleSIGHUPWithNewRoutes(t *testing.T) {
	g := startGateway(t, "gwapp", 2)
	if code, _, _ := g.get("/extra"); code != 404 {
		t.Fatalf("GET /extra before the change: %d, want 404", code)
	}
	if err := os.WriteFile(filepath.Join(g.state, "extra-route"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, g, "rolling restart", 2, 30*time.Second) // "rolling restart" and "... done"/"... failed"
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body, _ := g.get("/extra")
		if code == 200 && body == "extra" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /extra after SIGHUP: %d %q; output:\n%s", code, body, g.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(g.out.String(), "routes differ") || strings.Contains(g.out.String(), "rolling restart failed") {
		t.Errorf("expected the no-overlap restart; output:\n%s", g.out)
	}
	waitLog(t, g, "worker attached", 4, 20*time.Second)
	if code, _, _ := g.get("/hello"); code != 200 {
		t.Fatalf("GET /hello after the restart: %d", code)
	}
}
