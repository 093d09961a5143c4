package shmring

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingWaiter counts waits that ended by timeout. With the real wakeup path and
// long timeouts, any such wait is a lost wakeup.
type countingWaiter struct {
	w        Waiter
	timeouts atomic.Int64
}

func (c *countingWaiter) Wait(ctx context.Context, timeout time.Duration, recheck func() bool) error {
	start := time.Now()
	err := c.w.Wait(ctx, timeout, recheck)
	if err == nil && time.Since(start) >= timeout*9/10 {
		c.timeouts.Add(1)
	}
	return err
}

func sizeFor(id uint64, max int) int {
	x := id*0x9e3779b97f4a7c15 ^ id>>7
	switch x % 8 {
	case 0:
		return 0
	case 1:
		return int(x>>8) % (3 * max) // multi-fragment
	default:
		return int(x>>8) % (max / 2)
	}
}

type ringKind struct {
	name string
	mk   func(t *testing.T, capacity uint64) *Ring
}

var ringKinds = []ringKind{
	// Heap memory: the race detector sees the ring's own synchronisation.
	{"heap", func(t *testing.T, c uint64) *Ring { return newHeapRing(t, c) }},
	// A real memfd segment, as in production.
	{"segment", func(t *testing.T, c uint64) *Ring {
		return newTestSegment(t, Geometry{ReqCapacity: c, RespCapacity: MinCapacity}).RequestRing()
	}},
}

// TestConcurrentMPSC: N producer goroutines x M messages of random sizes (some
// multi-fragment) through a small request ring to one consumer goroutine, with the
// real doorbell wakeups in both directions. Every message must arrive exactly once,
// intact, and in order per producer, and no wait may end by timeout.
func TestConcurrentMPSC(t *testing.T) {
	producers, msgs := 8, 5000
	if testing.Short() || raceEnabled {
		producers, msgs = 6, 300
	}
	for _, rk := range ringKinds {
		for _, capacity := range []uint64{4096, 65536} {
			t.Run(fmt.Sprintf("%s/%d", rk.name, capacity), func(t *testing.T) {
				t.Parallel()
				runMPSC(t, rk.mk(t, capacity), producers, msgs)
			})
		}
	}
}

