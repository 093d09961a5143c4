package integration

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/covetpy/covetpy/integration/harness"
	"github.com/covetpy/covetpy/shmring"
	"github.com/covetpy/covetpy/workerproto"
)

// payloadFor derives message seq of producer p deterministically, so the receiver can
// check every byte without keeping the sent data. Sizes: mostly small, some medium,
// a few several times the ring size (fragmented in both directions).
func payloadFor(p, seq uint32, ringCap int) []byte {
	r := rand.New(rand.NewPCG(uint64(p), uint64(seq)))
	var n int
	switch x := r.IntN(1000); {
	case x < 2:
		n = ringCap + r.IntN(3*ringCap) // 1x..4x the ring
	case x < 60:
		n = r.IntN(16 << 10)
	case x < 100:
		n = 0
	default:
		n = r.IntN(300)
	}
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestTransportMillionMessages: many concurrent Go producers and one Python worker
// process exchange 1,000,000 messages of random sizes through small rings; every
// echo arrives exactly once, intact, and in order per producer.
func TestTransportMillionMessages(t *testing.T) {
	total := 1_000_000
	if testing.Short() {
		total = 50_000
	}
	const producers = 8
	const ringCap = 64 << 10
	per := total / producers

	var mu sync.Mutex // guards the receiver's state (one reader goroutine; tests read it after)
	next := make([]uint32, producers)
	var asm shmring.Assembler
	asm.MaxMessage = 8 * ringCap
	var partial = map[uint64][]byte{}
	var firstErr error
	done := make(chan struct{})
	received := 0
	check := func(id uint64, got []byte) {
		p, seq := uint32(id>>32), uint32(id)
		switch {
		case p >= producers:
			firstErr = fmt.Errorf("echo with unknown producer in id %#x", id)
		case seq != next[p]:
			firstErr = fmt.Errorf("producer %d: got seq %d, want %d (lost, duplicated or reordered)", p, seq, next[p])
		case string(got) != string(payloadFor(p, seq, ringCap)):
			firstErr = fmt.Errorf("producer %d seq %d: payload of %d bytes differs from the %d sent", p, seq, len(got), len(payloadFor(p, seq, ringCap)))
		}
		next[p]++
		received++
		if firstErr != nil || received == per*producers {
			close(done)
		}
	}
	onFrame := func(f shmring.Frame) error {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil {
			return nil
		}
		if f.Type != int32(workerproto.FrameRespBody) {
			firstErr = fmt.Errorf("frame type %d, want RESP_BODY", f.Type)
			close(done)
			return nil
		}
		// Bodies stream: join fragments by id (the Assembler is for heads only).
		switch {
		case f.Flags&shmring.FlagBegin != 0 && f.Flags&shmring.FlagEnd != 0:
			check(f.ID, f.Payload)
		case f.Flags&shmring.FlagBegin != 0:
			partial[f.ID] = append([]byte(nil), f.Payload...)
		default:
			b, ok := partial[f.ID]
			if !ok {
				firstErr = fmt.Errorf("id %#x: continuation without BEGIN", f.ID)
				close(done)
				return nil
			}
			b = append(b, f.Payload...)
			if f.Flags&shmring.FlagEnd != 0 {
				delete(partial, f.ID)
				check(f.ID, b)
			} else {
				partial[f.ID] = b
			}
		}
		return nil
	}

	w, err := harness.StartEchoWorker(shmring.Geometry{ReqCapacity: ringCap, RespCapacity: ringCap}, "raw", onFrame)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p uint32) {
			defer wg.Done()
			for seq := uint32(0); seq < uint32(per); seq++ {
				if err := w.Send(ctx, workerproto.FrameReqBody, uint64(p)<<32|uint64(seq), payloadFor(p, seq, ringCap)); err != nil {
					t.Errorf("producer %d seq %d: %v", p, seq, err)
					return
				}
			}
		}(uint32(p))
	}
	wg.Wait()
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("timed out with %d of %d echoes received", received, per*producers)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	if received != per*producers || len(partial) != 0 {
		t.Fatalf("received %d of %d, %d partial", received, per*producers, len(partial))
	}
	t.Logf("%d messages echoed exactly once, intact, in order per producer, in %v", received, time.Since(start).Round(time.Millisecond))
}

// openFDs lists this process's open file descriptors.
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		m[e.Name()] = target
	}
	return m
}

func devShm(t *testing.T) []string {
	ents, err := os.ReadDir("/dev/shm")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestTransportWorkerSIGKILL: a worker SIGKILLed mid-stream is noticed within 100 ms
// (EOF on its control socket), and once it is released nothing is left behind: no
// file descriptors, no files under /dev/shm.
func TestTransportWorkerSIGKILL(t *testing.T) {
	fdsBefore := openFDs(t)
	shmBefore := devShm(t)

	var got sync.WaitGroup
	got.Add(1)
	var once sync.Once
	onFrame := func(f shmring.Frame) error { once.Do(got.Done); return nil }
	w, err := harness.StartEchoWorker(shmring.Geometry{ReqCapacity: 64 << 10, RespCapacity: 64 << 10}, "raw", onFrame)
	if err != nil {
		t.Fatal(err)
	}
	// Keep traffic flowing while the worker dies.
	ctx, cancel := context.WithCancel(context.Background())
	var senders sync.WaitGroup
	for p := 0; p < 4; p++ {
		senders.Add(1)
		go func(p uint64) {
			defer senders.Done()
			buf := make([]byte, 2000)
			for seq := uint64(0); ctx.Err() == nil; seq++ {
				if err := w.Send(ctx, workerproto.FrameReqBody, p<<32|seq, buf); err != nil {
					return
				}
			}
		}(uint64(p))
	}
	got.Wait() // the worker is answering

	eof := make(chan time.Time, 1)
	go func() {
		var b [1]byte
		w.Conn.Read(b[:]) // returns at EOF: the kernel closed the dead worker's end
		eof <- time.Now()
	}()
	killed := time.Now()
	if err := w.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-eof:
		if d := at.Sub(killed); d > 100*time.Millisecond {
			t.Errorf("worker death noticed after %v, want <= 100ms", d)
		} else {
			t.Logf("worker death noticed %v after SIGKILL", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("worker death not noticed within 5s")
	}
	cancel()
	senders.Wait()
	w.Kill() // reaps the process and releases segment, doorbells and socket

	fdsAfter := openFDs(t)
	for fd, target := range fdsAfter {
		if _, ok := fdsBefore[fd]; !ok {
			t.Errorf("leaked fd %s -> %s", fd, target)
		}
	}
	if a, b := fmt.Sprint(devShm(t)), fmt.Sprint(shmBefore); a != b {
		t.Errorf("/dev/shm changed: before %s, after %s", b, a)
	}
}
