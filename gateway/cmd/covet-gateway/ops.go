package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// opsConfig is the operations part of the configuration: the admin listener
// (/metrics, /healthz, /readyz, optionally /debug/pprof/), the access log.
type opsConfig struct {
	AdminListen string `config:"admin_listen" help:"TCP address for /metrics, /healthz and /readyz; empty = none, and no metrics"`
	AccessLog   bool   `config:"access_log" help:"log one line per request: method, path, status, bytes, duration, request_id, app, route, client"`
	Pprof       bool   `config:"pprof" help:"also serve Go's /debug/pprof/ (CPU, heap, goroutine profiles) on admin_listen"`
}

// setupOps applies the ops settings to cfg: metrics on a fresh registry handed to
// the dispatcher, HTTP server and supervisor (only with admin_listen), the access
// log. It returns the registry, nil without metrics.
func setupOps(cfg *Config, log *slog.Logger) (*prometheus.Registry, error) {
	if cfg.Ops.AccessLog {
		cfg.Server.AccessLog = log.With("component", "access")
	}
	if cfg.Ops.AdminListen == "" {
		return nil, nil
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		return nil, err
	}
	cfg.Dispatch.Metrics = m
	cfg.Server.Metrics = m
	cfg.Supervisor.OnRestart = m.WorkerRestarted
	cfg.Supervisor.OnRecycle = m.WorkerRecycled
	return reg, nil
}

// serveAdmin serves the admin endpoints on --admin-listen, if set. ready is the
// readiness check (every app has a live worker). stop closes the listener.
func serveAdmin(cfg *Config, reg *prometheus.Registry, ready func() error, log *slog.Logger) (stop func(), err error) {
	if cfg.Ops.AdminListen == "" || reg == nil {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.Ops.AdminListen)
	if err != nil {
		return nil, err
	}
	var handler http.Handler = metrics.Handler(reg, ready)
	if cfg.Ops.Pprof {
		mux := http.NewServeMux()
		mux.Handle("/", handler)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		handler = mux
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      2 * time.Minute, // a CPU profile streams for ?seconds= (default 30)
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener failed", "err", err)
		}
	}()
	log.Info("admin endpoints", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
