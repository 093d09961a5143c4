package workerproto

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables that tell a worker how to reach its gateway (PROTOCOL.md 1.1).
const (
	EnvControlFD     = "COVET_CONTROL_FD"     // spawned worker: the inherited socket's fd number
	EnvControlSocket = "COVET_CONTROL_SOCKET" // external worker: the gateway's socket path
	ChildControlFD   = 3                      // the fd a spawned worker inherits (exec.Cmd.ExtraFiles[0])
)

// WelcomeFDs is the number of descriptors that travel with a welcome: the segment
// memfd, the worker doorbell and the gateway doorbell, in that order.
const WelcomeFDs = 3

// maxRecvFDs sizes the ancillary buffer of a receive. A peer that sends more
// descriptors than fit gets them closed by the kernel (MSG_CTRUNC), and the frame is
// refused either way.
const maxRecvFDs = 8

// SpawnSocketpair creates the control socket of a spawned worker: a connected
// AF_UNIX stream pair. The gateway keeps conn; child goes into exec.Cmd.ExtraFiles[0]
// so that the worker sees it as fd 3 (set EnvControlFD=3 in its environment), and
// the gateway closes child once the process has started. Both ends are close-on-exec
// in this process.
func SpawnSocketpair() (conn *net.UnixConn, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("workerproto: socketpair: %w", err)
	}
	gw := os.NewFile(uintptr(fds[0]), "covet-control")
	defer gw.Close() // net.FileConn dups it
	c, err := net.FileConn(gw)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("workerproto: socketpair: %w", err)
	}
	return c.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "covet-control-child"), nil
}

// recvFrame reads one control frame with recvmsg, collecting any descriptors that
// arrive with it. It reads exactly the frame's bytes, never past it. The caller owns
// (and must close) the returned fds, even when err is not nil.
func recvFrame(conn *net.UnixConn) (payload []byte, fds []int, err error) {
	oob := make([]byte, unix.CmsgSpace(4*maxRecvFDs))
	truncated := false
	read := func(p []byte) (int, error) {
		got := 0
		for got < len(p) {
			n, oobn, flags, _, err := conn.ReadMsgUnix(p[got:], oob)
			if oobn > 0 {
				fds = append(fds, parseRights(oob[:oobn])...)
			}
			if flags&unix.MSG_CTRUNC != 0 {
				truncated = true
			}
			got += n
			if err != nil {
				return got, err
			}
			if n == 0 {
				return got, io.EOF
			}
		}
		return got, nil
	}
	var hdr [FrameHeaderLen]byte
	if k, err := read(hdr[:]); err != nil {
		if errors.Is(err, io.EOF) && k == 0 {
			return nil, fds, io.EOF
		}
		return nil, fds, truncatedRead(err)
	}
	n, err := frameLen(hdr[:])
	if err != nil {
		return nil, fds, err
	}
	payload = make([]byte, n)
	if _, err := read(payload); err != nil {
		return nil, fds, truncatedRead(err)
	}
	if truncated {
		return nil, fds, fmt.Errorf("%w: ancillary data truncated (more than %d descriptors)", ErrFDCount, maxRecvFDs)
	}
	return payload, fds, nil
}

// parseRights returns the descriptors of every SCM_RIGHTS message in oob.
func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		if r, err := unix.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, r...)
		}
	}
	return fds
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// RecvMessage reads one control message from conn. Descriptors may travel only with
// a welcome (RecvWelcome): any that arrive here are closed and the result is an error
// wrapping ErrUnexpectedFDs. End of stream before a frame gives io.EOF.
func RecvMessage(conn *net.UnixConn) (Message, error) {
	b, fds, err := recvFrame(conn)
	if len(fds) > 0 {
		closeFDs(fds)
		if err == nil {
			err = fmt.Errorf("%w: %d received and closed", ErrUnexpectedFDs, len(fds))
		}
	}
	if err != nil {
		return nil, err
	}
	return DecodeMessage(b)
}

