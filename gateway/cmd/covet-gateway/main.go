// Command covet-gateway is the CovetPy gateway: it serves HTTP/1.1 on a TCP listener
// and hands routed requests to Python worker processes over shared-memory rings.
//
//	covet-gateway --listen 127.0.0.1:8000 --app app --workers 2 \
//	    --worker-cmd "python -m covet worker app:app"
//
// It spawns and supervises --workers worker processes running --worker-cmd, and,
// with --control-socket, also accepts workers started elsewhere (sidecar mode).
// SIGTERM or SIGINT: stop accepting, let in-flight requests finish (up to
// --drain-timeout), drain the workers, exit. When a worker fails at startup
// --max-startup-failures times in a row it exits 1 with the worker's error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/grpcgw"
	"github.com/covetpy/covetpy/gateway/guard"
	"github.com/covetpy/covetpy/gateway/server"
	"github.com/covetpy/covetpy/gateway/supervisor"
	"github.com/covetpy/covetpy/ops/config"
	"github.com/covetpy/covetpy/shmring"
	"github.com/covetpy/covetpy/workerproto"
)

// version is the gateway's version. make build sets it (-X main.version=...) to the
// SDK's version in python-sdk/pyproject.toml: the two are released together.
var version = "devel"

func main() {
	enableExtendedConnect() // WebSocket over HTTP/2 (xconnect.go)
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "covet-gateway:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if askedVersion(args) {
		_, err := fmt.Fprintln(stdout, "covet-gateway", version)
		return err
	}
	cfg, printConfig, err := parseFlags(args, os.Environ(), stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if printConfig && cfg != nil {
		if perr := config.Print(stdout, cfg); perr != nil {
			return perr
		}
		return err
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	_, envProcs := os.LookupEnv("GOMAXPROCS")
	runtime.GOMAXPROCS(gatewayProcs(cfg.Procs, cfg.Workers, runtime.GOMAXPROCS(0), envProcs))
	// ops (ops.go): metrics, access log, restart backoff. BEGIN
	reg, err := setupOps(cfg, log)
	if err != nil {
		return err
	}
	// ops END

	// The middleware chain (gateway/guard) sits between the front ends and the
	// dispatcher; the dispatcher asks it to compile each route's security
	// options as workers register.
	var chain *guard.Chain
	cfg.Dispatch.CompileRoute = func(app string, r *workerproto.Route) (any, error) { return chain.CompileRoute(app, r) }
	d, err := dispatch.New(cfg.Dispatch, log.With("component", "dispatch"))
	if err != nil {
		return err
	}
	if chain, err = guard.New(cfg.Guard, d, cfg.Dispatch.Metrics, log); err != nil {
		return err
	}
	defer chain.Close()
	// ops (ops.go): the admin listener, /metrics /healthz /readyz. BEGIN
	stopAdmin, err := serveAdmin(cfg, reg, d.Ready, log.With("component", "admin"))
	if err != nil {
		return err
	}
	defer stopAdmin()
	// ops END
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	// The engine starts before any worker: `engine: uring` where io_uring is
	// refused stops start-up here, naming the cause.
	tlsSrv, stopTLS, err := setupTLS(&cfg.TLS, cfg.Server.HTTP2, log.With("component", "tls"))
	if err != nil {
		ln.Close()
		return err
	}
	defer stopTLS()
	// The gRPC layer (gateway/grpcgw) is every front end's Backend, in front
	// of the chain: gRPC calls get gRPC statuses, gRPC-Web is translated, and
	// the gateway answers the health service and server reflection itself.
	glog := log.With("component", "grpc")
	services := grpcgw.NewServices(d, glog)
	if !cfg.GRPCReflection {
		services.WithoutReflection()
	}
	backend := grpcgw.New(chain, services, cfg.Dispatch.Metrics, glog)
	srv := &server.Server{Config: cfg.Server, Backend: backend}
	srv.Config.Logger = log.With("component", "http")
	if tlsSrv != nil {
		srv.TLS = tlsSrv.TLSConfig()
	}
	var h3pc net.PacketConn // HTTP/3's UDP socket (h3.go)
	if cfg.TLS.HTTP3 {
		if h3pc, srv.Config.AltSvc, err = listenHTTP3(ln, log.With("component", "http3")); err != nil {
			ln.Close()
			return err
		}
	}
	if err := srv.Prepare(); err != nil {
		ln.Close()
		if h3pc != nil {
			h3pc.Close()
		}
		return err
	}
	sup := supervisor.New(cfg.Supervisor, d, log.With("component", "supervisor"))
	if cfg.Workers > 0 {
		spec := supervisor.Spec{App: cfg.App, Command: []string(cfg.WorkerCmd), Dir: cfg.WorkerDir, Count: cfg.Workers}
		// Not ctx: on SIGTERM the workers must outlive the HTTP drain; Stop ends them.
		if err := sup.Start(context.Background(), []supervisor.Spec{spec}); err != nil {
			ln.Close()
			return err
		}
	}
	// SIGHUP: reload the configuration and restart the workers one at a time, no
	// request failing (reload.go).
	defer reloadOnSIGHUP(log, sup, cfg, func() (*Config, error) {
		c, _, err := parseFlags(args, os.Environ(), io.Discard)
		return c, err
	})()
	if cfg.ControlSocket != "" {
		cl, err := workerproto.Listen(cfg.ControlSocket, workerproto.ListenConfig{Mode: 0o660, Token: cfg.ControlToken})
		if err != nil {
			ln.Close()
			return err
		}
		defer cl.Close()
		go sup.Listen(cl)
		log.Info("accepting external workers", "control_socket", cfg.ControlSocket)
	}

	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	h3addr := ""
	if h3pc != nil {
		h3addr = h3pc.LocalAddr().String()
		go func() { served <- srv.ServeHTTP3(h3pc) }()
	}
	log.Info("listening", "addr", ln.Addr().String(), "app", cfg.App, "workers", cfg.Workers, "procs", runtime.GOMAXPROCS(0), "engine", srv.EngineName(),
		"tls", tlsSrv != nil, "http2", tlsSrv != nil && cfg.Server.HTTP2, "h2c", cfg.Server.H2C, "http3", h3addr)
	if cfg.Banner != "" {
		fmt.Fprintln(stdout, strings.ReplaceAll(cfg.Banner, "{addr}", ln.Addr().String()))
	}

	select {
	case err := <-served:
		sup.Stop(cfg.DrainTimeout)
		return err
	case err := <-sup.Failed():
		// The app's workers keep failing at startup (max_startup_failures): exit
		// non-zero with the cause rather than serve 503s for ever.
		sup.Stop(cfg.DrainTimeout)
		srv.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "drain_timeout", cfg.DrainTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	sup.Stop(cfg.DrainTimeout)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("drain timeout passed with requests in flight")
		err = nil
	}
	return err
}

// askedVersion reports whether args ask for the version, in any form the flag
// package takes for a true bool (--version, -version, --version=true, ...). It is
// answered before the other settings are checked.
func askedVersion(args []string) bool {
	for _, a := range args {
		name, val, hasVal := strings.Cut(a, "=")
		if name != "--version" && name != "-version" {
			continue
		}
		if b, err := strconv.ParseBool(val); !hasVal || err == nil && b {
			return true
		}
	}
	return false
}

// gatewayProcs is the GOMAXPROCS the gateway runs with: procs when set; else the
// runtime's own choice (avail) when $GOMAXPROCS set it or no workers are spawned
// (external workers come and go); else two per spawned worker, at most avail less
// one per worker (a busy worker keeps a CPU to itself), at least 1.
//
// A gateway with more Go processors than it keeps busy hands each response from
// the ring reader to a connection goroutine on a sleeping thread, which costs a
// wakeup. On 2 CPUs with one worker, one processor instead of two took the
// gateway from about 17 to about 15 µs of CPU per request; on 12 cores of a
// 16-core machine it spent about 18 µs per request at 2 processors and 32 at 12,
// for no more throughput (docs/performance.md, bench/RESULTS-16core.md).
func gatewayProcs(procs, workers, avail int, envSet bool) int {
	switch {
	case procs > 0:
		return procs
	case envSet || workers == 0:
		return avail
	}
	return max(1, min(2*workers, avail-workers))
}

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.Level(cfg.LogLevel)}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Config is the gateway's configuration: the one place each setting is declared.
// Every tagged field (here and in the nested package configs) is a key of the YAML
// file given with --config (or COVET_CONFIG), an environment variable COVET_<KEY>
// and a flag --<key> with '_' as '-' (ops/config); flags override the environment,
// which overrides the file. Zero values of the nested configs mean their defaults.
type Config struct {
	Listen         string        `config:"listen" help:"TCP address to serve HTTP on"`
	App            string        `config:"app" help:"app name the spawned workers register as"`
	Workers        int           `config:"workers" help:"worker processes to spawn; 0 = external workers only"`
	WorkerCmd      command       `config:"worker_cmd" help:"worker command line, split as a shell would, e.g. python -m covet worker app:app"`
	WorkerDir      string        `config:"worker_dir" help:"working directory of the workers; empty = the gateway's"`
	ControlSocket  string        `config:"control_socket" help:"Unix socket path on which external workers register; empty = none"`
	ControlToken   string        `config:"control_token" help:"shared token external workers must present; empty = none"`
	DrainTimeout   time.Duration `config:"drain_timeout" help:"on SIGTERM, time in-flight requests get to finish"`
	LogFormat      string        `config:"log_format" help:"log format: text or json"`
	LogLevel       logLevel      `config:"log_level" help:"log level: debug, info, warn, error"`
	MaxRSS         byteSize      `config:"max_rss" help:"recycle a worker whose resident memory passes this size (bytes, or with K, M, G); 0 = never"`
	RingRequest    byteSize      `config:"ring_request_bytes" help:"each worker's request ring: a power of two from 4K to 1G"`
	RingResponse   byteSize      `config:"ring_response_bytes" help:"each worker's response ring: a power of two from 4K to 1G"`
	Banner         string        `config:"banner" help:"a line printed on stdout once the listener is bound, {addr} replaced by its address (covet run sets it); empty = none"`
	GRPCReflection bool          `config:"grpc_reflection" help:"answer gRPC server reflection (grpc.reflection.v1 and v1alpha) from the workers' descriptors, so grpcurl needs no .proto; off = those methods are UNIMPLEMENTED unless a worker serves them"`
	Procs          int           `config:"procs" help:"CPUs the gateway's Go code runs on at once (GOMAXPROCS); 0 = two per spawned worker, at most the CPUs available less one per worker, at least 1 ($GOMAXPROCS, when set, and no spawned workers: Go's default)"`

	Dispatch   dispatch.Config
	Server     server.Config
	TLS        tlsSettings // tls.go
	Supervisor supervisor.Config
	Ops        opsConfig    // ops.go: admin listener, access log
	Guard      guard.Config // auth, rate limits, CORS, security headers, compression, client addresses, audit log
}

