package main

import (
	"context"

	"github.com/covetpy/covetpy/integration/harness"
	"github.com/covetpy/covetpy/shmring"
	"github.com/covetpy/covetpy/workerproto"
)

// shmEchoer is the product's transport: the request ring (many producers), the
// response ring read by one goroutine, the wakeup discipline of PROTOCOL.md 2.5.
type shmEchoer struct {
	w *harness.EchoWorker
}

func startShm(p *pending) (echoer, error) {
	onFrame := func(f shmring.Frame) error {
		if f.Flags&shmring.FlagEnd != 0 {
			p.deliver(f.ID)
		}
		return nil
	}
	w, err := harness.StartEchoWorker(shmring.Geometry{}, "msgpack", onFrame)
	if err != nil {
		return nil, err
	}
	return &shmEchoer{w: w}, nil
}

func (e *shmEchoer) send(id uint64, payload []byte) error {
	return e.w.Send(context.Background(), workerproto.FrameReqHead, id, payload)
}

func (e *shmEchoer) close() error { return e.w.Close() }

func (e *shmEchoer) pid() int { return e.w.Cmd.Process.Pid }
