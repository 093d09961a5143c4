package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/covetpy/covetpy/integration/harness"
)

// TestGatewayPipelinedInOrder: three pipelined requests in one write, the first the
// slowest, are answered in request order.
func TestGatewayPipelinedInOrder(t *testing.T) {
	g := startGateway(t, "gwapp", 2)
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	req := "GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /slow?ms=20 HTTP/1.1\r\nHost: x\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for i, want := range []string{"slept 300", "hello", "slept 20"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("response %d = %d %q, want 200 %q", i, resp.StatusCode, b, want)
		}
	}
}

// TestGatewayWorkerKilledMidRequest: the worker running a request is SIGKILLed; that
// client gets 502, clients of the other worker are unaffected, and the dead worker
// is replaced.
func TestGatewayWorkerKilledMidRequest(t *testing.T) {
	// One request per worker at a time: while the doomed worker holds /doomed, every
	// other request goes to the healthy worker (or waits for it).
	g := startGateway(t, "gwapp", 2, "--max-inflight", "1")
	pidsBefore := map[string]bool{}
	for i := 0; i < 20 && len(pidsBefore) < 2; i++ {
		_, pid, _ := g.get("/pid")
		pidsBefore[pid] = true
	}

	doomed := make(chan int, 1)
	go func() {
		st, _, _ := g.get("/doomed")
		doomed <- st
	}()
	pid, ok := g.waitFile("doomed.pid", 10*time.Second)
	if !ok {
		t.Fatal("the /doomed handler never ran")
	}

	// Other clients keep going while the worker dies.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(g.url("/hello"))
				if err != nil {
					mu.Lock()
					bad = append(bad, err.Error())
					mu.Unlock()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					mu.Lock()
					bad = append(bad, resp.Status)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	n, _ := strconv.Atoi(pid)
	if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-doomed:
		if st != 502 {
			t.Errorf("client of the killed worker got %d, want 502", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client of the killed worker got no answer")
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	// The other clients were served by the healthy worker throughout. None may fail.
	if len(bad) > 0 {
		t.Errorf("%d requests of other clients failed, e.g. %q", len(bad), bad[0])
	}

	// The supervisor starts a replacement.
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids := map[string]bool{}
		for i := 0; i < 20; i++ {
			_, p, _ := g.get("/pid")
			pids[p] = true
		}
		if len(pids) == 2 && !pids[pid] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replacement worker: pids answering %v (killed %s)", pids, pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGatewayQueueFullAnd503: with every worker busy, a request waits in the queue
// and gets 503 with Retry-After when the queue deadline passes, and a request that
// finds the queue full gets 503 at once.
func TestGatewayQueueFullAnd503(t *testing.T) {
	g := startGateway(t, "gwapp", 1, "--max-inflight", "1", "--queue-size", "1", "--queue-timeout", "300ms")
	busy := make(chan int, 1)
	go func() {
		st, _, _ := g.get("/slow?ms=2500")
		busy <- st
	}()
	time.Sleep(300 * time.Millisecond) // the only credit is taken

	queued := make(chan http.Header, 1)
	go func() {
		st, _, h := g.get("/hello")
		if st != 503 {
			t.Errorf("queued request: status %d, want 503", st)
		}
		queued <- h
	}()
	time.Sleep(100 * time.Millisecond) // it is waiting in the queue (size 1)
	st, _, h := g.get("/hello")
	if st != 503 || h.Get("Retry-After") == "" {
		t.Errorf("request finding the queue full: %d Retry-After=%q, want 503 with Retry-After", st, h.Get("Retry-After"))
	}
	if h := <-queued; h.Get("Retry-After") == "" {
		t.Error("503 after the queue deadline has no Retry-After")
	}
	if st := <-busy; st != 200 {
		t.Errorf("the busy request got %d, want 200", st)
	}
	if st, body, _ := g.get("/hello"); st != 200 || body != "hello" {
		t.Errorf("after the load: %d %q", st, body)
	}
}

// TestGatewayHandlerDeadline: a handler past its route's deadline gives 504, and the
// worker is told to stop (CANCEL reaches the handler).
func TestGatewayHandlerDeadline(t *testing.T) {
	g := startGateway(t, "gwapp", 1)
	start := time.Now()
	st, _, _ := g.get("/deadline")
	if st != 504 {
		t.Errorf("status %d, want 504", st)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("504 took %v; the route's deadline is 300ms", d)
	}
	if _, ok := g.waitFile("cancelled-deadline", 5*time.Second); !ok {
		t.Error("the handler was not cancelled after its deadline")
	}
}

// TestGatewayHandlerTimerReuse: the dispatcher leaves a pooled call's handler timer
// running from one request to the next when it fires no later than the next deadline.
// A timer armed by a 300ms route must not cut off a later request with a longer
// deadline, and one armed by a 30s route must not let a 300ms deadline slip.
func TestGatewayHandlerTimerReuse(t *testing.T) {
	g := startGateway(t, "gwapp", 1)
	for range 20 { // quick requests on the 300ms route: pooled calls with timers due soon
		if st, body, _ := g.get("/deadline?ms=0"); st != 200 || body != "slept 0" {
			t.Fatalf("/deadline?ms=0: %d %q", st, body)
		}
	}
	if st, body, _ := g.get("/slow?ms=800"); st != 200 || body != "slept 800" {
		t.Errorf("a slow request after short-deadline ones: %d %q, want 200", st, body)
	}
	for range 20 { // requests with the default deadline: timers due far ahead
		g.get("/hello")
	}
	start := time.Now()
	if st, _, _ := g.get("/deadline"); st != 504 {
		t.Errorf("/deadline after default-deadline requests: %d, want 504", st)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("504 took %v; the route's deadline is 300ms", d)
	}
}

// TestGatewayProcs: with one spawned worker the gateway runs its Go code on two
// processors at most, and never on more than the CPUs left after the worker's
// (gatewayProcs in the command); --procs overrides that.
func TestGatewayProcs(t *testing.T) {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		t.Skip("GOMAXPROCS is set in this environment, and the gateway then keeps Go's default")
	}
	want := max(1, min(2, runtime.GOMAXPROCS(0)-1))
	for _, tc := range []struct {
		flags []string
		want  int
	}{{nil, want}, {[]string{"--procs", "3"}, 3}} {
		g := startGateway(t, "gwapp", 1, tc.flags...)
		// The listening line: ... procs=N engine=... (text log).
		if re := regexp.MustCompile(fmt.Sprintf(`(?m) msg=listening .* procs=%d( |$)`, tc.want)); !re.MatchString(g.out.String()) {
			t.Errorf("flags %q: no listening line with procs=%d in the gateway's log:\n%s", tc.flags, tc.want, g.out)
		}
	}
}

// TestGatewayClientDisconnectCancels: a client that goes away mid-request makes the
// gateway send CANCEL, which cancels the handler in the worker.
func TestGatewayClientDisconnectCancels(t *testing.T) {
	g := startGateway(t, "gwapp", 1)
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("GET /cancellable/gone HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the handler is running
	conn.Close()
	if _, ok := g.waitFile("cancelled-gone", 5*time.Second); !ok {
		t.Fatalf("the handler was not cancelled after the client left; output:\n%s", g.out)
	}
	// The worker is still healthy.
	if st, body, _ := g.get("/hello"); st != 200 || body != "hello" {
		t.Errorf("after the cancel: %d %q", st, body)
	}
}

// TestGatewayRetryUntakenRequest: a request written to a worker's ring that the
// worker never took (it is stopped) is retried on another worker when that worker
// dies, and succeeds.
func TestGatewayRetryUntakenRequest(t *testing.T) {
	g := startGateway(t, "gwapp", 2, "--max-inflight", "1")
	pids := map[string]bool{}
	for i := 0; i < 20 && len(pids) < 2; i++ {
		_, p, _ := g.get("/pid")
		pids[p] = true
	}
	var frozen int
	for p := range pids {
		frozen, _ = strconv.Atoi(p)
		break
	}
	if err := syscall.Kill(frozen, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Ties go round-robin, so of a few concurrent requests some land on the frozen
	// worker's ring, where nobody takes them.
	results := make(chan string, 4)
	for i := 0; i < 4; i++ {
		go func() {
			st, body, _ := g.get("/pid")
			results <- strconv.Itoa(st) + " " + body
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if err := syscall.Kill(frozen, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		select {
		case r := <-results:
			if !strings.HasPrefix(r, "200 ") || r == "200 "+strconv.Itoa(frozen) {
				t.Errorf("request %d: %q, want 200 from the live worker", i, r)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("a request got no answer")
		}
	}
	if !strings.Contains(g.out.String(), "retrying a request the dead worker never took") {
		t.Errorf("no request was retried; output:\n%s", g.out)
	}
}

// TestGatewaySIGTERMDrains: on SIGTERM the gateway stops accepting, lets the request
// in flight finish, stops its workers and exits 0.
func TestGatewaySIGTERMDrains(t *testing.T) {
	g := startGateway(t, "gwapp", 1)
	res := make(chan string, 1)
	go func() {
		st, body, _ := g.get("/slow?ms=800")
		res <- strconv.Itoa(st) + " " + body
	}()
	time.Sleep(200 * time.Millisecond)
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case r := <-res:
		if r != "200 slept 800" {
			t.Errorf("in-flight request during drain: %q, want 200", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight request not answered during drain")
	}
	select {
	case err := <-g.exited:
		if err != nil {
			t.Errorf("gateway exit: %v", err)
		}
		g.exited <- nil // for the cleanup's stop
	case <-time.After(15 * time.Second):
		t.Fatal("gateway did not exit after draining")
	}
	if _, err := net.DialTimeout("tcp", g.addr, time.Second); err == nil {
		t.Error("gateway still accepting after SIGTERM")
	}
}

// TestGatewayExternalWorker: a worker started on its own registers through the
// control socket (sidecar mode) with the shared token and serves requests; one with
// a wrong token is refused.
func TestGatewayExternalWorker(t *testing.T) {
	py, err := harness.Python()
	if err != nil {
		t.Skip(err)
	}
	sock := t.TempDir() + "/control.sock"
	g := &gateway{t: t, addr: freePort(t), state: t.TempDir(), out: &syncBuffer{}, exited: make(chan error, 1)}
	g.cmd = exec.Command(gatewayBinary(t), withTestEngine([]string{"--listen", g.addr, "--workers", "0", "--control-socket", sock, "--control-token", "s3cret"})...)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.exited <- g.cmd.Wait() }()
	t.Cleanup(g.stop)
	for i := 0; ; i++ {
		if fi, err := os.Stat(sock); err == nil {
			if fi.Mode().Perm() != 0o660 {
				t.Errorf("control socket mode %v, want 0660", fi.Mode().Perm())
			}
			break
		}
		if i > 300 {
			t.Fatalf("no control socket; output:\n%s", g.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	root, _ := harness.RepoRoot()
	worker := func(token string) *exec.Cmd {
		c := exec.Command(py, "-m", "covet", "worker", "gwapp:app")
		c.Dir = root + "/integration/apps"
		c.Env = append(os.Environ(), "COVET_CONTROL_SOCKET="+sock, "COVET_CONTROL_TOKEN="+token, "COVET_TEST_DIR="+g.state)
		c.Stdout, c.Stderr = g.out, g.out
		return c
	}
	bad := worker("wrong")
	if err := bad.Run(); err == nil {
		t.Error("a worker with the wrong token was accepted")
	}
	good := worker("s3cret")
	if err := good.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { good.Process.Kill(); good.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(g.url("/hello"))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(b) == "hello" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("external worker never served; output:\n%s", g.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The gateway knows the worker's pid from SO_PEERCRED.
	if st, body, _ := g.get("/pid"); st != 200 || body != strconv.Itoa(good.Process.Pid) {
		t.Errorf("/pid = %d %q, want the external worker's pid %d", st, body, good.Process.Pid)
	}
}

// TestGatewayBadWorkerEndsOnlyItsSession: a worker that breaks the protocol in its
// first answer loses its session (its request gets 502), while the gateway and the
// other worker of the app keep serving. The breaches: a record whose length is out of
// range, a RESP frame whose body does not match its head, a RESP that is not one
// whole frame.
func TestGatewayBadWorkerEndsOnlyItsSession(t *testing.T) {
	for _, tc := range []struct {
		name, script, why string
		args              []string
	}{
		{"corrupt record", "evil_shm.py", "shmring: response ring corrupt", nil},
		{"RESP length", "rude_shm.py", "head says 5 bytes, 6 follow", []string{"resp-length"}},
		{"RESP flags", "rude_shm.py", "RESP frame flagged 0x1", []string{"resp-flags"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := t.TempDir() + "/control.sock"
			g := startGateway(t, "gwapp", 1, "--control-socket", sock)
			done := startShmWorker(t, g, tc.script, sock, 2, tc.args...)
			// Requests alternate between the two workers; the bad one answers its
			// first wrongly.
			var statuses []int
			for i := 0; i < 6; i++ {
				st, _, _ := g.get("/hello")
				statuses = append(statuses, st)
			}
			if n := strings.Count(fmt.Sprint(statuses), "502"); n != 1 {
				t.Errorf("statuses %v: want exactly one 502 (the bad worker's request)", statuses)
			}
			g.waitEvicted(done, tc.script, tc.why)
			for i := 0; i < 10; i++ {
				if st, body, _ := g.get("/hello"); st != 200 || body != "hello" {
					t.Fatalf("after the bad worker left: %d %q", st, body)
				}
			}
		})
	}
}