// defaultConfig is the configuration before the file, the environment and the flags.
func defaultConfig() *Config {
	d := dispatch.Config{}.WithDefaults()
	return &Config{
		Listen: "127.0.0.1:8000", App: "app", Workers: 1, DrainTimeout: 30 * time.Second,
		LogFormat: "text", LogLevel: logLevel(slog.LevelInfo), GRPCReflection: true,
		RingRequest: byteSize(d.Geometry.ReqCapacity), RingResponse: byteSize(d.Geometry.RespCapacity),
		Dispatch:   d,
		Server:     serverDefaults(server.Config{}.WithDefaults()),
		Supervisor: supervisor.Config{}.WithDefaults(),
	}
}

// serverDefaults turns on what the zero server.Config leaves off and the
// gateway serves by default: HTTP/2 (with TLS) and WebSocket compression.
func serverDefaults(c server.Config) server.Config {
	c.HTTP2 = true // with TLS
	c.WSCompression = true
	return c
}

// parseFlags builds the configuration from the defaults, the file named by --config
// or COVET_CONFIG, the environment and the flags, and checks it. printConfig reports
// --print-config.
func parseFlags(args, environ []string, stderr io.Writer) (cfg *Config, printConfig bool, err error) {
	cfg = defaultConfig()
	rest, err := config.Load(cfg, "covet-gateway", "COVET_", environ, args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&printConfig, "print-config", false, "print the effective configuration (YAML, loadable with --config) and exit")
		fs.Bool("version", false, "print the gateway's version and exit")
	})
	if err != nil {
		return nil, false, err
	}
	if len(rest) > 0 {
		return nil, false, fmt.Errorf("unexpected argument %q", rest[0])
	}
	cfg.Supervisor.MaxRSS = int64(cfg.MaxRSS)
	cfg.Dispatch.Geometry = shmring.Geometry{ReqCapacity: uint64(cfg.RingRequest), RespCapacity: uint64(cfg.RingResponse)}
	// With --print-config the configuration comes back even when it is invalid, so
	// that it can be shown next to the problem.
	return cfg, printConfig, cfg.validate()
}

