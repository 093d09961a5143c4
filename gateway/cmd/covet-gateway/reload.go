package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/covetpy/covetpy/gateway/supervisor"
)

// reloadOnSIGHUP makes SIGHUP restart the spawned workers one at a time
// (supervisor.Roll): each gets a replacement that serves before it drains, so no
// request fails and no connection is dropped; the gateway itself keeps running.
// `covet run --reload` sends it when the app's files change. Signals arriving during
// a roll are coalesced into one more roll. The returned function stops listening.
//
// Before each roll the configuration is read again (reload: the file, the
// environment and the original flags) and the worker command, count and directory
// are taken from it; the other settings apply at the next start. A configuration
// that no longer loads is logged and the running one kept, with no restart.
func reloadOnSIGHUP(log *slog.Logger, sup *supervisor.Supervisor, cfg *Config, reload func() (*Config, error)) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			next, err := reload()
			if err != nil {
				log.Error("SIGHUP: the configuration does not load; keeping the running one", "err", err)
				continue
			}
			if next.App != cfg.App {
				log.Warn("SIGHUP: app cannot change without a restart of the gateway", "app", cfg.App, "new", next.App)
				next.App = cfg.App
			}
			cfg = next
			if cfg.Workers == 0 {
				log.Info("SIGHUP: no spawned workers to restart")
				continue
			}
			spec := supervisor.Spec{App: cfg.App, Command: cfg.WorkerCmd, Dir: cfg.WorkerDir, Count: cfg.Workers}
			log.Info("SIGHUP: restarting the workers one at a time", "app", spec.App, "workers", spec.Count)
			if err := sup.Roll(ctx, spec); err != nil {
				log.Error("rolling restart failed", "app", spec.App, "err", err)
				continue
			}
			log.Info("rolling restart done", "app", spec.App)
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

// parseSize reads a byte count: a plain number of bytes, or one with a suffix K, M,
// G (powers of 1024; KiB, MiB, GiB and KB, MB, GB are read the same way).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with K, M or G)", s)
	}
	if n > (1<<62)/mult {
		return 0, errors.New("size too large")
	}
	return n * mult, nil
}
