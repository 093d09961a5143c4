package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/covetpy/covetpy/integration/harness"
)

// gateway is a running bin/covet-gateway serving integration/apps/<module> with real
// Python workers.
type gateway struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	state  string // COVET_TEST_DIR: where the test app leaves its marks
	out    *syncBuffer
	exited chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func gatewayBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("COVET_BIN")
	if dir == "" {
		root, err := harness.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "bin")
	}
	bin := filepath.Join(dir, "covet-gateway")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no gateway binary at %s: run `make build` first", bin)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// sdkWorker is the --worker-cmd that runs integration/apps' module:app with the SDK.
func sdkWorker(t *testing.T, module string) string {
	t.Helper()
	py, err := harness.Python()
	if err != nil {
		t.Skip(err)
	}
	return py + " -m covet worker " + module + ":app"
}

// testEngine is the IO engine the tests run the gateway on: $COVET_TEST_ENGINE,
// uring or netpoll (`make test` runs the suite once with each), or empty for the
// gateway's default, netpoll. With uring, a host without io_uring makes the gateway
// exit at start-up, so the tests fail rather than pass on the other engine.
func testEngine() string { return os.Getenv("COVET_TEST_ENGINE") }

// withTestEngine is flags with `--engine $COVET_TEST_ENGINE` in front, or flags as
// they are when the variable is empty or they choose an engine themselves.
func withTestEngine(flags []string) []string {
	if e := testEngine(); e != "" && !namesEngine(flags) {
		return append([]string{"--engine", e}, flags...)
	}
	return flags
}

// namesEngine reports whether flags hold --engine (or -engine, or either with =).
func namesEngine(flags []string) bool {
	for _, f := range flags {
		name, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if strings.HasPrefix(f, "-") && name == "engine" {
			return true
		}
	}
	return false
}

// launchGateway starts the gateway with workers running workerCmd (in
// integration/apps, COVET_TEST_DIR set to g.state), registering as app, and extra
// flags, on the engine of $COVET_TEST_ENGINE unless flags name one; it does not wait
// for them, and leaves stopping it to the caller.
func launchGateway(t *testing.T, app, workerCmd string, workers int, flags ...string) *gateway {
	t.Helper()
	return launchGatewayUnder(t, nil, app, workerCmd, workers, withTestEngine(flags)...)
}

// launchGatewayUnder is launchGateway with the gateway run by the command wrap
// (wrap... covet-gateway args...; none when empty), without COVET_ENGINE in its
// environment and with only the flags given.
func launchGatewayUnder(t *testing.T, wrap []string, app, workerCmd string, workers int, flags ...string) *gateway {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, addr: freePort(t), state: t.TempDir(), out: &syncBuffer{}, exited: make(chan error, 1)}
	args := append([]string{"--listen", g.addr, "--app", app, "--workers", fmt.Sprint(workers),
		"--worker-cmd", workerCmd, "--worker-dir", filepath.Join(root, "integration", "apps")}, flags...)
	argv := append(append(append([]string(nil), wrap...), gatewayBinary(t)), args...)
	g.cmd = exec.Command(argv[0], argv[1:]...)
	g.cmd.Env = append(withoutEnv(os.Environ(), "COVET_ENGINE"), "COVET_TEST_DIR="+g.state)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.exited <- g.cmd.Wait() }()
	return g
}

// withoutEnv is env less the variable name.
func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// startGateway runs the gateway with workers for app "module:app" and extra flags,
// and waits until it answers /hello.
func startGateway(t *testing.T, module string, workers int, flags ...string) *gateway {
	t.Helper()
	g := launchGateway(t, module, sdkWorker(t, module), workers, flags...)
	t.Cleanup(g.stop)
	g.waitServing(workers)
	return g
}

// waitServing waits until g answers /hello (plain HTTP/1.1) and all its workers have
// attached.
func (g *gateway) waitServing(workers int) {
	g.t.Helper()
	g.waitServingBy(workers, http.DefaultClient, "http://"+g.addr+"/hello")
}

