package shmring

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestZeroAllocs: writing and polling a small frame allocates nothing, on both
// producer kinds and through the Writer, including the doorbell check.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	s := newTestSegment(t, Geometry{4096, 4096})
	bell := newTestDoorbell(t)
	payload := make([]byte, 64)
	sink := 0
	fn := func(f Frame) error { sink += len(f.Payload); return nil }

	mp := NewMPSCProducer(s.RequestRing(), bell)
	mc, err := NewConsumer(s.RequestRing(), bell)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := NewSPSCProducer(s.ResponseRing(), bell)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := NewConsumer(s.ResponseRing(), bell)
	if err != nil {
		t.Fatal(err)
	}
	w := &Writer{Producer: mp, Space: &Signal{}}
	ctx := context.Background()
	for name, f := range map[string]func(){
		"mpsc": func() {
			if mp.TryWrite(16, 1, 3, payload) != nil {
				t.Fatal("TryWrite")
			}
			if n, err := mc.Poll(fn); n != 1 || err != nil {
				t.Fatal("Poll")
			}
		},
		"spsc": func() {
			if sp.TryWrite(33, 1, 3, payload) != nil {
				t.Fatal("TryWrite")
			}
			if n, err := sc.Poll(fn); n != 1 || err != nil {
				t.Fatal("Poll")
			}
		},
		"writer": func() {
			if w.WriteMessage(ctx, 16, 1, 0, payload) != nil {
				t.Fatal("WriteMessage")
			}
			if n, err := mc.Poll(fn); n != 1 || err != nil {
				t.Fatal("Poll")
			}
		},
		"empty poll": func() {
			if n, err := mc.Poll(fn); n != 0 || err != nil {
				t.Fatal("Poll")
			}
		},
	} {
		if a := testing.AllocsPerRun(1000, f); a != 0 {
			t.Errorf("%s: %v allocations per write+poll", name, a)
		}
	}
}

func benchSizes() []int { return []int{0, 64, 1024} }

// BenchmarkWritePoll: one goroutine writes a frame and polls it back.
func BenchmarkWritePoll(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(sizeName(n), func(b *testing.B) {
			s := newTestSegment(b, Geometry{1 << 20, 1 << 20})
			p := NewMPSCProducer(s.RequestRing(), nil)
			c, _ := NewConsumer(s.RequestRing(), nil)
			payload := make([]byte, n)
			fn := func(Frame) error { return nil }
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				p.TryWrite(16, 1, 3, payload)
				c.Poll(fn)
			}
		})
	}
}

// BenchmarkParallelProducers: GOMAXPROCS producer goroutines (b.RunParallel) write
// messages through a Writer into a 1 MiB request ring; one consumer goroutine polls
// and waits with the real doorbells. ns/op is per message.
func BenchmarkParallelProducers(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(sizeName(n), func(b *testing.B) {
			s := newTestSegment(b, Geometry{1 << 20, 4096})
			r := s.RequestRing()
			workerBell, gatewayBell := newTestDoorbell(b), newTestDoorbell(b)
			var space Signal
			p := NewMPSCProducer(r, workerBell)
			c, _ := NewConsumer(r, gatewayBell)
			w := &Writer{Producer: p, Space: &space}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() {
				for gatewayBell.Wait(ctx, 10*time.Millisecond, nil) == nil {
					space.Broadcast()
				}
			})
			wg.Go(func() {
				fn := func(Frame) error { return nil }
				for ctx.Err() == nil {
					if k, _ := c.Poll(fn); k == 0 {
						c.Wait(ctx, workerBell, 10*time.Millisecond)
					}
				}
			})
			payload := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := w.WriteMessage(ctx, 16, 1, 0, payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			cancel()
			wg.Wait()
		})
	}
}

func sizeName(n int) string {
	switch n {
	case 0:
		return "empty"
	case 64:
		return "64B"
	default:
		return "1KiB"
	}
}
