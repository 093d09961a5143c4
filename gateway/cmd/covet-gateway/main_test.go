package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/guard"
	"github.com/covetpy/covetpy/ops/config"

	"github.com/covetpy/covetpy/shmring"
)

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "python -m covet worker app:app", want: []string{"python", "-m", "covet", "worker", "app:app"}},
		{in: "  a\t b  ", want: []string{"a", "b"}},
		{in: `'/opt/my python/bin/python' -c 'print("x y")'`, want: []string{"/opt/my python/bin/python", "-c", `print("x y")`}},
		{in: `"a \"b\" c" d\ e`, want: []string{`a "b" c`, "d e"}},
		{in: `''`, want: []string{""}},
		{in: "", want: nil},
		{in: "'open", err: "unterminated single quote"},
		{in: `"open`, err: "unterminated double quote"},
		{in: `x\`, err: "trailing backslash"},
	} {
		got, err := splitCommand(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("splitCommand(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitCommand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestGatewayProcs(t *testing.T) {
	for _, tc := range []struct {
		procs, workers, avail int
		envSet                bool
		want                  int
	}{
		{0, 1, 2, false, 1},   // 2 CPUs, one worker: one left to the gateway
		{0, 2, 2, false, 1},   // never below 1
		{0, 1, 16, false, 2},  // two per worker
		{0, 4, 16, false, 8},  // two per worker
		{0, 6, 16, false, 10}, // one CPU kept per worker
		{0, 0, 8, false, 8},   // external workers only: Go's default
		{0, 1, 2, true, 2},    // $GOMAXPROCS set: the runtime's value stands
		{3, 1, 2, true, 3},    // procs wins over everything
	} {
		if got := gatewayProcs(tc.procs, tc.workers, tc.avail, tc.envSet); got != tc.want {
			t.Errorf("gatewayProcs(%d, %d, %d, %v) = %d, want %d", tc.procs, tc.workers, tc.avail, tc.envSet, got, tc.want)
		}
	}
}

func TestParseFlagsErrorsNameTheSetting(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--workers", "2"}, nil, "worker_cmd: required when workers > 0"},
		{[]string{"--workers", "-1"}, nil, "workers: -1 is negative"},
		{[]string{"--worker-cmd", "x", "--procs", "-2"}, nil, "procs: -2 is negative"},
		{[]string{"--worker-cmd", "x", "--app", "bad name"}, nil, "app:"},
		{[]string{"--worker-cmd", "x", "--log-format", "xml"}, nil, "log_format"},
		{[]string{"--worker-cmd", "x", "--log-level", "loud"}, nil, "log-level"},
		{[]string{"--worker-cmd", "'x"}, nil, "unterminated single quote"},
		{[]string{"--worker-cmd", "x", "--max-inflight", "-3"}, nil, "max_inflight"},
		{[]string{"--worker-cmd", "x", "--ring-response-bytes", "3M"}, nil, "ring_response_bytes: 3145728 is not a power of two"},
		{[]string{"--worker-cmd", "x"}, []string{"COVET_RING_REQUEST_BYTES=2K"}, "ring_request_bytes: 2048 is not a power of two"},
		{[]string{"--worker-cmd", "x", "--idle-timeout", "-1s"}, nil, "IdleTimeout"},
		{[]string{"--worker-cmd", "x", "stray"}, nil, "unexpected argument"},
		{[]string{"--worker-cmd", "x", "--tls-cert", "a.pem"}, nil, "tls_key: 0 given for 1 tls_cert"},
		{[]string{"--worker-cmd", "x", "--tls-cert", "a.pem", "--tls-key", "a.key", "--tls-cert", "b.pem"}, nil, "tls_key: 1 given for 2 tls_cert"},
		{[]string{"--worker-cmd", "x", "--http3"}, nil, "http3: needs TLS"},
		{[]string{"--worker-cmd", "x", "--http3-early-data"}, nil, "http3_early_data: needs http3"},
		{[]string{"--worker-cmd", "x", "--tls-client-ca", "ca.pem"}, nil, "need tls_cert"},
		{[]string{"--worker-cmd", "x", "--acme-email", "a@b.c"}, nil, "need acme_domains"},
		{[]string{"--worker-cmd", "x"}, []string{"COVET_QUEUE_TIMEOUT=soon"}, "COVET_QUEUE_TIMEOUT: cannot parse"},
	} {
		_, _, err := parseFlags(tc.args, tc.env, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q, %q) error = %v, want it to mention %q", tc.args, tc.env, err, tc.want)
		}
	}
	cfg, _, err := parseFlags([]string{"--workers", "3", "--worker-cmd", "python -m covet worker app:app", "--app", "shop"},
		[]string{"COVET_LOG_LEVEL=WARNING"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workers != 3 || cfg.App != "shop" || len(cfg.WorkerCmd) != 5 || cfg.Listen != "127.0.0.1:8000" ||
		slog.Level(cfg.LogLevel) != slog.LevelWarn || cfg.Dispatch.MaxInflight != 256 ||
		cfg.Dispatch.Geometry != (shmring.Geometry{ReqCapacity: 1 << 20, RespCapacity: 4 << 20}) {
		t.Errorf("unexpected config %+v", cfg)
	}
	cfg, _, err = parseFlags([]string{"--worker-cmd", "x", "--ring-response-bytes", "16M", "--ring-request-bytes", "64K"}, nil, io.Discard)
	if err != nil || cfg.Dispatch.Geometry != (shmring.Geometry{ReqCapacity: 64 << 10, RespCapacity: 16 << 20}) {
		t.Errorf("ring sizes from flags: %v, %+v", err, cfg.Dispatch.Geometry)
	}
}

// TestConfigFileAndPrintConfig: a file sets the same settings as the flags; a bad
// file stops startup with a message naming the setting and its line; the printed
// configuration loads back to the same configuration.
func TestConfigFileAndPrintConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "covet.yaml")
	os.WriteFile(file, []byte("workers: 4\nworker_cmd: python -m covet worker 'my app:app'\nmax_inflight: 8\n"+
		"idle_timeout: 90s\nmax_body_bytes: 1048576\nmax_rss: 512M\nadmin_listen: 127.0.0.1:9090\n"), 0o600)
	cfg, _, err := parseFlags([]string{"--config", file, "--workers", "2"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workers != 2 || cfg.WorkerCmd[4] != "my app:app" || cfg.Dispatch.MaxInflight != 8 ||
		cfg.Server.IdleTimeout != 90*time.Second || cfg.Server.Limits.MaxBodyBytes != 1<<20 ||
		cfg.Supervisor.MaxRSS != 512<<20 || cfg.Ops.AdminListen != "127.0.0.1:9090" {
		t.Errorf("config from file + flags: %+v", cfg)
	}

	var out bytes.Buffer
	if err := run([]string{"--config", file, "--print-config"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	printed := filepath.Join(dir, "printed.yaml")
	os.WriteFile(printed, out.Bytes(), 0o600)
	back, _, err := parseFlags([]string{"--config", printed}, nil, io.Discard)
	if err != nil {
		t.Fatalf("printed configuration does not load: %v\n%s", err, out.String())
	}
	var reprinted bytes.Buffer
	config.Print(&reprinted, back)
	if reprinted.String() != out.String() {
		t.Errorf("print-config round trip differs:\n%s\n---\n%s", out.String(), reprinted.String())
	}
	for _, want := range []string{"max_inflight: 8\n", "idle_timeout: 1m30s\n", "workers: 4\n", "# log level"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--print-config output lacks %q:\n%s", want, out.String())
		}
	}

	os.WriteFile(file, []byte("workers: 2\nqueue_timeout: forever\n"), 0o600)
	err = run([]string{"--config", file}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "covet.yaml:2: queue_timeout: cannot parse \"forever\" as a duration") {
		t.Errorf("bad file: %v", err)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--workers", "-1", "--version"}, {"--version=true"}, {"-version=1", "--workers", "-1"}} {
		var out bytes.Buffer
		if err := run(args, &out, io.Discard); err != nil || out.String() != "covet-gateway "+version+"\n" {
			t.Errorf("run(%q) = %v, printed %q", args, err, out.String())
		}
	}
	// --version=false is no request for the version: the settings are checked.
	if err := run([]string{"--version=false", "--workers", "-1"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "workers") {
		t.Errorf("run(--version=false --workers -1) = %v, want the workers error", err)
	}
}

// TestTLSStartupErrorsNameTheFile: a missing or mismatched certificate or key
// stops startup with the file named.
func TestTLSStartupErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)
	log := slog.New(slog.DiscardHandler)
	for _, ts := range []tlsSettings{
		{Cert: []string{missing}, Key: []string{garbage}},
		{Cert: []string{garbage}, Key: []string{garbage}},
	} {
		_, _, err := setupTLS(&ts, true, log)
		if err == nil || !strings.Contains(err.Error(), ts.Cert[0]) {
			t.Errorf("setupTLS(%v) = %v, want an error naming %s", ts.Cert, err, ts.Cert[0])
		}
	}
	ts := tlsSettings{}
	if s, stop, err := setupTLS(&ts, true, log); s != nil || err != nil {
		t.Errorf("no TLS settings: %v, %v", s, err)
	} else {
		stop()
	}
}

// The security settings are keys of the one config: flags, COVET_<KEY> (a list
// comma-separated), and a bad value stops start-up naming the key.
func TestSecuritySettings(t *testing.T) {
	env := []string{"COVET_AUTH_ALGORITHMS=ES256,EdDSA", "COVET_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.1"}
	cfg, _, err := parseFlags([]string{"--workers", "0", "--compression", "gzip,zstd", "--cors-allow-origins", "https://a.example",
		"--rate-limit-default", "100/minute", "--audit-log", "stderr", "--ip-request-rate", "50/second"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Guard
	if !slices.Equal(g.Auth.Algorithms, []string{"ES256", "EdDSA"}) || !slices.Equal(g.Compress.Encodings, []string{"gzip", "zstd"}) ||
		!slices.Equal(g.ClientIP.TrustedProxies, []string{"10.0.0.0/8", "192.0.2.1"}) || !slices.Equal(g.CORS.AllowOrigins, []string{"https://a.example"}) ||
		g.RateLimit.Default != "100/minute" || g.Audit.Path != "stderr" || g.IPRequestRate != "50/second" {
		t.Fatalf("guard settings: %+v", g)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--auth-jwks-file", "/dev/null", "--auth-algorithms", "HS256,nOnE"}, "auth_algorithms"},
		{[]string{"--rate-limit-default", "5/fortnight"}, "rate_limit_default"},
		{[]string{"--compression", "gzip,lzma"}, "compression"},
		{[]string{"--trusted-proxies", "10.0.0.0/33"}, "trusted_proxies"},
		{[]string{"--cors-allow-origins", "*", "--cors-allow-credentials"}, "cors_allow"},
		{[]string{"--ip-request-rate", "many"}, "ip_request_rate"},
		{[]string{"--rate-limit-redis-failure", "ajar"}, "rate_limit_redis_failure"},
	} {
		cfg, _, err := parseFlags(append([]string{"--workers", "0"}, tc.args...), nil, io.Discard)
		if err == nil {
			var c *guard.Chain
			c, err = guard.New(cfg.Guard, nil, nil, nil)
			if c != nil {
				c.Close()
			}
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}
