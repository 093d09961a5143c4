// Command covet-gateway is the CovetPy gateway: it serves HTTP/1.1 on a TCP listener
// and hands routed requests to Python worker processes over shared-memory rings.
//
//	covet-gateway --listen 127.0.0.1:8000 --app app --workers 2 \
//	    --worker-cmd "python -m covet worker app:app"
//
// It spawns and supervises --workers worker processes running --worker-cmd, and,
// with --control-socket, also accepts workers started elsewhere (sidecar mode).
// SIGTERM or SIGINT: stop accepting, let in-flight requests finish (up to
// --drain-timeout), drain the workers, exit.
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
	"syscall"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/server"
	"github.com/covetpy/covetpy/gateway/supervisor"
	"github.com/covetpy/covetpy/workerproto"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "covet-gateway:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	// ops (ops.go): metrics, access log, restart backoff. BEGIN
	reg, err := setupOps(cfg, log)
	if err != nil {
		return err
	}
	// ops END

	d, err := dispatch.New(cfg.Dispatch, log.With("component", "dispatch"))
	if err != nil {
		return err
	}
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
	sup := supervisor.New(cfg.Supervisor, d, log.With("component", "supervisor"))
	if cfg.Workers > 0 {
		spec := supervisor.Spec{App: cfg.App, Command: cfg.WorkerCmd, Dir: cfg.WorkerDir, Count: cfg.Workers}
		// Not ctx: on SIGTERM the workers must outlive the HTTP drain; Stop ends them.
		if err := sup.Start(context.Background(), []supervisor.Spec{spec}); err != nil {
			ln.Close()
			return err
		}
	}
	// SIGHUP: restart the workers one at a time, no request failing (reload.go).
	defer reloadOnSIGHUP(log, sup, cfg)()
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

	srv := &server.Server{Config: cfg.Server, Backend: d}
	srv.Config.Logger = log.With("component", "http")
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "app", cfg.App, "workers", cfg.Workers)

	select {
	case err := <-served:
		sup.Stop(cfg.DrainTimeout)
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

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Config is the gateway's configuration; every flag maps onto one field.
type Config struct {
	Listen        string        // TCP address for HTTP; default 127.0.0.1:8000
	App           string        // app name the spawned workers register as; default "app"
	Workers       int           // worker processes to spawn; default 1; 0 = external workers only
	WorkerCmd     []string      // worker argv (a shell-style string on the command line)
	WorkerDir     string        // worker working directory; default the gateway's
	ControlSocket string        // Unix socket path for external workers; "" = none
	ControlToken  string        // shared token external workers must send; env COVET_CONTROL_TOKEN
	DrainTimeout  time.Duration // SIGTERM: time in-flight requests get to finish; default 30s
	LogFormat     string        // text or json; default text
	LogLevel      slog.Level    // default info

	Dispatch   dispatch.Config
	Server     server.Config
	Supervisor supervisor.Config
	Ops        opsConfig // ops.go: admin listener, access log, restart backoff
}

func parseFlags(args []string, stderr io.Writer) (*Config, error) {
	cfg := &Config{}
	fs := flag.NewFlagSet("covet-gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8000", "TCP `address` to serve HTTP on")
	fs.StringVar(&cfg.App, "app", "app", "app `name` the spawned workers register as")
	fs.IntVar(&cfg.Workers, "workers", 1, "worker processes to spawn (0: external workers only)")
	workerCmd := fs.String("worker-cmd", "", "worker `command` line, e.g. \"python -m covet worker app:app\"")
	fs.StringVar(&cfg.WorkerDir, "worker-dir", "", "working `directory` of the workers")
	fs.StringVar(&cfg.ControlSocket, "control-socket", "", "Unix socket `path` on which external workers register")
	fs.StringVar(&cfg.ControlToken, "control-token", os.Getenv("COVET_CONTROL_TOKEN"), "shared `token` external workers must present")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 30*time.Second, "time in-flight requests get to finish on shutdown")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.IntVar(&cfg.Dispatch.MaxInflight, "max-inflight", 0, "requests in flight per worker (default 64)")
	fs.IntVar(&cfg.Dispatch.QueueSize, "queue-size", 0, "requests that may wait for a worker, per app (default 1024)")
	fs.DurationVar(&cfg.Dispatch.QueueTimeout, "queue-timeout", 0, "longest wait for a worker before 503 (default 5s)")
	fs.DurationVar(&cfg.Dispatch.Timeout, "timeout", 0, "handler deadline for routes without one, then 504 (default 30s)")
	// Worker lifecycle (gateway/supervisor/lifecycle.go): recycling and the watchdog.
	fs.IntVar(&cfg.Supervisor.MaxRequests, "max-requests", 0, "recycle a worker after it has served `n` requests (0: never)")
	fs.IntVar(&cfg.Supervisor.MaxRequestsJitter, "max-requests-jitter", 0, "add a random 0..`n` to each worker's --max-requests")
	fs.Func("max-rss", "recycle a worker whose resident memory passes this `size` (bytes, or with K, M, G; 0: never)", func(v string) (err error) {
		cfg.Supervisor.MaxRSS, err = parseSize(v)
		return err
	})
	fs.DurationVar(&cfg.Supervisor.WatchdogTimeout, "watchdog-timeout", 0, "kill a worker whose heartbeat stalls this long with requests in flight (default 10 heartbeats; negative: off)")
	cfg.Ops.register(fs) // ops.go: --admin-listen, --access-log, --restart-backoff
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return nil, fmt.Errorf("--log-format: %q is neither text nor json", cfg.LogFormat)
	}
	var err error
	if cfg.WorkerCmd, err = splitCommand(*workerCmd); err != nil {
		return nil, fmt.Errorf("--worker-cmd: %w", err)
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("--workers: %d is negative", cfg.Workers)
	}
	if cfg.Workers > 0 && len(cfg.WorkerCmd) == 0 {
		return nil, errors.New("--worker-cmd is required when --workers > 0")
	}
	if err := workerproto.ValidAppName(cfg.App); err != nil {
		return nil, fmt.Errorf("--app: %w", err)
	}
	if err := cfg.Dispatch.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

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
