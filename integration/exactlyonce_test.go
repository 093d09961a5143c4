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
)

// TestExactlyOnceAfterGatewayClose: the gateway ends a worker's session itself (a
// protocol violation) while the worker lives on, holding records it has read but not
// yet released; it releases and runs them after the gateway has hung up. The gateway
// may retry on another worker only what the gone worker never took (PROTOCOL.md 1.1),
// and it can know that only once the worker has gone: each request of a burst of
// non-idempotent POSTs must run once or not at all, never twice.
func TestExactlyOnceAfterGatewayClose(t *testing.T) {
	sock := t.TempDir() + "/control.sock"
	g := startGateway(t, "gwapp", 1, "--control-socket", sock)
	done := startShmWorker(t, g, "taker_shm.py", sock, 2, g.state)

	const n = 40
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
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("taker_shm.py: %v; output:\n%s", err, g.out)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("taker_shm.py still running; output:\n%s", g.out)
	}
	b, err := os.ReadFile(filepath.Join(g.state, "once.log"))
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{}
	for _, id := range strings.Fields(string(b)) {
		runs[id]++
	}
	failed := 0
	for i := range n {
		id := fmt.Sprintf("once-%d", i)
		switch {
		case runs[id] > 1:
			t.Errorf("%s ran %d times (status %d)", id, runs[id], status[i])
		case status[i] == 200 && runs[id] != 1:
			t.Errorf("%s: 200 but ran %d times", id, runs[id])
		case status[i] != 200 && status[i] != 502:
			t.Errorf("%s: status %d, want 200 or 502", id, status[i])
		}
		if status[i] == 502 {
			failed++
		}
	}
	taker, _ := os.ReadFile(filepath.Join(g.state, "taker.log"))
	if len(strings.Fields(string(taker))) == 0 {
		t.Errorf("the worker that broke the protocol read no request: the test proved nothing; statuses %v", status)
	}
	t.Logf("%d of %d requests failed with 502; the worker the gateway closed ran %s", failed, n, strings.Fields(string(taker)))
	if st, body, _ := g.get("/hello"); st != 200 || body != "hello" {
		t.Errorf("after the burst: %d %q", st, body)
	}
}