// SendWelcome sends w with the segment memfd, the worker doorbell and the gateway
// doorbell (fds, in that order) in a single sendmsg carrying one SCM_RIGHTS message
// (PROTOCOL.md 1.4). The caller keeps its own copies of the descriptors.
func SendWelcome(conn *net.UnixConn, w Welcome, fds []int) error {
	if len(fds) != WelcomeFDs {
		return fmt.Errorf("%w: asked to send %d", ErrFDCount, len(fds))
	}
	frame, err := AppendFrame(nil, w)
	if err != nil {
		return err
	}
	rights := unix.UnixRights(fds...)
	n, oobn, err := conn.WriteMsgUnix(frame, rights, nil)
	if err != nil {
		return fmt.Errorf("workerproto: send welcome: %w", err)
	}
	if oobn != len(rights) {
		return fmt.Errorf("workerproto: send welcome: ancillary data cut to %d of %d bytes", oobn, len(rights))
	}
	if n < len(frame) { // the descriptors went with the first byte; finish the frame
		if _, err := conn.Write(frame[n:]); err != nil {
			return fmt.Errorf("workerproto: send welcome: %w", err)
		}
	}
	return nil
}

// RecvWelcome reads the gateway's answer to a hello: a welcome with exactly three
// descriptors (segment memfd, worker doorbell, gateway doorbell), which it returns
// (the caller owns them), after checking the welcome with Welcome.Validate. If the
// gateway answered with an error frame, that *Error is returned as the error. On any
// error every received descriptor is closed.
func RecvWelcome(conn *net.UnixConn) (Welcome, []int, error) {
	b, fds, err := recvFrame(conn)
	fail := func(err error) (Welcome, []int, error) {
		closeFDs(fds)
		return Welcome{}, nil, err
	}
	if err != nil {
		return fail(err)
	}
	m, err := DecodeMessage(b)
	if err != nil {
		return fail(err)
	}
	switch m := m.(type) {
	case *Error:
		return fail(m)
	case Welcome:
		if len(fds) != WelcomeFDs {
			return fail(fmt.Errorf("%w: got %d", ErrFDCount, len(fds)))
		}
		if err := m.Validate(); err != nil {
			return fail(err)
		}
		return m, fds, nil
	default:
		return fail(fmt.Errorf("%w: %s where welcome was expected", ErrUnexpectedMessage, m.Type()))
	}
}

// CheckToken reports whether a hello's token is acceptable: always when want is
// empty (no token configured), else when got equals want. The comparison takes time
// independent of the contents and lengths of both.
func CheckToken(got, want string) bool {
	if want == "" {
		return true
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// RecvHello reads and checks a worker's hello, as the gateway: a hello (else code
// protocol), version 1 (version), the token when token is not empty (auth), then the
// pid, app name and manifest (manifest for a bad route). On failure it sends the
// matching error frame, closes conn and returns the error. A worker that sends an
// error frame instead of hello (it failed to start) gets nothing back: conn is closed
// and that *Error returned. Checking the manifest
// against the live route table (code conflict) is the caller's job; use Refuse.
func RecvHello(conn *net.UnixConn, token string) (Hello, error) {
	m, err := RecvMessage(conn)
	if err != nil {
		if errors.Is(err, io.EOF) {
			conn.Close()
			return Hello{}, err
		}
		return Hello{}, Refuse(conn, err)
	}
	if e, ok := m.(*Error); ok {
		// The worker could not start (its startup hook raised, say) and says why
		// instead of hello; it closes the socket after it.
		conn.Close()
		return Hello{}, e
	}
	h, ok := m.(Hello)
	if !ok {
		return Hello{}, Refuse(conn, fmt.Errorf("%w: %s where hello was expected", ErrUnexpectedMessage, m.Type()))
	}
	if h.Version != Version {
		return Hello{}, Refuse(conn, fmt.Errorf("%w: hello version %d", ErrVersion, h.Version))
	}
	if !CheckToken(h.Token, token) {
		return Hello{}, Refuse(conn, fmt.Errorf("%w: token refused", ErrAuth))
	}
	if err := h.Validate(); err != nil {
		return Hello{}, Refuse(conn, err)
	}
	return h, nil
}

// refuseTimeout bounds how long Refuse waits to write its error frame to a peer that
// does not read.
const refuseTimeout = time.Second

// Refuse sends err to the peer as an error frame (code ErrorCode(err), message
// err's text), closes conn, and returns err.
func Refuse(conn *net.UnixConn, err error) error {
	conn.SetWriteDeadline(time.Now().Add(refuseTimeout))
	msg := err.Error()
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	WriteMessage(conn, &Error{Code: ErrorCode(err), Message: toValidUTF8(msg)})
	conn.Close()
	return err
}
