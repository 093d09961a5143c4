package engine

import (
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// FileSender is implemented by the Conns whose bytes go straight to a TCP
// socket (netpoll's and uring's): SendFile moves a file's bytes with
// sendfile(2), without copying them through user space. A Conn under TLS
// is not one (the bytes must be encrypted): the front end copies instead.
type FileSender interface {
	// SendFile writes head (a response head; may be empty) and then n bytes
	// of f from offset off (f's own offset is neither used nor moved), all
	// of them unless it fails, under the write deadline, and returns how
	// many bytes it wrote, head's first. head goes with MSG_MORE, so that
	// it leaves in one segment with the file's first bytes instead of
	// alone. A file shorter than off+n fails it with io.ErrUnexpectedEOF.
	SendFile(head []byte, f *os.File, off, n int64) (int64, error)
}

// sendMax is the most one sendfile call is asked to move; the kernel moves
// at most what the socket buffer takes anyway.
const sendMax = 4 << 20

// errShortFile: the file ended before the bytes asked for (it shrank).
var errShortFile = io.ErrUnexpectedEOF

func (r *sockConn) SendFile(head []byte, f *os.File, off, n int64) (int64, error) {
	src, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var done, hdone int64 // bytes of the file and of head written
	var serr error
	ferr := src.Control(func(ffd uintptr) {
		var e error
		werr := r.rc.Write(func(fd uintptr) bool {
			for hdone < int64(len(head)) {
				k, err := unix.SendmsgN(int(fd), head[hdone:], nil, nil, unix.MSG_MORE)
				if k > 0 {
					hdone += int64(k)
				}
				switch {
				case err == unix.EINTR:
				case err == unix.EAGAIN:
					return false
				case err != nil:
					e = os.NewSyscallError("sendmsg", err)
					return true
				}
			}
			for done < n {
				o := off + done
				k, err := unix.Sendfile(int(fd), int(ffd), &o, int(min(n-done, sendMax)))
				if k > 0 {
					done += int64(k)
				}
				switch {
				case err == unix.EINTR:
					continue
				case err == unix.EAGAIN:
					return false
				case err != nil:
					e = os.NewSyscallError("sendfile", err)
					return true
				case k == 0:
					e = errShortFile
					return true
				}
			}
			return true
		})
		if werr != nil {
			serr = werr
		} else {
			serr = e
		}
	})
	if ferr != nil {
		return hdone + done, ferr
	}
	if serr != nil {
		if _, ok := serr.(*net.OpError); !ok {
			serr = &net.OpError{Op: "sendfile", Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: serr}
		}
	}
	return hdone + done, serr
}

func (c *uconn) SendFile(head []byte, f *os.File, off, n int64) (int64, error) {
	src, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var done, hdone int64 // bytes of the file and of head written
	var serr error
	ferr := src.Control(func(ffd uintptr) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for hdone < int64(len(head)) || done < n {
			if c.closed {
				serr = c.opError("sendfile", net.ErrClosed)
				return
			}
			if !c.wdl.IsZero() && !time.Now().Before(c.wdl) {
				serr = c.opError("sendfile", os.ErrDeadlineExceeded)
				return
			}
			var e error
			if hdone < int64(len(head)) {
				var k int
				k, e = unix.SendmsgN(c.fd, head[hdone:], nil, nil, unix.MSG_MORE)
				if k > 0 {
					hdone += int64(k)
					continue
				}
				if e == nil {
					continue
				}
			} else {
				o := off + done
				var k int
				k, e = unix.Sendfile(c.fd, int(ffd), &o, int(min(n-done, sendMax)))
				if k > 0 {
					done += int64(k)
					continue
				}
				if e == nil {
					serr = c.opError("sendfile", errShortFile)
					return
				}
			}
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
			default:
				serr = c.opError("sendfile", os.NewSyscallError("sendfile", e))
				return
			}
			if !c.pollArmed {
				if !c.ring.post(op{kind: opPollOut, c: c}) {
					serr = c.opError("sendfile", net.ErrClosed)
					return
				}
				c.pollArmed = true
			}
			c.wait(c.wwake)
		}
	})
	if ferr != nil {
		return hdone + done, ferr
	}
	return hdone + done, serr
}

var (
	_ FileSender = (*sockConn)(nil)
	_ FileSender = (*uconn)(nil)
)
