package supervisor

import (
	"errors"
	"os/exec"
	"syscall"
)

// Restart reasons passed to Config.OnRestart (a metric label: a fixed set).
const (
	ReasonExit   = "exit"   // the worker exited by itself, with any exit code
	ReasonSignal = "signal" // the worker was killed by a signal (OOM killer, kill -9, or the supervisor after a refused handshake or a broken session)
	ReasonError  = "error"  // it could not be started, or ended for another reason
)

// RestartReason classifies the error a worker slot's run ended with.
func RestartReason(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ReasonSignal
		}
		return ReasonExit
	}
	if err == nil {
		return ReasonExit
	}
	return ReasonError
}