// validate reports the first setting that is out of range, by name.
func (cfg *Config) validate() error {
	switch {
	case cfg.LogFormat != "text" && cfg.LogFormat != "json":
		return fmt.Errorf("log_format: %q is neither text nor json", cfg.LogFormat)
	case cfg.Workers < 0:
		return fmt.Errorf("workers: %d is negative", cfg.Workers)
	case cfg.Workers > 0 && len(cfg.WorkerCmd) == 0:
		return errors.New("worker_cmd: required when workers > 0")
	case cfg.DrainTimeout < 0:
		return fmt.Errorf("drain_timeout: %v is negative", cfg.DrainTimeout)
	case cfg.Procs < 0:
		return fmt.Errorf("procs: %d is negative", cfg.Procs)
	}
	if err := workerproto.ValidAppName(cfg.App); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	for _, r := range []struct {
		name string
		size byteSize
	}{{"ring_request_bytes", cfg.RingRequest}, {"ring_response_bytes", cfg.RingResponse}} {
		if (shmring.Geometry{ReqCapacity: uint64(r.size), RespCapacity: uint64(r.size)}).Validate() != nil {
			return fmt.Errorf("%s: %d is not a power of two from 4K to 1G", r.name, r.size)
		}
	}
	if err := cfg.Dispatch.Validate(); err != nil {
		return err
	}
	if err := cfg.TLS.validate(cfg.Server.HTTP3EarlyData); err != nil {
		return err
	}
	return cfg.Server.Validate()
}

