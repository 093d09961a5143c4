package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/covetpy/covetpy/integration/harness"
)

// TestExactlyOnceAfterGatewayClose: the gateway ends a worker's session itself (a
// protocol violation) while the worker lives on, holding records it has read but not
// yet released; it releases and runs them after the gateway has hung up. The gateway
// may retry on another worker only what the gone worker never took (PROTOCOL.md 1.1),
// and it can know that only once the worker has gone: each request of a burst of
// non-idempotent POSTs must run once or not at all, never twice.
//
// In the linger case the worker keeps its control socket open long after: with no
// proof that it has gone the gateway retries nothing and answers 502.
func TestExactlyOnceAfterGatewayClose(t *testing.T) {
	t.Run("worker exits", func(t *testing.T) { testExactlyOnce(t, false) })
	t.Run("worker lingers", func(t *testing.T) { testExactlyOnce(t, true) })
}

func testExactlyOnce(t *testing.T, linger bool) {
	sock := t.TempDir() + "/control.sock"
	g := startGateway(t, "gwapp", 1, "--control-socket", sock)
	var args []string
	if linger {
		args = append(args, "linger")
	}
	done := startShmWorker(t, g, "taker_shm.py", sock, 2, args...)
	status := postBurst(t, g, 40)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("taker_shm.py: %v; output:\n%s", err, g.out)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("taker_shm.py still running; output:\n%s", g.out)
	}
	runs := onceRuns(t, g)
	taker := readIDs(g, "taker.log")
	if len(taker) == 0 {
		t.Errorf("the worker that broke the protocol read no request: the test proved nothing; statuses %v", status)
	}
	failed, notRun := 0, 0
	for i, st := range status {
		id := fmt.Sprintf("once-%d", i)
		switch {
		case runs[id] > 1:
			t.Errorf("%s ran %d times (status %d)", id, runs[id], st)
		case st == 200 && runs[id] != 1:
			t.Errorf("%s: 200 but ran %d times", id, runs[id])
		case st != 200 && st != 502:
			t.Errorf("%s: status %d, want 200 or 502", id, st)
		}
		if st == 502 {
			failed++
			if runs[id] == 0 {
				notRun++
			}
		}
	}
	t.Logf("%d of %d requests failed with 502 (%d of them never ran); the worker the gateway closed ran %v", failed, len(status), notRun, taker)
	if lingered := strings.Contains(g.out.String(), "worker not known to be gone"); lingered != linger {
		t.Errorf("gateway said the worker was not known to be gone: %v, want %v; output:\n%s", lingered, linger, g.out)
	}
	if st, body, _ := g.get("/hello"); st != 200 || body != "hello" {
		t.Errorf("after the burst: %d %q", st, body)
	}
}

// TestRetryAfterSpawnedWorkerReaped: the same worker, spawned by the gateway. The
// gateway kills it when it breaks the protocol, so it never runs what it read; once
// the process is reaped the requests it never released go to the other worker: every
// request runs exactly once and gets 200.
func TestRetryAfterSpawnedWorkerReaped(t *testing.T) {
	py, err := harness.Python()
	if err != nil {
		t.Skip(err)
	}
	root, _ := harness.RepoRoot()
	sock := t.TempDir() + "/control.sock"
	g := launchGateway(t, "gwapp", py+" "+filepath.Join(root, "integration", "workers", "taker_shm.py"), 1,
		"--control-socket", sock, "--drain-timeout", "1s")
	t.Cleanup(g.stop)
	startWorker(t, g, sock, 2, py, "-m", "covet", "worker", "gwapp:app")
	status := postBurst(t, g, 40)
	runs := onceRuns(t, g)
	for i, st := range status {
		if id := fmt.Sprintf("once-%d", i); st != 200 || runs[id] != 1 {
			t.Errorf("%s: status %d, ran %d times; want 200, once", id, st, runs[id])
		}
	}
	if !strings.Contains(g.out.String(), "retrying a request the dead worker never took") {
		t.Errorf("no request was retried: the test proved nothing; output:\n%s", g.out)
	}
}

// postBurst sends n concurrent POST /once requests with X-Request-ID once-<i> and
// returns their statuses.
func postBurst(t *testing.T, g *gateway, n int) []int {
	status := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			req, _ := http.NewRequest("POST", g.url("/once"), strings.NewReader("x"))
			req.Header.Set("X-Request-ID", fmt.Sprintf("once-%d", i))
			resp, err := c.Do(req)
			if err != nil {
				t.Errorf("POST once-%d: %v", i, err)
				return
			}
			resp.Body.Close()
			status[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	return status
}

// onceRuns counts the runs of POST /once per request id (once.log).
func onceRuns(t *testing.T, g *gateway) map[string]int {
	runs := map[string]int{}
	for _, id := range readIDs(g, "once.log") {
		runs[id]++
	}
	return runs
}

func readIDs(g *gateway, name string) []string {
	b, _ := os.ReadFile(filepath.Join(g.state, name))
	return strings.Fields(string(b))
}
