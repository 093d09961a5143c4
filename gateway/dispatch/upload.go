package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/covetpy/covetpy/shmring"
	"github.com/covetpy/covetpy/workerproto"
)

// Streamed request bodies (PROTOCOL.md 2.8).
//
// A request whose body is a BodyStream (or a whole body over the request window)
// gets an upload: a goroutine that reads the stream and writes REQ_BODY fragments,
// never more than workerproto.RequestWindow plus the worker's REQ_WINDOW grants,
// while the Serve goroutine waits for the response as for any request. The upload
// shares nothing with the pooled call but its id: the ring reader finds it through
// call.up to add grants, and Session.do stops it, and waits for it, before it
// returns. A small body read whole (the common case) costs no upload at all.

// uploadChunk is the most body an upload reads from its stream, and sends as one
// REQ_BODY frame, at a time. A 1 MiB request ring's record holds 128 KiB.
const uploadChunk = 64 << 10

// upload is one streamed request body on its way to a worker.
type upload struct {
	s      *Session
	id     uint64
	src    BodyStream
	length int64 // the body's length (the head's), -1 when unknown

	limit atomic.Int64  // body bytes the worker has allowed: RequestWindow + grants
	wake  chan struct{} // capacity 1: limit rose
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{} // the goroutine returned
	// failed receives the stream's error once the body broke off (the ERR
	// fragment is on the ring by then, or the ring is gone); capacity 1.
	failed chan error
	read   atomic.Int64 // body bytes taken from the stream
}

var uploadBufs = sync.Pool{New: func() any { return new([uploadChunk]byte) }}

// newUpload prepares to send src as the body of exchange id, whose REQ_HEAD is on
// the ring; go run starts it.
func (s *Session) newUpload(id uint64, src BodyStream, length int64) *upload {
	u := &upload{s: s, id: id, src: src, length: length, wake: make(chan struct{}, 1), done: make(chan struct{}), failed: make(chan error, 1)}
	u.limit.Store(workerproto.RequestWindow)
	u.ctx, u.stop = context.WithCancel(s.ctx)
	return u
}

// grant raises the window by n bytes (a REQ_WINDOW from the worker).
func (u *upload) grant(n int64) {
	u.limit.Add(n)
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// finish stops the upload and waits for its goroutine: after it the stream is
// not touched again.
func (u *upload) finish() {
	u.stop()
	u.src.Stop()
	<-u.done
}

func (u *upload) run() {
	defer close(u.done)
	buf := uploadBufs.Get().(*[uploadChunk]byte)
	defer uploadBufs.Put(buf)
	st := u.s.w.Stream(int32(workerproto.FrameReqBody), u.id, 0)
	var sent int64
	for {
		for sent >= u.limit.Load() {
			select {
			case <-u.wake:
			case <-u.ctx.Done():
				return
			}
		}
		n, err := u.src.Read(buf[:min(int64(uploadChunk), u.limit.Load()-sent)])
		if u.ctx.Err() != nil {
			return // stopped: the exchange is over, and so is its body
		}
		u.read.Add(int64(n))
		sent += int64(n)
		switch {
		case err == nil && sent == u.length:
			// The last byte of a body of known length: END goes with it, not
			// after a grant that the EOF would otherwise wait for.
			u.send(&st, buf[:n], true, 0)
			return
		case err == nil:
			if n > 0 && u.send(&st, buf[:n], false, 0) != nil {
				return
			}
		case errors.Is(err, io.EOF):
			u.send(&st, buf[:n], true, 0)
			return
		default:
			// The body broke off: the ERR fragment ends it on the worker's
			// side; the bytes that came before it still count.
			u.send(&st, buf[:n], true, workerproto.FlagErr)
			u.failed <- err
			return
		}
	}
}

// send writes body bytes as fragments of the REQ_BODY stream (end: the last, with
// extra flags). A failure ends the upload: the session is ending (its teardown
// fails the call) or the exchange is over.
func (u *upload) send(st *shmring.Stream, p []byte, end bool, extra uint32) error {
	s := u.s
	s.ringMu.RLock()
	defer s.ringMu.RUnlock()
	if s.gone {
		return errRetry
	}
	var err error
	if end {
		err = st.End(u.ctx, p, extra)
	} else {
		err = st.Write(u.ctx, p)
	}
	if err != nil && u.ctx.Err() == nil && s.ctx.Err() == nil {
		s.close(fmt.Errorf("request ring: %w", err))
	}
	return err
}

// bytesStream is a whole body over the request window, sent as a stream.
type bytesStream struct{ bytes.Reader }

func (b *bytesStream) Stop() {}

func isBytesStream(src BodyStream) bool {
	_, ok := src.(*bytesStream)
	return ok
}
