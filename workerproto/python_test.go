package workerproto

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// pythonInterpreter finds the Python that has the covet SDK: $COVET_PYTHON, else the
// repository's .venv.
func pythonInterpreter(t *testing.T) string {
	t.Helper()
	env := os.Getenv("COVET_PYTHON")
	if env != "" {
		if _, err := os.Stat(env); err == nil {
			return env
		}
	}
	p, err := filepath.Abs(filepath.Join("..", ".venv", "bin", "python"))
	if err == nil {
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("no Python for the cross-language handshake: COVET_PYTHON=%q is unset or missing, and %s: %v", env, p, err)
	return ""
}

// TestPythonHandshake runs the Python SDK's control channel as a spawned worker (fd 3,
// COVET_CONTROL_FD=3) against this package's gateway side: hello, welcome with a real
// memfd and two eventfds, ping/pong, bye. The Python side reports the (dev, inode) of
// each descriptor it received, which must match what was sent.
func TestPythonHandshake(t *testing.T) {
	py := pythonInterpreter(t)
	script, err := filepath.Abs(filepath.Join("..", "python-sdk", "tests", "proto_handshake_peer.py"))
	if err != nil {
		t.Fatal(err)
	}
	gw, child, err := SpawnSocketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	cmd := exec.Command(py, script)
	cmd.ExtraFiles = []*os.File{child}
	cmd.Env = append(os.Environ(), EnvControlFD+"=3", "PEER_TOKEN=tok")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	defer cmd.Process.Kill()
	gw.SetDeadline(time.Now().Add(30 * time.Second))

	h, err := RecvHello(gw, "tok")
	if err != nil {
		t.Fatalf("hello: %v\n%s", err, stderr.String())
	}
	if h.PID != int64(cmd.Process.Pid) || h.App != "py-peer" || len(h.Routes) != 2 ||
		h.Routes[0].Name() != "user" || h.Routes[0].Roles()[0] != "admin" || h.Routes[1].Kind != "ws" {
		t.Fatalf("hello %+v", h)
	}
	w := testWelcome()
	fds := segmentFDs(t, w.SegmentSize)
	defer closeFDs(fds)
	if err := SendWelcome(gw, w, fds); err != nil {
		t.Fatal(err)
	}
	if err := WriteMessage(gw, Ping{Seq: 77}); err != nil {
		t.Fatal(err)
	}
	if m, err := RecvMessage(gw); err != nil || m != (Pong{Seq: 77}) {
		t.Fatalf("pong: %v %v\n%s", m, err, stderr.String())
	}
	if m, err := RecvMessage(gw); err != nil || m != (Bye{Reason: "done"}) {
		t.Fatalf("bye: %v %v", m, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python peer: %v\n%s", err, stderr.String())
	}
	var report struct {
		Welcome map[string]uint64 `json:"welcome"`
		Files   [][2]uint64       `json:"files"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("peer output %q: %v", stdout.String(), err)
	}
	if report.Welcome["epoch"] != w.Epoch || report.Welcome["segment_size"] != uint64(w.SegmentSize) ||
		report.Welcome["worker_id"] != uint64(w.WorkerID) {
		t.Fatalf("python saw welcome %v", report.Welcome)
	}
	if len(report.Files) != 3 {
		t.Fatalf("python saw %d files", len(report.Files))
	}
	for i, fd := range fds {
		if got, want := report.Files[i], inode(t, fd); got != want {
			t.Errorf("fd %d: python saw (dev, ino) %v, sent %v", i, got, want)
		}
	}
}
