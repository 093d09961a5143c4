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
	// SendFile writes n bytes of f from offset off (f's own offset is
	// neither used nor moved), all of them unless it fails, under the
	// write deadline, and returns how many it wrote. A file shorter than
	// off+n fails it with io.ErrUnexpectedEOF.
	SendFile(f *os.File, off, n int64) (int64, error)
}

// sendMax is the most one sendfile call is asked to move; the kernel moves
// at most what the socket buffer takes anyway.
const sendMax = 4 << 20

// errShortFile: the file ended before the bytes asked for (it shrank).
var errShortFile = io.ErrUnexpectedEOF

func (r *sockConn) SendFile(f *os.File, off, n int64) (int64, error) {
	src, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var done int64
	var serr error
	ferr := src.Control(func(ffd uintptr) {
		var e error
		werr := r.rc.Write(func(fd uintptr) bool {
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
		return done, ferr
	}
	if serr != nil {
		if _, ok := serr.(*net.OpError); !ok {
			serr = &net.OpError{Op: "sendfile", Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: serr}
		}
	}
	return done, serr
}

func (c *uconn) SendFile(f *os.File, off, n int64) (int64, error) {
	src, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var done int64
	var serr error
	ferr := src.Control(func(ffd uintptr) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for done < n {
			if c.closed {
				serr = c.opError("sendfile", net.ErrClosed)
				return
			}
			if !c.wdl.IsZero() && !time.Now().Before(c.wdl) {
				serr = c.opError("sendfile", os.ErrDeadlineExceeded)
				return
			}
			o := off + done
			k, e := unix.Sendfile(c.fd, int(ffd), &o, int(min(n-done, sendMax)))
			if k > 0 {
				done += int64(k)
				continue
			}
			switch e {
			case nil:
				serr = c.opError("sendfile", errShortFile)
				return
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
		return done, ferr
	}
	return done, serr
}

var (
	_ FileSender = (*sockConn)(nil)
	_ FileSender = (*uconn)(nil)
)
