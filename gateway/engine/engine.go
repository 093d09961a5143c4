// Package engine is the socket layer under the gateway's HTTP/1.1 front end
// (gateway/server). An Engine turns a listener's connections into Conns:
// byte streams with deadlines, writev and a half close. The front end, its
// sans-IO codec, the router and the dispatcher sit above a Conn and do not
// know which engine runs.
//
// Two engines exist:
//
//   - netpoll: Go's own network poller. Short reads and writes are raw
//     system calls made inside syscall.RawConn's callbacks (sockConn); waiting
//     for readiness and deadlines go through the runtime.
//   - uring: io_uring (github.com/pawelgaczynski/giouring), one ring per Go
//     processor, each run by one goroutine (its loop) that alone submits to
//     it and reaps it, in batches: one io_uring_enter per pass, for every
//     connection on the ring. The ring accepts (multishot accept) and
//     receives (recv into a ring of 1,024 provided 16 KiB buffers, re-armed
//     by the loop itself, so a request costs no read system call); the
//     bytes are copied into the connection's input buffer (32 KiB, from a
//     spare list, given back when all is read, so an idle connection holds
//     none) and its reader woken. A write is one non-blocking writev from
//     the writing goroutine, as on netpoll (a ring send would add a hand-off
//     to the loop and back); one that would block waits for room through
//     the ring (poll). When it has nothing to do the loop parks in Go's
//     poller on an eventfd that the kernel adds to when completions arrive
//     (registered with the ring) and that other goroutines add to when they
//     post work. Deadlines are Go timers, armed only while a call waits.
//
// The default is netpoll: on the machines measured so far the uring engine
// makes 0.44x the system calls per request but costs as much CPU or more
// (docs/performance.md), so it is opt-in until it measures faster. Name
// "auto" picks uring when the probe (New) can set up a ring with a
// provided-buffer ring and the operations the engine uses, and netpoll
// otherwise, with the reason. io_uring is refused by Docker's default
// seccomp profile (EPERM), by kernel.io_uring_disabled, by kernels before
// 5.19 (no provided-buffer rings) and, before 5.12, by a low RLIMIT_MEMLOCK.
//
// Both engines' Conns are FileSenders: a static file's bytes go from the
// page cache to the socket with sendfile(2) (non-blocking; one that would
// block waits for room as a write does).
//
// TLS runs over either engine's Conns (crypto/tls wraps the Conn); HTTP/3
// is UDP (QUIC) and does not use an engine.
package engine

import (
	"errors"
	"fmt"
	"net"
)

// Names of the engines, as the config's engine setting takes them.
const (
	Auto    = "auto"
	Uring   = "uring"
	Netpoll = "netpoll"
)

// Conn is one client connection. At most one goroutine reads and one writes
// at a time; Close, CloseWrite and the deadline setters may be called from
// any goroutine. Errors follow net.Conn's: a passed deadline gives an error
// matching os.ErrDeadlineExceeded, a closed Conn one matching net.ErrClosed,
// the peer's orderly close io.EOF.
type Conn interface {
	net.Conn
	// CloseWrite shuts the sending side (FIN) and keeps reading.
	CloseWrite() error
	// WriteBuffers writes all of *bufs in order (writev), consuming what it
	// wrote, as net.Buffers.WriteTo does.
	WriteBuffers(bufs *net.Buffers) (int64, error)
}

// Engine accepts connections as Conns.
type Engine interface {
	// Name is Uring or Netpoll.
	Name() string
	// Listen returns a listener that accepts l's connections through the
	// engine: its Accept returns Conns, and its Close closes l. A listener
	// the engine cannot take (not TCP) is served as netpoll would.
	Listen(l net.Listener) net.Listener
	// Close stops the engine. Conns still open fail from then on with
	// net.ErrClosed. Close the listeners and connections first.
	Close() error
}

// New returns the engine called name: Netpoll (also for empty: the
// default), Uring or Auto. Uring fails when io_uring is unusable here; Auto
// then gives netpoll and says why in fallback.
func New(name string) (e Engine, fallback string, err error) {
	switch name {
	case Netpoll, "":
		return NetpollEngine(), "", nil
	case Uring:
		e, err := newUring()
		if err != nil {
			return nil, "", err
		}
		return e, "", nil
	case Auto:
		e, err := newUring()
		if err != nil {
			return NetpollEngine(), err.Error(), nil
		}
		return e, "", nil
	}
	return nil, "", fmt.Errorf("unknown engine %q (want auto, uring or netpoll)", name)
}

// Valid reports whether name is an engine setting New takes.
func Valid(name string) bool {
	switch name {
	case Auto, Uring, Netpoll, "":
		return true
	}
	return false
}

// NetpollEngine returns the netpoll engine. It holds no resources.
func NetpollEngine() Engine { return netpollEngine{} }

type netpollEngine struct{}

func (netpollEngine) Name() string                       { return Netpoll }
func (netpollEngine) Listen(l net.Listener) net.Listener { return netpollListener{l} }
func (netpollEngine) Close() error                       { return nil }

type netpollListener struct{ net.Listener }

func (l netpollListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(nc), nil
}

// plainConn is a Conn over any net.Conn.
type plainConn struct{ net.Conn }

func (c plainConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c plainConn) WriteBuffers(bufs *net.Buffers) (int64, error) { return bufs.WriteTo(c.Conn) }
