package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/integration/harness"
)

// startFailingGateway runs the gateway with one worker of module:app registering as
// app, and returns it with its admin address; it does not wait for the app to serve.
func startFailingGateway(t *testing.T, app, module string, flags ...string) (*gateway, string) {
	t.Helper()
	adminAddr := freePort(t)
	g := launchGateway(t, app, sdkWorker(t, module), 1, append([]string{"--admin-listen", adminAddr}, flags...)...)
	t.Cleanup(func() { g.cmd.Process.Kill() })
	return g, adminAddr
}

// waitExit waits for the gateway to exit by itself and returns how.
func (g *gateway) waitExit(within time.Duration) error {
	g.t.Helper()
	select {
	case err := <-g.exited:
		return err
	case <-time.After(within):
		g.t.Fatalf("gateway still running after %v; output:\n%s", within, g.out)
		return nil
	}
}

// TestNoWorkerIs503: an app whose startup hook raises never gets a worker. Its
// requests get 503 with Retry-After (not 404: the routes come from the workers),
// /readyz says not ready, the log gives the worker's error once per failed start,
// and after max_startup_failures failures in a row the gateway exits non-zero with it.
func TestNoWorkerIs503(t *testing.T) {
	const failures = 3
	g, admin := startFailingGateway(t, "failapp", "failapp",
		"--max-startup-failures", fmt.Sprint(failures), "--restart-backoff", "1s")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	do := func(method, url string) (int, http.Header) {
		req, _ := http.NewRequest(method, url, strings.NewReader("x"))
		for deadline := time.Now().Add(10 * time.Second); ; {
			resp, err := c.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode, resp.Header
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s: %v; output:\n%s", method, url, err, g.out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, r := range []struct{ method, path string }{{"GET", "/hello"}, {"GET", "/no/such/route"}, {"POST", "/hello"}} {
		st, h := do(r.method, g.url(r.path))
		if st != 503 || h.Get("Retry-After") == "" {
			t.Errorf("%s %s with no worker: %d, Retry-After %q; want 503 with Retry-After", r.method, r.path, st, h.Get("Retry-After"))
		}
	}
	if st, _ := do("GET", "http://"+admin+"/readyz"); st != 503 {
		t.Errorf("/readyz with no worker: %d, want 503", st)
	}
	err := g.waitExit(60 * time.Second)
	if err == nil {
		t.Errorf("gateway exited 0 after its workers kept failing; output:\n%s", g.out)
	}
	out := g.out.String()
	const cause = "worker exited during startup: RuntimeError: db unreachable"
	if n := strings.Count(out, `msg="`+cause+`"`); n != failures {
		t.Errorf("the log gives the cause %d times, want once per failed start (%d); output:\n%s", n, failures, out)
	}
	if want := fmt.Sprintf("covet-gateway: app \"failapp\": a worker failed at startup %d times in a row: %s", failures, cause); !strings.Contains(out, want) {
		t.Errorf("exit message missing %q; output:\n%s", want, out)
	}
	if strings.Contains(out, "unexpected message") {
		t.Errorf("the log blames the protocol; output:\n%s", out)
	}
}

// TestWrongAppNameExits: workers that register under another app name than the
// gateway's --app are refused; the gateway says so and exits non-zero.
func TestWrongAppNameExits(t *testing.T) {
	g, _ := startFailingGateway(t, "shop", "gwapp", "--max-startup-failures", "2", "--restart-backoff", "100ms")
	if err := g.waitExit(60 * time.Second); err == nil {
		t.Errorf("gateway exited 0; output:\n%s", g.out)
	}
	if want := `worker says app \"gwapp\", the gateway expects \"shop\"`; !strings.Contains(g.out.String(), want) {
		t.Errorf("output does not say %s:\n%s", want, g.out)
	}
}

// TestAllWorkersKilledRequestsWait: every worker of the app dies at once. While the
// supervisor starts new ones, requests wait in the queue (within queue_timeout)
// instead of failing at once with 503, and get 200 once a worker is back.
func TestAllWorkersKilledRequestsWait(t *testing.T) {
	g := startGateway(t, "gwapp", 2, "--queue-timeout", "20s")
	pids := map[string]bool{}
	for i := 0; len(pids) < 2; i++ {
		if i > 100 {
			t.Fatalf("saw workers %v, want 2", pids)
		}
		_, pid, _ := g.get("/pid")
		pids[pid] = true
	}
	before := strings.Count(g.out.String(), "worker attached")
	for pid := range pids {
		if err := exec.Command("kill", "-KILL", pid).Run(); err != nil {
			t.Fatal(err)
		}
	}
	const n = 20
	status := make(chan int, n)
	for range n {
		go func() {
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get(g.url("/hello"))
			if err != nil {
				t.Error(err)
				status <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status <- resp.StatusCode
		}()
	}
	var got []int
	for range n {
		got = append(got, <-status)
	}
	for _, st := range got {
		if st != 200 {
			t.Errorf("statuses while the workers came back: %v, want all 200; output:\n%s", got, g.out)
			break
		}
	}
	if after := strings.Count(g.out.String(), "worker attached"); after < before+1 {
		t.Errorf("no worker attached again (%d before the kill, %d after)", before, after)
	}
}

// TestCovetRunExitsWhenWorkersFail: `covet run` execs the gateway, so an app whose
// workers cannot start makes it exit non-zero with the worker's error.
func TestCovetRunExitsWhenWorkersFail(t *testing.T) {
	py, err := harness.Python()
	if err != nil {
		t.Skip(err)
	}
	root, _ := harness.RepoRoot()
	_, port, _ := strings.Cut(freePort(t), ":")
	argv := []string{"-m", "covet", "run", "failapp:app", "--workers", "1", "--port", port, "--gateway", gatewayBinary(t)}
	if e := testEngine(); e != "" {
		argv = append(argv, "--engine", e)
	}
	cmd := exec.Command(py, argv...)
	cmd.Dir = filepath.Join(root, "integration", "apps")
	cmd.Env = append(withoutEnv(os.Environ(), "COVET_ENGINE"), "COVET_MAX_STARTUP_FAILURES=2")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			t.Errorf("covet run exited 0; output:\n%s", out)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("covet run still running; output:\n%s", out)
	}
	if want := "worker failed at startup 2 times in a row: worker exited during startup: RuntimeError: db unreachable"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}
