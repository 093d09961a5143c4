// Package supervisor starts and keeps alive the gateway's Python workers.
//
// For each configured app it spawns Count worker processes, each with one end of a
// socketpair as fd 3 (COVET_CONTROL_FD=3), reads the worker's HELLO and attaches it
// to the dispatcher. A worker that exits is started again, after a backoff that
// doubles (from MinBackoff up to MaxBackoff) while workers keep dying young and
// resets once one has lived for a while. A worker whose session ends while its
// process lives on (a protocol violation) is killed. Once a worker's process has
// been reaped the supervisor tells its session (dispatch.Session.Exited), which may
// then retry on another worker the requests it never took. Each app it starts is
// expected by the dispatcher (dispatch.Dispatcher.Expect), so while its workers are
// restarting requests wait for them rather than fail. A worker that exits or is
// refused before it attaches is a startup failure, logged with its cause; after
// MaxStartupFailures of them in a row in one slot the supervisor gives up and
// reports it on Failed. Workers started elsewhere register through a control socket
// (see Listen).
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/workerproto"
)

// Spec describes the workers of one app.
type Spec struct {
	App     string   // app name, as the workers send it in HELLO
	Command []string // argv of a worker process
	Dir     string   // working directory; "" means the gateway's
	Env     []string // extra environment, KEY=VALUE
	Count   int      // worker processes; default 1
}

// Config tunes restarts. Zero values mean the defaults.
type Config struct {
	MinBackoff time.Duration `config:"restart_backoff" help:"first restart delay of a worker that died young; doubles up to max_backoff; 0 = 100ms"` // first restart delay after a young death; default 100ms
	MaxBackoff time.Duration `config:"max_backoff" help:"longest restart delay; 0 = 5s"`                                                             // longest restart delay; default 5s
	Stable     time.Duration `config:"restart_stable" help:"a worker that lived this long resets the backoff; 0 = 10s"`                              // a worker that lived this long resets the backoff; default 10s
	Handshake  time.Duration `config:"worker_handshake_timeout" help:"time a new worker has to send HELLO; 0 = 30s"`                                 // time a new worker has to send HELLO; default 30s (imports can be slow)
	// MaxStartupFailures: when one worker slot's workers fail at startup (exit or
	// are refused before they attach) this many times in a row, the supervisor
	// gives up: Failed reports why, and the gateway exits non-zero. Default 5;
	// negative = never give up.
	MaxStartupFailures int `config:"max_startup_failures" help:"exit when a worker fails at startup this many times in a row; 0 = 5, negative = never"`
	// OnRestart, if set, is called each time a worker process is restarted after
	// it exited, with its app and a reason (restart.go). It must not block.
	OnRestart func(app, reason string)

	Lifecycle // recycling (max requests, max RSS), the heartbeat watchdog: lifecycle.go
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MinBackoff == 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.Stable == 0 {
		c.Stable = 10 * time.Second
	}
	if c.Handshake == 0 {
		c.Handshake = 30 * time.Second
	}
	if c.MaxStartupFailures == 0 {
		c.MaxStartupFailures = 5
	}
	c.Lifecycle = c.Lifecycle.withDefaults()
	return c
}

// Supervisor runs the worker processes of a set of apps.
type Supervisor struct {
	cfg Config
	d   *dispatch.Dispatcher
	log *slog.Logger

	mu       sync.Mutex
	procs    map[*os.Process]struct{}
	stopping bool
	wg       sync.WaitGroup

	failOnce sync.Once
	failed   chan error    // gets one error when workers keep failing at startup
	stopped  chan struct{} // closed by Stop: ends the restart backoffs

	lc lifecycle // slots, recycling, rolling restarts, watchdog: lifecycle.go
}

// New returns a Supervisor attaching workers to d. A nil logger discards.
func New(cfg Config, d *dispatch.Dispatcher, log *slog.Logger) *Supervisor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{cfg: cfg.WithDefaults(), d: d, log: log, procs: map[*os.Process]struct{}{},
		failed: make(chan error, 1), stopped: make(chan struct{})}
}

