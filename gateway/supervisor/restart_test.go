package supervisor

import (
	"errors"
	"os/exec"
	"testing"
)

func TestRestartReason(t *testing.T) {
	run := func(script string) error { return exec.Command("/bin/sh", "-c", script).Run() }
	if r := RestartReason(run("exit 3")); r != ReasonExit {
		t.Errorf("exit 3: %q, want %q", r, ReasonExit)
	}
	if r := RestartReason(run("kill -9 $$")); r != ReasonSignal {
		t.Errorf("kill -9: %q, want %q", r, ReasonSignal)
	}
	if r := RestartReason(errors.New("handshake: EOF")); r != ReasonError {
		t.Errorf("other error: %q, want %q", r, ReasonError)
	}
	if r := RestartReason(nil); r != ReasonExit {
		t.Errorf("nil: %q, want %q", r, ReasonExit)
	}
}
