// Package harness runs the gateway side of the shared-memory transport against a
// real Python worker process, for the transport's integration tests and benchmark.
// It uses the same packages the gateway does (workerproto for the handshake, shmring
// for the segment and rings) and no HTTP.
package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/covetpy/covetpy/shmring"
	"github.com/covetpy/covetpy/workerproto"
)

// Python returns the interpreter to run workers with: $COVET_PYTHON, else the
// project's .venv/bin/python found from the current directory upwards.
func Python() (string, error) {
	if p := os.Getenv("COVET_PYTHON"); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no Python: set COVET_PYTHON or run `make venv` (%w)", err)
	}
	return p, nil
}

// RepoRoot is the directory holding go.mod, found from the current directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("harness: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Spin is how long the response-ring reader spin-polls before it sleeps on its
// doorbell (shmring.Consumer.SetSpin), when at most SpinMaxOutstanding messages are
// unanswered. With more outstanding it sleeps at once, as the gateway's reader does
// (gateway/dispatch): the worker is busy, and a wakeup then collects a batch.
var (
	Spin               = 20 * time.Microsecond
	SpinMaxOutstanding = 1
)

// EchoWorker is one Python echo worker (integration/workers/echo_shm.py) attached
// through a real handshake: its own segment, doorbells and rings.
type EchoWorker struct {
	Cmd  *exec.Cmd
	Conn *net.UnixConn // the control socket
	Seg  *shmring.Segment

	wbell, gbell *shmring.Doorbell
	space        shmring.Signal
	w            shmring.Writer
	cons         *shmring.Consumer
	readerDone   chan error
	cancel       context.CancelFunc
	ctx          context.Context
	outstanding  atomic.Int64 // messages sent (BEGIN) whose last response frame (END) has not come
}

// StartEchoWorker spawns the echo worker in mode ("raw" or "msgpack"), runs the
// handshake and starts a goroutine that hands every response-ring frame to onFrame
// (its payload is borrowed: copy what you keep).
func StartEchoWorker(g shmring.Geometry, mode string, onFrame func(shmring.Frame) error) (*EchoWorker, error) {
	py, err := Python()
	if err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	conn, child, err := workerproto.SpawnSocketpair()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(py, filepath.Join(root, "integration", "workers", "echo_shm.py"), "--mode", mode)
	cmd.Env = append(os.Environ(), workerproto.EnvControlFD+"=3")
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		child.Close()
		conn.Close()
		return nil, err
	}
	child.Close()
	e := &EchoWorker{Cmd: cmd, Conn: conn, readerDone: make(chan error, 1)}
	if err := e.handshake(g); err != nil {
		e.Kill()
		return nil, err
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	go e.readLoop(func(f shmring.Frame) error {
		if f.Flags&shmring.FlagEnd != 0 {
			e.outstanding.Add(-1)
		}
		return onFrame(f)
	})
	return e, nil
}

func (e *EchoWorker) handshake(g shmring.Geometry) error {
	e.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := workerproto.RecvHello(e.Conn, ""); err != nil {
		return err
	}
	e.Conn.SetReadDeadline(time.Time{})
	g = g.WithDefaults()
	seg, err := shmring.CreateSegment(g, shmring.HeaderInit{GatewayPID: uint32(os.Getpid()), WorkerPID: uint32(e.Cmd.Process.Pid), Epoch: 1})
	if err != nil {
		return err
	}
	e.Seg = seg
	if e.wbell, err = shmring.NewDoorbell(); err != nil {
		return err
	}
	if e.gbell, err = shmring.NewDoorbell(); err != nil {
		return err
	}
	w := workerproto.Welcome{Version: workerproto.Version, WorkerID: 1, Epoch: 1, SegmentSize: int64(g.SegmentSize()),
		ReqCapacity: int64(g.ReqCapacity), RespCapacity: int64(g.RespCapacity), HeartbeatMS: 1000}
	if err := workerproto.SendWelcome(e.Conn, w, []int{seg.Fd(), e.wbell.Fd(), e.gbell.Fd()}); err != nil {
		return err
	}
	e.w = shmring.Writer{Producer: shmring.NewMPSCProducer(seg.RequestRing(), e.wbell), Space: &e.space}
	if e.cons, err = shmring.NewConsumer(seg.ResponseRing(), e.wbell); err != nil {
		return err
	}
	e.cons.SetSpin(Spin)
	deadline := time.Now().Add(30 * time.Second)
	for seg.WorkerState() != shmring.StateReady {
		if time.Now().After(deadline) {
			return errors.New("harness: worker did not report ready")
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (e *EchoWorker) readLoop(onFrame func(shmring.Frame) error) {
	for {
		n, err := e.cons.Poll(onFrame)
		if err != nil {
			e.readerDone <- err
			return
		}
		e.space.Broadcast()
		if n > 0 {
			continue
		}
		if e.outstanding.Load() > int64(SpinMaxOutstanding) {
			e.cons.SetSpin(0)
		} else {
			e.cons.SetSpin(Spin)
		}
		if err := e.cons.Wait(e.ctx, e.gbell, 10*time.Millisecond); err != nil {
			e.readerDone <- nil
			return
		}
	}
}

// Send writes one message (fragmented if large) of type typ on the request ring.
// Safe for concurrent use.
func (e *EchoWorker) Send(ctx context.Context, typ workerproto.FrameType, id uint64, payload []byte) error {
	e.outstanding.Add(1)
	err := e.w.WriteMessage(ctx, int32(typ), id, 0, payload)
	if err != nil {
		e.outstanding.Add(-1)
	}
	return err
}

// Close ends the worker (EOF on its control socket), waits for it to exit and
// releases the segment, the doorbells and the socket.
func (e *EchoWorker) Close() error {
	e.Conn.Close()
	err := e.Cmd.Wait()
	return errors.Join(err, e.release())
}

// Kill SIGKILLs the worker, waits for it and releases everything.
func (e *EchoWorker) Kill() {
	e.Cmd.Process.Kill()
	e.Cmd.Wait()
	e.Conn.Close()
	e.release()
}

func (e *EchoWorker) release() error {
	var rerr error
	if e.cancel != nil {
		e.cancel()
		rerr = <-e.readerDone
	}
	var errs []error
	if e.Seg != nil {
		errs = append(errs, e.Seg.Close())
	}
	for _, b := range []*shmring.Doorbell{e.wbell, e.gbell} {
		if b != nil {
			errs = append(errs, b.Close())
		}
	}
	return errors.Join(append(errs, rerr)...)
}
