package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/integration/harness"
)

// gRPC interoperability: grpc-go's interop client (google.golang.org/grpc/interop/client
// v1.85.0, `make bin/grpc-interop-client`) runs its 14 core cases one by one against the
// interop TestService written in Python (integration/grpc/interop_service.py), served by
// the gateway with one Python worker (integration/grpc/covet_app.py), over h2c and over
// TLS. The service's schema is the descriptor set integration/grpc/descdump takes from
// the same grpc-go module.
//
// COVET_GRPC_TARGET=grpcio runs the same cases against grpcio's asyncio server
// (integration/grpc/serve_grpcio.py) instead: it proves the servicer and this driver
// without the gateway.

// interopCases are the interop client's core cases, as grpc's
// doc/interop-test-descriptions.md names them.
var interopCases = []string{
	"empty_unary",
	"large_unary",
	"client_streaming",
	"server_streaming",
	"ping_pong",
	"empty_stream",
	"timeout_on_sleeping_server",
	"cancel_after_begin",
	"cancel_after_first_response",
	"status_code_and_message",
	"special_status_message",
	"custom_metadata",
	"unimplemented_method",
	"unimplemented_service",
}

// grpcTool is the binary $env names (`make test` sets it: the test fails without it),
// else bin/<name> if built, else the test skips, naming the make target.
func grpcTool(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v (make bin/%s)", env, p, err, name)
		}
		return p
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no %s at %s and %s unset: run `make bin/%s`", name, p, env, name)
	}
	return p
}

// interopDescriptors is the interop descriptor set's path: $COVET_GRPC_DESCRIPTORS,
// else one descdump writes now into a temporary directory.
func interopDescriptors(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COVET_GRPC_DESCRIPTORS"); p != "" {
		return p
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "interop.pb")
	cmd := exec.Command("go", "run", "./integration/grpc/descdump", p)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./integration/grpc/descdump: %v\n%s", err, out)
	}
	return p
}

// interopServer is a TestService server under test: its address and, over TLS, the
// certificate the client trusts (self-signed, for localhost).
type interopServer struct {
	addr   string
	caFile string
}

// startCovetInterop runs the gateway with one worker serving covet_app:app (over TLS
// when tc is non-nil, else h2c) and waits until it serves.
func startCovetInterop(t *testing.T, tc *testCert) interopServer {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	py, err := harness.Python()
	if err != nil {
		t.Skip(err)
	}
	// The second --worker-dir replaces launchGateway's (integration/apps).
	flags := []string{"--worker-dir", filepath.Join(root, "integration", "grpc")}
	if tc != nil {
		flags = append(flags, "--tls-cert", tc.certFile, "--tls-key", tc.keyFile)
	} else {
		flags = append(flags, "--h2c")
	}
	g := launchGateway(t, "grpcinterop", py+" -m covet worker covet_app:app", 1, flags...)
	t.Cleanup(g.stop)
	if tc == nil {
		g.waitServing(1)
		return interopServer{addr: g.addr}
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: tc.pool, ServerName: "localhost"}, ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	g.waitServingBy(1, hc, "https://"+g.addr+"/hello")
	return interopServer{addr: g.addr, caFile: tc.certFile}
}

// startGrpcioInterop runs integration/grpc/serve_grpcio.py on a free port (over TLS
// when tc is non-nil) and waits for its serving line.
func startGrpcioInterop(t *testing.T, tc *testCert) interopServer {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	py, err := harness.Python()
	if err != nil {
		t.Skip(err)
	}
	args := []string{filepath.Join(root, "integration", "grpc", "serve_grpcio.py"), "0"}
	if tc != nil {
		args = append(args, "--tls-cert", tc.certFile, "--tls-key", tc.keyFile)
	}
	cmd := exec.Command(py, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
	}()
	select {
	case s := <-line:
		fields := strings.Fields(s)
		if len(fields) == 0 || !strings.HasPrefix(s, "serving ") {
			t.Fatalf("serve_grpcio.py said %q, want its serving line", s)
		}
		srv := interopServer{addr: fields[len(fields)-1]}
		if tc != nil {
			srv.caFile = tc.certFile
		}
		return srv
	case <-time.After(30 * time.Second):
		t.Fatal("serve_grpcio.py did not start within 30s")
	}
	return interopServer{}
}

// runInteropCase runs one case of the interop client against srv; the error holds
// the client's output when the case failed.
func runInteropCase(t *testing.T, client string, srv interopServer, testCase string) (string, error) {
	t.Helper()
	host, port, err := net.SplitHostPort(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--server_host", host, "--server_port", port, "--test_case", testCase}
	if srv.caFile != "" {
		args = append(args, "--use_tls", "--use_test_ca", "--ca_file", srv.caFile, "--server_host_override", "localhost")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, client, args...).CombinedOutput()
	return string(out), err
}

func TestGRPCInterop(t *testing.T) {
	client := grpcTool(t, "COVET_GRPC_INTEROP", "grpc-interop-client")
	t.Setenv("COVET_GRPC_DESCRIPTORS", interopDescriptors(t)) // read by the servers' Python
	start := startCovetInterop
	target := os.Getenv("COVET_GRPC_TARGET")
	switch target {
	case "", "covet":
		target = "covet"
	case "grpcio":
		start = startGrpcioInterop
	default:
		t.Fatalf("COVET_GRPC_TARGET=%q: want covet (the default) or grpcio", target)
	}
	for _, mode := range []string{"h2c", "TLS"} {
		t.Run(mode, func(t *testing.T) {
			var tc *testCert
			if mode == "TLS" {
				c := writeTestCert(t)
				tc = &c
			}
			srv := start(t, tc)
			passed := 0
			for _, c := range interopCases {
				t.Run(c, func(t *testing.T) {
					out, err := runInteropCase(t, client, srv, c)
					if err != nil {
						t.Errorf("%s over %s against %s: %v\n%s", c, mode, target, err, out)
						return
					}
					passed++
				})
			}
			t.Logf("%s over %s: %d of %d interop cases passed", target, mode, passed, len(interopCases))
		})
	}
}
