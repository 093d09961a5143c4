package integration

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// admin is the gateway's admin listener (--admin-listen).
type admin struct {
	t    *testing.T
	addr string
	c    *http.Client
}

func startGatewayWithAdmin(t *testing.T, module string, workers int, flags ...string) (*gateway, *admin) {
	t.Helper()
	a := &admin{t: t, addr: freePort(t), c: &http.Client{Timeout: 10 * time.Second}}
	g := startGateway(t, module, workers, append([]string{"--admin-listen", a.addr}, flags...)...)
	// The matrix really switches engines: the gateway says it runs the one asked for.
	if e := testEngine(); e != "" && !namesEngine(flags) {
		if got := a.engineInfo(); got != e {
			t.Fatalf("COVET_TEST_ENGINE=%s, but covet_engine_info names %q", e, got)
		}
	}
	return g, a
}

func (a *admin) get(path string) (int, string) {
	a.t.Helper()
	resp, err := a.c.Get("http://" + a.addr + path)
	if err != nil {
		a.t.Fatalf("admin GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("admin GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// scrape returns every sample of /metrics (text format) by its full series name,
// e.g. `covet_requests_total{app="gwapp",method="GET",protocol="http/1.1",route="/hello",status="200"}`.
func (a *admin) scrape() map[string]float64 {
	a.t.Helper()
	st, body := a.get("/metrics")
	if st != 200 {
		a.t.Fatalf("/metrics: %d\n%s", st, body)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			a.t.Fatalf("/metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// settled scrapes until series has the same value in two scrapes 50ms apart.
func (a *admin) settled(series string) map[string]float64 {
	a.t.Helper()
	prev := a.scrape()
	for i := 0; i < 100; i++ {
		time.Sleep(50 * time.Millisecond)
		cur := a.scrape()
		if cur[series] == prev[series] {
			return cur
		}
		prev = cur
	}
	a.t.Fatalf("%s never settled", series)
	return nil
}

// TestGatewayMetrics: the request counter and the latency histogram of a route move
// by exactly the requests made; /readyz turns 503 when the app's only worker is
// killed and 200 again once the supervisor has restarted it; the restart is counted.
func TestGatewayMetrics(t *testing.T) {
	// A 1s restart backoff leaves /readyz a wide window to report the dead worker.
	g, a := startGatewayWithAdmin(t, "gwapp", 1, "--restart-backoff", "1s", "--access-log")

	if st, body := a.get("/healthz"); st != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", st, body)
	}
	if st, body := a.get("/readyz"); st != 200 {
		t.Fatalf("/readyz with a live worker: %d %q", st, body)
	}

	const (
		counter = `covet_requests_total{app="gwapp",method="GET",protocol="http/1.1",route="/hello",status="200"}`
		latency = `covet_request_duration_seconds_count{app="gwapp",method="GET",route="/hello"}`
		le1s    = `covet_request_duration_seconds_bucket{app="gwapp",method="GET",route="/hello",le="1"}`
		ready   = `covet_workers{app="gwapp",state="ready"}`
		miss    = `covet_requests_total{app="",method="GET",protocol="http/1.1",route="unmatched",status="404"}`
	)
	// A request is recorded just after its response is written, so a scrape that
	// follows a response at once may miss it: settle before, poll after.
	before := a.settled(counter)
	const n = 25
	for i := 0; i < n; i++ {
		if st, body, _ := g.get("/hello"); st != 200 || body != "hello" {
			t.Fatalf("GET /hello: %d %q", st, body)
		}
	}
	if st, _, _ := g.get("/no/such/route"); st != 404 {
		t.Fatalf("GET /no/such/route: %d", st)
	}
	after := a.settled(counter)
	for _, c := range []struct {
		series string
		delta  float64
	}{{counter, n}, {latency, n}, {le1s, n}, {miss, 1}} {
		if d := after[c.series] - before[c.series]; d != c.delta {
			t.Errorf("%s moved by %v, want %v", c.series, d, c.delta)
		}
	}
	if after[ready] != 1 {
		t.Errorf("%s = %v, want 1", ready, after[ready])
	}
	for _, series := range []string{
		`covet_requests_in_flight{app="gwapp"}`,
		`covet_queue_depth{app="gwapp"}`,
		`covet_queue_wait_seconds_count{app="gwapp"}`,
		`covet_connections_open{protocol="http/1.1"}`,
		`covet_connections_accepted_total`,
		`covet_bytes_received_total`,
		`covet_bytes_sent_total`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if _, ok := after[series]; !ok {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	var rings int
	for k, v := range after {
		if strings.HasPrefix(k, `covet_ring_bytes_capacity{app="gwapp"`) && v > 0 {
			rings++
		}
	}
	if rings != 2 {
		t.Errorf("%d ring capacity series for the worker, want 2 (request, response)", rings)
	}
	if !strings.Contains(g.out.String(), `msg=request component=access method=GET path=/hello status=200`) {
		t.Errorf("no access log line for GET /hello in the gateway's output:\n%s", g.out)
	}

	// Kill the only worker: not ready until the supervisor has replaced it.
	_, pid, _ := g.get("/pid")
	p, err := strconv.Atoi(pid)
	if err != nil {
		t.Fatalf("/pid: %q", pid)
	}
	restartsBefore := after[`covet_worker_restarts_total{app="gwapp",reason="signal"}`]
	if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var st int
	var body string
	for {
		if st, body = a.get("/readyz"); st == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q 10s after the worker was killed", st, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(body, `app "gwapp" has no live worker`) {
		t.Errorf("/readyz 503 body %q does not name the app", body)
	}
	for {
		if st, body = a.get("/readyz"); st == 200 {
			break
		}
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("/readyz still %d %q: the worker was not restarted; output:\n%s", st, body, g.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	final := a.scrape()
	if d := final[`covet_worker_restarts_total{app="gwapp",reason="signal"}`] - restartsBefore; d != 1 {
		t.Errorf("worker restarts (reason signal) moved by %v, want 1", d)
	}
	// The names the deploy dashboards query (deploy_test.go) are the ones exported
	// (after the restart: a counter vector has no series before its first event).
	for name, m := range covetMetrics {
		if m.histogram {
			name += "_count"
		}
		found := false
		for series := range final {
			if series == name || strings.HasPrefix(series, name+"{") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("the dashboards query %s, which /metrics lacks", name)
		}
	}
	if final[ready] != 1 {
		t.Errorf("%s = %v after the restart, want 1", ready, final[ready])
	}
	if _, newPID, _ := g.get("/pid"); newPID == pid {
		t.Errorf("still served by the killed worker %s", pid)
	}
	if os.Getenv("COVET_DEBUG_METRICS") != "" {
		_, text := a.get("/metrics")
		fmt.Println(text)
	}
}

// TestAdminPprof: --pprof adds Go's profiler to the admin listener, and only then.
func TestAdminPprof(t *testing.T) {
	_, a := startGatewayWithAdmin(t, "gwapp", 1, "--pprof")
	if st, body := a.get("/debug/pprof/cmdline"); st != 200 || !strings.Contains(body, "--pprof") {
		t.Fatalf("/debug/pprof/cmdline: %d %q", st, body)
	}
	if st, body := a.get("/debug/pprof/profile?seconds=1"); st != 200 || len(body) == 0 {
		t.Fatalf("/debug/pprof/profile: %d, %d bytes", st, len(body))
	}
	if st, _ := a.get("/healthz"); st != 200 {
		t.Fatalf("/healthz beside pprof: %d", st)
	}
	_, plain := startGatewayWithAdmin(t, "gwapp", 1)
	if st, _ := plain.get("/debug/pprof/cmdline"); st != 404 {
		t.Fatalf("/debug/pprof/ without --pprof: %d, want 404", st)
	}
}

// TestLateWakeupsCounted: a worker that commits its answers but never rings the
// gateway's doorbell (integration/workers/mute_shm.py) is still answered, because the
// response-ring reader's sleep is bounded, and every such answer is counted in
// covet_worker_late_wakeups_total.
func TestLateWakeupsCounted(t *testing.T) {
	sock := t.TempDir() + "/control.sock"
	g, a := startGatewayWithAdmin(t, "gwapp", 1, "--control-socket", sock)
	startShmWorker(t, g, "mute_shm.py", sock, 2)
	// Requests alternate between the app's two workers.
	muted := 0
	for i := 0; i < 12; i++ {
		st, body, _ := g.get("/hello")
		switch {
		case st == 200 && body == "mute":
			muted++
		case st == 200 && body == "hello":
		default:
			t.Fatalf("request %d: %d %q", i, st, body)
		}
	}
	if muted == 0 {
		t.Fatal("the mute worker got no request")
	}
	// Each answer of the mute worker is found when a 10 ms sleep runs out,
	// except one that lands just as a sleep ends: the reader's 20 µs spin
	// before its next sleep then finds it, which is no late wakeup. That
	// window is tens of microseconds in every ten milliseconds, so most
	// answers count.
	series := `covet_worker_late_wakeups_total{app="gwapp"}`
	if late := a.scrape()[series]; late < float64((muted+1)/2) {
		t.Errorf("%s = %v, want at least %d (half the mute worker's %d answers)", series, late, (muted+1)/2, muted)
	}
}