func runMPSC(t *testing.T, r *Ring, nProd, nMsg int) {
	const timeout = 5 * time.Second // only a lost wakeup waits this long
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	workerBell, gatewayBell := newTestDoorbell(t), newTestDoorbell(t)
	consWait := &countingWaiter{w: workerBell}
	var space Signal
	prodWait := &countingWaiter{w: &space}

	p := NewMPSCProducer(r, workerBell)
	c, err := NewConsumer(r, gatewayBell)
	if err != nil {
		t.Fatal(err)
	}
	max := p.MaxPayload()
	w := &Writer{Producer: p, Space: prodWait, Timeout: timeout}

	// The gateway's doorbell goroutine: fans "space freed" out to producers.
	var dispatcher sync.WaitGroup
	dctx, dcancel := context.WithCancel(ctx)
	dispatcher.Go(func() {
		for gatewayBell.Wait(dctx, 50*time.Millisecond, nil) == nil {
			space.Broadcast()
		}
	})

	var wg sync.WaitGroup
	errs := make(chan error, nProd+1)
	for g := range nProd {
		wg.Go(func() {
			for m := range nMsg {
				id := uint64(g)<<32 | uint64(m)
				typ := int32(16 + m%2) // two message types per id
				if err := w.WriteMessage(ctx, typ, id, 0, pattern(id, sizeFor(id, max))); err != nil {
					errs <- fmt.Errorf("producer %d message %d: %w", g, m, err)
					return
				}
			}
		})
	}

	next := make([]int, nProd)
	a := &Assembler{MaxMessage: 3 * max}
	got := 0
	for got < nProd*nMsg {
		n, err := c.Poll(func(f Frame) error {
			msg, done, err := a.Add(f)
			if err != nil || !done {
				return err
			}
			g, m := int(f.ID>>32), int(uint32(f.ID))
			if g >= nProd || m != next[g] || f.Type != int32(16+m%2) {
				return fmt.Errorf("got id %#x type %d, want message %d of producer %d", f.ID, f.Type, next[g%nProd], g)
			}
			if !bytes.Equal(msg, pattern(f.ID, sizeFor(f.ID, max))) {
				return fmt.Errorf("id %#x: payload damaged", f.ID)
			}
			next[g]++
			got++
			return nil
		})
		if err != nil {
			t.Fatalf("consumer after %d messages: %v", got, err)
		}
		if n == 0 {
			if err := c.Wait(ctx, consWait, timeout); err != nil {
				t.Fatalf("consumer wait after %d messages: %v", got, err)
			}
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	}
	wg.Wait()
	dcancel()
	dispatcher.Wait()
	if n, _ := c.Poll(func(Frame) error { return nil }); n != 0 || a.Open() != 0 {
		t.Fatalf("%d extra frames, %d open messages", n, a.Open())
	}
	if ct, pt := consWait.timeouts.Load(), prodWait.timeouts.Load(); ct != 0 || pt != 0 {
		t.Fatalf("lost wakeups: consumer %d, producers %d", ct, pt)
	}
}

// TestConcurrentSPSC: one worker-side producer and one gateway-side consumer on the
// response ring, each waiting on its own doorbell directly.
func TestConcurrentSPSC(t *testing.T) {
	msgs := 20000
	if testing.Short() || raceEnabled {
		msgs = 2000
	}
	for _, rk := range ringKinds {
		t.Run(rk.name, func(t *testing.T) {
			t.Parallel()
			const timeout = 5 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r := rk.mk(t, 4096)
			workerBell, gatewayBell := newTestDoorbell(t), newTestDoorbell(t)
			consWait := &countingWaiter{w: gatewayBell}
			prodWait := &countingWaiter{w: workerBell}
			p, err := NewSPSCProducer(r, gatewayBell)
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewConsumer(r, workerBell)
			if err != nil {
				t.Fatal(err)
			}
			max := p.MaxPayload()
			w := &Writer{Producer: p, Space: prodWait, Timeout: timeout}
			errc := make(chan error, 1)
			go func() {
				for m := range msgs {
					s := w.Stream(33, uint64(m), 0)
					body := pattern(uint64(m), sizeFor(uint64(m), max))
					half := len(body) / 2
					if err := s.Write(ctx, body[:half]); err != nil {
						errc <- err
						return
					}
					if err := s.End(ctx, body[half:], 0); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			a := &Assembler{MaxMessage: 3 * max}
			for got := 0; got < msgs; {
				n, err := c.Poll(func(f Frame) error {
					msg, done, err := a.Add(f)
					if err != nil || !done {
						return err
					}
					if f.ID != uint64(got) || !bytes.Equal(msg, pattern(f.ID, sizeFor(f.ID, max))) {
						return fmt.Errorf("message %d: got id %d, %d bytes", got, f.ID, len(msg))
					}
					got++
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					if err := c.Wait(ctx, consWait, timeout); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if ct, pt := consWait.timeouts.Load(), prodWait.timeouts.Load(); ct != 0 || pt != 0 {
				t.Fatalf("lost wakeups: consumer %d, producer %d", ct, pt)
			}
		})
	}
}

// TestBackPressure: a writer blocked on a full ring sleeps (no busy loop past the
// flag protocol) and is woken by the consumer's release through the doorbell, long
// before its wait timeout.
func TestBackPressure(t *testing.T) {
	for _, kind := range []string{"mpsc+signal", "spsc+doorbell"} {
		t.Run(kind, func(t *testing.T) {
			r := newTestSegment(t, Geometry{4096, 4096}).RequestRing()
			bell := newTestDoorbell(t) // the producer side's doorbell
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var p Producer
			var space Waiter = bell
			if kind == "mpsc+signal" {
				p = NewMPSCProducer(r, nil)
				sig := &Signal{}
				space = sig
				go func() {
					for bell.Wait(ctx, time.Minute, nil) == nil {
						sig.Broadcast()
					}
				}()
			} else {
				p = mustSPSC(t, r)
			}
			c, err := NewConsumer(r, bell)
			if err != nil {
				t.Fatal(err)
			}
			w := &Writer{Producer: p, Space: space, Timeout: time.Minute}
			for i := range 8 {
				if err := w.WriteMessage(ctx, 16, uint64(i), 0, make([]byte, p.MaxPayload())); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() { done <- w.WriteMessage(ctx, 16, 99, 0, []byte("late")) }()
			select {
			case err := <-done:
				t.Fatalf("write to a full ring returned %v", err)
			case <-time.After(50 * time.Millisecond):
			}
			if getU32(r, CtlProducerWaiting) != 1 {
				t.Fatal("blocked producer did not set producer_waiting")
			}
			start := time.Now()
			if n, err := c.Poll(func(Frame) error { return errStop }); n != 1 || err != errStop {
				t.Fatalf("Poll = %d, %v", n, err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("blocked writer not woken by the release")
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("woken after %v", el)
			}
			if getU32(r, CtlProducerWaiting) != 0 {
				t.Fatal("consumer did not clear producer_waiting")
			}
			got := pollAll(t, c)
			if len(got) != 8 || got[7].ID != 99 || string(got[7].payload) != "late" {
				t.Fatalf("after wakeup: %d frames", len(got))
			}

			// Cancellation of a blocked writer.
			for p.TryWrite(16, 1, 0, nil) == nil {
			}
			cctx, ccancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer ccancel()
			if err := w.WriteMessage(cctx, 16, 1, 0, nil); err != context.DeadlineExceeded {
				t.Fatalf("cancelled blocked write: %v", err)
			}
		})
	}
}
