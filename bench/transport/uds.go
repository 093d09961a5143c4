package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/covetpy/covetpy/integration/harness"
	"golang.org/x/sys/unix"
)

// udsEchoer is the baseline: length-prefixed frames over a Unix stream socket, one
// write per frame, a buffered reader goroutine on the way back.
type udsEchoer struct {
	conn *net.UnixConn
	cmd  *exec.Cmd
	mu   sync.Mutex
	done chan error
}

func startUDS(p *pending) (echoer, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	child := os.NewFile(uintptr(fds[1]), "uds-child")
	parent := os.NewFile(uintptr(fds[0]), "uds-parent")
	fc, err := net.FileConn(parent)
	parent.Close()
	if err != nil {
		child.Close()
		return nil, err
	}
	root, err := harness.RepoRoot()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, "bench", "transport", "echo_uds.py")
	cmd := exec.Command(pythonPath(), script, "3")
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		child.Close()
		fc.Close()
		return nil, err
	}
	child.Close()
	e := &udsEchoer{conn: fc.(*net.UnixConn), cmd: cmd, done: make(chan error, 1)}
	go e.readLoop(p)
	return e, nil
}

func (e *udsEchoer) readLoop(p *pending) {
	r := bufio.NewReaderSize(e.conn, 64<<10)
	var hdr [12]byte
	buf := make([]byte, 0, 4096)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			e.done <- err
			return
		}
		n := binary.LittleEndian.Uint32(hdr[0:4])
		id := binary.LittleEndian.Uint64(hdr[4:12])
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			e.done <- err
			return
		}
		p.deliver(id)
	}
}

func (e *udsEchoer) send(id uint64, payload []byte) error {
	frame := make([]byte, 12, 12+len(payload))
	binary.LittleEndian.PutUint32(frame[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint64(frame[4:12], id)
	frame = append(frame, payload...)
	e.mu.Lock()
	_, err := e.conn.Write(frame)
	e.mu.Unlock()
	return err
}

func (e *udsEchoer) close() error {
	e.conn.CloseWrite()
	err := e.cmd.Wait()
	e.conn.Close()
	<-e.done
	if err != nil {
		return fmt.Errorf("unix echo worker: %w", err)
	}
	return nil
}

func (e *udsEchoer) pid() int { return e.cmd.Process.Pid }