// Failed delivers an error, once, when a worker slot's workers have failed at
// startup MaxStartupFailures times in a row: the app cannot run, and the caller
// should stop (the gateway exits non-zero with it).
func (s *Supervisor) Failed() <-chan error { return s.failed }

// StartupError says why a worker never attached: it exited, or was refused, before
// the end of its handshake.
type StartupError struct {
	App   string
	Cause string // the worker's own error ("RuntimeError: db unreachable"), or what the gateway saw
}

func (e *StartupError) Error() string { return "worker exited during startup: " + e.Cause }

// Start spawns every spec's workers and keeps them running until ctx ends or Stop
// is called. It returns at once.
func (s *Supervisor) Start(ctx context.Context, specs []Spec) error {
	for _, sp := range specs {
		if len(sp.Command) == 0 {
			return fmt.Errorf("supervisor: app %q: empty worker command", sp.App)
		}
		n := sp.Count
		if n <= 0 {
			n = 1
		}
		s.d.Expect(sp.App) // requests wait for its workers; they come back when they die
		s.startLifecycle(ctx, sp)
		for i := 0; i < n; i++ {
			s.wg.Add(1)
			go s.keep(ctx, sp, s.newSlot(sp, i))
		}
	}
	return nil
}

// Stop drains the workers (they finish in-flight requests and leave) and waits for
// every process to exit; those still running when timeout passes are killed.
func (s *Supervisor) Stop(timeout time.Duration) {
	s.mu.Lock()
	if !s.stopping {
		close(s.stopped)
	}
	s.stopping = true
	s.mu.Unlock()
	s.d.Drain(timeout)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(timeout):
	}
	s.mu.Lock()
	for p := range s.procs {
		p.Kill()
	}
	s.mu.Unlock()
	<-done
}