// command is a worker command line: argv, written and read as one shell-style
// string.
type command []string

func (c *command) UnmarshalText(b []byte) error {
	words, err := splitCommand(string(b))
	*c = words
	return err
}

func (c command) MarshalText() ([]byte, error) {
	quoted := make([]string, len(c))
	for i, w := range c {
		quoted[i] = w
		if w == "" || strings.ContainsAny(w, " \t\n'\"\\$`") {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return []byte(strings.Join(quoted, " ")), nil
}

// logLevel is a slog.Level that also reads Python's spelling "warning", since the
// gateway and its workers share COVET_LOG_LEVEL.
type logLevel slog.Level

func (l *logLevel) UnmarshalText(b []byte) error {
	if strings.EqualFold(string(b), "warning") {
		b = []byte("warn")
	}
	return (*slog.Level)(l).UnmarshalText(b)
}

func (l logLevel) MarshalText() ([]byte, error) { return slog.Level(l).MarshalText() }

// byteSize is a byte count, read with parseSize (K, M, G suffixes).
type byteSize int64

func (b *byteSize) UnmarshalText(t []byte) error {
	n, err := parseSize(string(t))
	*b = byteSize(n)
	return err
}

func (b byteSize) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(b), 10)), nil }

// splitCommand splits a command line the way a POSIX shell splits words: blanks
// separate words; single quotes keep everything literally; double quotes keep
// blanks, with backslash escaping " \ $ `; a backslash outside quotes escapes the
// next character. No expansion is done.
func splitCommand(s string) ([]string, error) {
	var words []string
	var cur []byte
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, string(cur))
				cur, inWord = cur[:0], false
			}
		case c == '\'':
			j := i + 1
			for j < len(s) && s[j] != '\'' {
				j++
			}
			if j == len(s) {
				return nil, errors.New("unterminated single quote")
			}
			cur, inWord = append(cur, s[i+1:j]...), true
			i = j
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\' || s[j+1] == '$' || s[j+1] == '`') {
					j++
				}
				cur = append(cur, s[j])
			}
			if j == len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
			i = j
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			cur, inWord = append(cur, s[i]), true
		default:
			cur, inWord = append(cur, c), true
		}
	}
	if inWord {
		words = append(words, string(cur))
	}
	return words, nil
}
