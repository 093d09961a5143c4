package workerproto

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ListenConfig configures the gateway's control socket for external workers. The
// zero value works: mode 0660, only the gateway's own uid, no token.
type ListenConfig struct {
	// Mode is the socket file's permission bits. Default 0660.
	Mode os.FileMode
	// AllowedUIDs lists uids, besides the gateway's own, that may connect. Default:
	// none.
	AllowedUIDs []uint32
	// Token, when not empty, must be carried by every hello (RecvHello compares it in
	// constant time). Default: none required.
	Token string
}

// PeerCred is a connected peer's identity as the kernel reports it (SO_PEERCRED).
type PeerCred struct {
	PID int32
	UID uint32
	GID uint32
}

// Listener accepts external workers on a Unix socket path (PROTOCOL.md 1.1).
type Listener struct {
	ln   *net.UnixListener
	path string
	cfg  ListenConfig
	uid  uint32

	closeOnce sync.Once
	closeErr  error
}

// Listen creates the control socket at path with cfg.Mode. A stale socket file at
// path (one nobody accepts on) is removed first; a live one, or a file that is not a
// socket, is an error. The socket is created under a temporary name, given its mode
// and then renamed into place, so it is never reachable with wider permissions.
// Close removes the file.
func Listen(path string, cfg ListenConfig) (*Listener, error) {
	if cfg.Mode == 0 {
		cfg.Mode = 0o660
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("workerproto: listen: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*Listener, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("workerproto: listen: %w", err)
	}
	if err := os.Chmod(tmp, cfg.Mode.Perm()); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return &Listener{ln: ln, path: path, cfg: cfg, uid: uint32(os.Getuid())}, nil
}

// removeStale removes a socket file at path that no process accepts on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("workerproto: listen: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("workerproto: listen: %s exists and is not a socket", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("workerproto: listen: %s is in use by another process", path)
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		return fmt.Errorf("workerproto: listen: probing %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("workerproto: listen: removing stale socket: %w", err)
	}
	return nil
}

// Accept waits for a worker and returns its connection and credentials. A peer whose
// uid is neither the gateway's nor in AllowedUIDs is sent an error frame (code auth)
// and closed, and Accept returns an error wrapping ErrAuth together with the refused
// peer's credentials; the Listener stays usable, so an accept loop should log such
// errors and continue.
func (l *Listener) Accept() (*net.UnixConn, PeerCred, error) {
	conn, err := l.ln.AcceptUnix()
	if err != nil {
		return nil, PeerCred{}, err
	}
	cred, err := PeerCredentials(conn)
	if err != nil {
		conn.Close()
		return nil, PeerCred{}, err
	}
	if cred.UID != l.uid && !slices.Contains(l.cfg.AllowedUIDs, cred.UID) {
		err := fmt.Errorf("%w: peer uid %d (pid %d) is not allowed", ErrAuth, cred.UID, cred.PID)
		return nil, cred, Refuse(conn, err)
	}
	return conn, cred, nil
}

// RecvHello reads and checks a hello on a connection accepted by l, with l's token;
// see the package-level RecvHello.
func (l *Listener) RecvHello(conn *net.UnixConn) (Hello, error) {
	return RecvHello(conn, l.cfg.Token)
}

// Addr returns the socket file's address.
func (l *Listener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Path returns the socket file's path.
func (l *Listener) Path() string { return l.path }

// Close stops accepting and removes the socket file.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.closeErr = l.ln.Close()
		if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) && l.closeErr == nil {
			l.closeErr = err
		}
	})
	return l.closeErr
}

// PeerCredentials returns the credentials of conn's peer (SO_PEERCRED). For an
// accepted connection they are the connecting process's. For a socketpair the kernel
// records the process that created the pair (the gateway itself), so they say nothing
// about a spawned worker: use exec.Cmd's pid for that.
func PeerCredentials(conn *net.UnixConn) (PeerCred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return PeerCred{}, fmt.Errorf("workerproto: peer credentials: %w", err)
	}
	var uc *unix.Ucred
	var uerr error
	if err := raw.Control(func(fd uintptr) {
		uc, uerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return PeerCred{}, fmt.Errorf("workerproto: peer credentials: %w", err)
	}
	if uerr != nil {
		return PeerCred{}, fmt.Errorf("workerproto: peer credentials: %w", uerr)
	}
	return PeerCred{PID: uc.Pid, UID: uc.Uid, GID: uc.Gid}, nil
}

func toValidUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