// keep runs one worker slot: start, wait for exit, back off, start again.
func (s *Supervisor) keep(ctx context.Context, sp Spec, sl *slot) {
	defer s.wg.Done()
	defer sl.finish() // lifecycle.go
	backoff := s.cfg.MinBackoff
	failures := 0 // startup failures in a row
	for {
		started := time.Now()
		err := s.runOnce(ctx, sp, sl)
		if sl.ran(err) || s.isStopping() || ctx.Err() != nil { // ran: true once the slot is retired
			return
		}
		if time.Since(started) >= s.cfg.Stable {
			backoff = s.cfg.MinBackoff
		}
		var se *StartupError
		if errors.As(err, &se) {
			failures++
			s.log.Error(se.Error(), "app", sp.App, "slot", sl.n, "failures_in_a_row", failures, "backoff", backoff)
			if max := s.cfg.MaxStartupFailures; max > 0 && failures >= max {
				s.fail(fmt.Errorf("app %q: a worker failed at startup %d times in a row: %w", sp.App, failures, se))
				return
			}
		} else {
			failures = 0
			s.log.Warn("worker exited; restarting", "app", sp.App, "slot", sl.n, "err", err, "backoff", backoff)
		}
		if s.cfg.OnRestart != nil {
			s.cfg.OnRestart(sp.App, RestartReason(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-s.stopped:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// fail reports err on Failed, once.
func (s *Supervisor) fail(err error) {
	s.failOnce.Do(func() {
		s.log.Error("giving up on the app's workers", "err", err)
		s.failed <- err
	})
}

func (s *Supervisor) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// runOnce starts one worker process and returns when it has exited.
func (s *Supervisor) runOnce(ctx context.Context, sp Spec, sl *slot) error {
	conn, child, err := workerproto.SpawnSocketpair()
	if err != nil {
		return err
	}
	defer conn.Close()
	cmd := exec.Command(sp.Command[0], sp.Command[1:]...)
	cmd.Dir = sp.Dir
	cmd.Env = append(append(os.Environ(), sp.Env...), workerproto.EnvControlFD+"=3")
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// Workers die with the gateway, whatever way it goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	s.mu.Lock()
	if s.stopping || sl.retired.Load() {
		s.mu.Unlock()
		child.Close()
		return errors.New("stopping")
	}
	err = cmd.Start()
	child.Close()
	if err == nil {
		s.procs[cmd.Process] = struct{}{}
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("supervisor: start %v: %w", sp.Command, err)
	}
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		s.mu.Lock()
		delete(s.procs, cmd.Process)
		s.mu.Unlock()
	}()

	conn.SetReadDeadline(time.Now().Add(s.cfg.Handshake))
	hello, err := workerproto.RecvHello(conn, "")
	conn.SetReadDeadline(time.Time{})
	if pe, ok := err.(*workerproto.Error); ok {
		err = &workerError{pe}
	}
	if err == nil && hello.App != sp.App {
		err = &workerproto.Error{Code: workerproto.CodeManifest,
			Message: fmt.Sprintf("worker says app %q, the gateway expects %q", hello.App, sp.App)}
		workerproto.Refuse(conn, err)
	}
	var sess *dispatch.Session
	if err == nil {
		sess, err = s.d.Attach(conn, hello, cmd.Process.Pid, dispatch.Spawned)
	}
	sl.attach(sess, cmd.Process, err) // lifecycle.go: recycling, watchdog, Roll
	if err != nil {
		cmd.Process.Kill()
		return startupError(sp.App, err, <-exited)
	}
	// Once the process is reaped it can take nothing more off its request ring:
	// sess.Exited lets the session's teardown retry what is still there.
	select {
	case err := <-exited:
		sess.Exited()
		<-sess.Done()
		return err
	case <-sess.Closing():
		hungUp := sess.HungUp()
		var err error
		if hungUp {
			// The worker closed its socket: it is exiting (or was killed); let it
			// end by itself, briefly, so that its own status is reported.
			select {
			case err = <-exited:
			case <-time.After(exitGrace):
				cmd.Process.Kill()
				err = <-exited
			}
		} else {
			// The gateway ended the session (a violation, a failed write) while the
			// process lives on: it must not keep running half-attached.
			cmd.Process.Kill()
			err = <-exited
		}
		sess.Exited()
		<-sess.Done()
		if hungUp {
			return err
		}
		return sess.Err()
	case <-ctx.Done():
		cmd.Process.Kill()
		<-exited
		sess.Exited()
		<-sess.Done()
		return ctx.Err()
	}
}

// exitGrace is how long a worker that hung up its control socket gets to exit by
// itself before it is killed.
const exitGrace = time.Second

// startupError says why a worker that never attached failed: helloErr is what the
// handshake ended with, exitErr how its process ended.
func startupError(app string, helloErr, exitErr error) *StartupError {
	var we *workerError
	switch {
	case errors.As(helloErr, &we):
		return &StartupError{App: app, Cause: we.e.Message} // its startup hook raised, say
	case errors.Is(helloErr, io.EOF):
		return &StartupError{App: app, Cause: fmt.Sprintf("it ended (%v) before saying hello", exitErr)}
	case errors.Is(helloErr, os.ErrDeadlineExceeded):
		return &StartupError{App: app, Cause: "no hello within worker_handshake_timeout"}
	}
	return &StartupError{App: app, Cause: "the gateway refused it: " + helloErr.Error()}
}

// workerError is an error frame the worker sent instead of hello (RecvHello returns
// it as is), told apart from the error frames the gateway sends.
type workerError struct{ e *workerproto.Error }

func (w *workerError) Error() string { return w.e.Error() }

// Listen accepts workers started elsewhere (sidecar mode) on l until it is closed.
func (s *Supervisor) Listen(l *workerproto.Listener) error {
	for {
		conn, cred, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			conn.SetReadDeadline(time.Now().Add(s.cfg.Handshake))
			hello, err := l.RecvHello(conn)
			conn.SetReadDeadline(time.Time{})
			if err != nil {
				s.log.Warn("external worker refused", "pid", cred.PID, "err", err)
				return
			}
			sess, err := s.d.Attach(conn, hello, int(cred.PID), dispatch.External)
			if err != nil {
				s.log.Warn("external worker refused", "pid", cred.PID, "err", err)
				return
			}
			s.watchExternal(sess) // lifecycle.go: the heartbeat watchdog
		}()
	}
}