// waitServingBy waits until hc's GET of url (the gateway's /hello) gives 200 and
// all of g's workers have attached.
func (g *gateway) waitServingBy(workers int, hc *http.Client, url string) {
	t := g.t
	t.Helper()
	get := func() (int, error) {
		resp, err := hc.Get(url)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := get()
		if err == nil && st == 200 {
			break
		}
		select {
		case err := <-g.exited:
			g.exited <- nil // stop: reported here
			t.Fatalf("gateway exited (%v) before serving; output:\n%s", err, g.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not serving after 30s (last: %d, %v); output:\n%s", st, err, g.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Every worker attached, not just the first.
	for strings.Count(g.out.String(), "worker attached") < workers {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d workers attached; output:\n%s", strings.Count(g.out.String(), "worker attached"), workers, g.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startShmWorker runs integration/workers/<script> as an external worker that
// connects to g's control socket sock, and waits until g reports `attached`
// workers in all. The channel gets the script's exit status; the script is killed
// at cleanup if it still runs.
func startShmWorker(t *testing.T, g *gateway, script, sock string, attached int, args ...string) <-chan error {
	t.Helper()
	py, err := harness.Python()
	if err != nil {
		t.Skip(err)
	}
	root, _ := harness.RepoRoot()
	return startWorker(t, g, sock, attached, append([]string{py, filepath.Join(root, "integration", "workers", script)}, args...)...)
}

// startWorker runs argv as an external worker as startShmWorker does, in
// integration/apps with COVET_TEST_DIR set to g.state, once sock exists.
func startWorker(t *testing.T, g *gateway, sock string, attached int, argv ...string) <-chan error {
	t.Helper()
	root, _ := harness.RepoRoot()
	deadline := time.Now().Add(30 * time.Second)
	for _, err := os.Stat(sock); err != nil; _, err = os.Stat(sock) {
		if time.Now().After(deadline) {
			t.Fatalf("no control socket at %s; output:\n%s", sock, g.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = filepath.Join(root, "integration", "apps")
	cmd.Env = append(os.Environ(), "COVET_CONTROL_SOCKET="+sock, "COVET_TEST_DIR="+g.state)
	cmd.Stdout, cmd.Stderr = g.out, g.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	for strings.Count(g.out.String(), "worker attached") < attached {
		select {
		case err := <-done:
			t.Fatalf("%s exited before attaching: %v; output:\n%s", argv[1:], err, g.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never attached; output:\n%s", argv[1:], g.out)
		}
	}
	return done
}

// waitEvicted waits for a test worker of startShmWorker, whose channel is done, to
// exit 0 once the gateway has ended its session, and checks that the gateway's log
// gives why.
func (g *gateway) waitEvicted(done <-chan error, name, why string) {
	g.t.Helper()
	select {
	case err := <-done:
		if err != nil {
			g.t.Errorf("%s worker: %v (it exits 0 when the gateway hangs up)", name, err)
		}
	case <-time.After(10 * time.Second):
		g.t.Fatalf("the gateway did not end the %s worker's session", name)
	}
	if !strings.Contains(g.out.String(), why) {
		g.t.Errorf("the %s worker's session did not end with %q; output:\n%s", name, why, g.out)
	}
}

// stop sends SIGTERM and expects a clean exit.
func (g *gateway) stop() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.exited:
		if err != nil {
			g.t.Errorf("gateway exited with %v after SIGTERM; output:\n%s", err, g.out)
		}
	case <-time.After(20 * time.Second):
		g.cmd.Process.Kill()
		g.t.Errorf("gateway did not exit within 20s of SIGTERM; output:\n%s", g.out)
	}
}

func (g *gateway) url(path string) string { return "http://" + g.addr + path }

// get returns status, body and headers of GET path (a fresh connection each time).
func (g *gateway) get(path string) (int, string, http.Header) {
	g.t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(g.url(path))
	if err != nil {
		g.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// waitFile waits for name to appear in the app's state directory.
func (g *gateway) waitFile(name string, within time.Duration) (string, bool) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(g.state, name)); err == nil && len(b) > 0 {
			return string(b), true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "", false
}
