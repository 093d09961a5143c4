package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// redisServer is a real redis-server the test started on a free loopback port,
// without persistence; stopped when the test ends.
type redisServer struct {
	t    *testing.T
	bin  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// redisBin is the redis-server to run: $COVET_REDIS_SERVER (make test-go sets it,
// and then a missing server fails the test), else the one on PATH; without one the
// test skips, saying so.
func redisBin(t *testing.T) string {
	if p := os.Getenv("COVET_REDIS_SERVER"); p != "" {
		bin, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("COVET_REDIS_SERVER=%s: %v", p, err)
		}
		return bin
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (Debian package redis-server; make test-go installs it)")
	}
	return bin
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	r := &redisServer{t: t, bin: redisBin(t)}
	for try := 0; ; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if err := r.start(); err == nil {
			break
		} else if try == 2 {
			t.Fatal(err)
		}
	}
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// start runs the server on r.port and waits until it answers PING.
func (r *redisServer) start() error {
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited: %s", r.port, out.String())
		default:
		}
		if c.Ping(context.Background()).Err() == nil {
			r.cmd, r.done = cmd, done
			return nil
		}
	}
	cmd.Process.Kill()
	<-done
	return fmt.Errorf("redis-server on port %d did not answer PING in 10s: %s", r.port, out.String())
}

// stop kills the server (SIGKILL: as a crash would) and waits for it.
func (r *redisServer) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.cmd = nil
}

func (r *redisServer) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// newLimiter is New for a test; a zero RedisTimeout is 2 s there, not 50 ms: the
// tests check what is decided, on a machine that may be busy, not Redis' latency.
func newLimiter(t *testing.T, cfg Config, m *metrics.Metrics) *Limiter {
	t.Helper()
	if cfg.RedisTimeout == 0 {
		cfg.RedisTimeout = 2 * time.Second
	}
	l, err := New(cfg, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestRedisBurstThenRefused(t *testing.T) {
	r := startRedis(t)
	l := newLimiter(t, Config{Redis: r.url()}, nil)
	if !l.Shared() {
		t.Fatal("a Limiter with rate_limit_redis is not shared")
	}
	ctx := context.Background()
	lim := Limit{5, time.Minute}
	for i := range 5 {
		d, err := l.Allow(ctx, "app|POST /login|192.0.2.1", lim)
		if err != nil || !d.Allowed || d.Unknown || d.Remaining != int64(4-i) {
			t.Fatalf("request %d: %+v, %v", i+1, d, err)
		}
		// Redis' clock moves between calls: reset is (i+1)*12s less what has passed.
		if want := time.Duration(i+1) * 12 * time.Second; d.Reset > want || d.Reset < want-time.Second {
			t.Fatalf("request %d: reset %v, want about %v", i+1, d.Reset, want)
		}
	}
	d, err := l.Allow(ctx, "app|POST /login|192.0.2.1", lim)
	if err != nil || d.Allowed || d.RetryAfter > 12*time.Second || d.RetryAfter < 11*time.Second {
		t.Fatalf("sixth: %+v, %v; want refused, retry after about 12s", d, err)
	}
	if d, _ := l.Allow(ctx, "app|POST /login|192.0.2.2", lim); !d.Allowed || d.Remaining != 4 {
		t.Fatalf("another client: %+v", d)
	}
	// The key is prefixed and expires when the limit is restored (60 s).
	c := r.client()
	ttl, err := c.PTTL(ctx, KeyPrefix+"app|POST /login|192.0.2.1").Result()
	if err != nil || ttl <= 59*time.Second || ttl > time.Minute {
		t.Fatalf("PTTL of the key: %v, %v; want just under 60s", ttl, err)
	}
	keys, _ := c.Keys(ctx, "*").Result()
	for _, k := range keys {
		if !strings.HasPrefix(k, KeyPrefix) {
			t.Errorf("key %q without the prefix %q", k, KeyPrefix)
		}
	}
	// A long key is held as its digest, prefixed.
	long := strings.Repeat("x", 5000)
	if d, _ := l.Allow(ctx, long, lim); !d.Allowed {
		t.Fatal("long key refused")
	}
	if n, _ := c.Exists(ctx, KeyPrefix+long).Result(); n != 0 {
		t.Fatal("a 5000-byte key stored as is")
	}
}

// TestRedisScriptFlushed: EVALSHA falls back to EVAL when Redis lost the script.
func TestRedisScriptFlushed(t *testing.T) {
	r := startRedis(t)
	l := newLimiter(t, Config{Redis: r.url()}, nil)
	ctx := context.Background()
	lim := Limit{2, time.Hour}
	if d, err := l.Allow(ctx, "k", lim); err != nil || !d.Allowed {
		t.Fatalf("first: %+v, %v", d, err)
	}
	if err := r.client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if d, err := l.Allow(ctx, "k", lim); err != nil || !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after SCRIPT FLUSH: %+v, %v", d, err)
	}
	if d, err := l.Allow(ctx, "k", lim); err != nil || d.Allowed {
		t.Fatalf("third: %+v, %v", d, err)
	}
}

// hammer sends requests for key through each limiter from 2 goroutines apiece,
// as fast as they go, for d, and returns how many each limiter had admitted.
func hammer(t *testing.T, ls []*Limiter, key string, lim Limit, d time.Duration) []int64 {
	admitted := make([]atomic.Int64, len(ls))
	var errs atomic.Int64
	var firstErr atomic.Value
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for i, l := range ls {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					d, err := l.Allow(context.Background(), key, lim)
					if err != nil || d.Unknown {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprint(err))
					}
					if d.Allowed {
						admitted[i].Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	if errs.Load() > 0 {
		t.Fatalf("%d decisions Redis did not make; the first: %v", errs.Load(), firstErr.Load())
	}
	out := make([]int64, len(ls))
	for i := range admitted {
		out[i] = admitted[i].Load()
	}
	return out
}

// drain uses up key's burst, so that what follows is admitted at the steady rate.
func drain(t *testing.T, l *Limiter, key string, lim Limit) {
	for range 10 * lim.N {
		if d, err := l.Allow(context.Background(), key, lim); err != nil || !d.Allowed {
			return
		}
	}
	t.Fatal("burst never ran out")
}

// TestRedisAccuracy: a 100/s limit admits 100 per second ± 5% through one Redis,
// from one Limiter and from two (two gateways). After the burst is used up, clients
// sending as fast as they can for W seconds get 100*W ± 5%. Pauses of the test
// process (a loaded machine) do not lose admissions: GCRA lets up to a burst (1 s
// here) of missed slots be made up, so the bound holds unless the process stalls
// for a whole second at the very end.
func TestRedisAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 6 seconds of load")
	}
	r := startRedis(t)
	lim := Limit{100, time.Second}
	// A generous timeout: this measures accuracy, on a machine that may be busy
	// (the race detector, other processes), not Redis' latency.
	cfg := Config{Redis: r.url(), RedisTimeout: 2 * time.Second}
	const W = 3
	lo, hi := int64(100*W*95/100), int64(100*W*105/100)
	t.Run("one gateway", func(t *testing.T) {
		l := newLimiter(t, cfg, nil)
		drain(t, l, "one", lim)
		got := hammer(t, []*Limiter{l}, "one", lim, W*time.Second)
		t.Logf("100/s over %d s: admitted %d (bounds %d..%d)", W, got[0], lo, hi)
		if got[0] < lo || got[0] > hi {
			t.Errorf("admitted %d in %d s, want %d..%d", got[0], W, lo, hi)
		}
	})
	t.Run("two gateways", func(t *testing.T) {
		a := newLimiter(t, cfg, nil)
		b := newLimiter(t, cfg, nil)
		drain(t, a, "two", lim)
		got := hammer(t, []*Limiter{a, b}, "two", lim, W*time.Second)
		sum := got[0] + got[1]
		t.Logf("100/s over %d s from two limiters: admitted %d + %d = %d (bounds %d..%d)", W, got[0], got[1], sum, lo, hi)
		if sum < lo || sum > hi {
			t.Errorf("admitted %d in %d s together, want %d..%d", sum, W, lo, hi)
		}
		if got[0] == 0 || got[1] == 0 {
			t.Errorf("one limiter admitted nothing: %v", got)
		}
	})
}

// storeErrors is the count of covet_rate_limit_store_errors_total{mode}.
func storeErrors(t *testing.T, reg *prometheus.Registry, mode string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "covet_rate_limit_store_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "mode" && lp.GetValue() == mode {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRedisDown: the server is killed mid-test. With open, requests are admitted
// (Unknown) and counted; with closed, refused with ErrStoreUnavailable. Either way
// the breaker keeps the limiter from asking the dead server for each request, and
// decisions come back once the server does.
func TestRedisDown(t *testing.T) {
	for _, mode := range []string{"open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			r := startRedis(t)
			reg := prometheus.NewRegistry()
			m, err := metrics.New(reg)
			if err != nil {
				t.Fatal(err)
			}
			l := newLimiter(t, Config{Redis: r.url(), RedisFailure: mode}, m)
			ctx := context.Background()
			lim := Limit{1, time.Hour}
			if d, err := l.Allow(ctx, "k", lim); err != nil || !d.Allowed || d.Unknown {
				t.Fatalf("before: %+v, %v", d, err)
			}
			r.stop()
			const calls = 200
			for i := range calls {
				d, err := l.Allow(ctx, "k", lim)
				if !d.Unknown || d.Limit != lim {
					t.Fatalf("call %d with Redis down: %+v", i, d)
				}
				switch mode {
				case "open":
					if err != nil || !d.Allowed {
						t.Fatalf("open, call %d: %+v, %v; want admitted", i, d, err)
					}
				case "closed":
					if !errors.Is(err, ErrStoreUnavailable) || d.Allowed || d.RetryAfter < time.Second {
						t.Fatalf("closed, call %d: %+v, %v; want refused with ErrStoreUnavailable", i, d, err)
					}
				}
			}
			if got := storeErrors(t, reg, mode); got != calls {
				t.Errorf("rate_limit_store_errors_total{mode=%q} = %v, want %d", mode, got, calls)
			}
			// The breaker: a few tries reach the network, not 200.
			if n := l.store.attempts.Load(); n > 1+breakerAfter+5 {
				t.Errorf("%d of %d decisions asked the dead Redis", n-1, calls)
			}
			hs := (&Decision{Limit: lim, Unknown: true, Allowed: mode == "open", RetryAfter: time.Second}).AppendHeaders(nil)
			if len(hs) == 0 || string(hs[0].Name) != "ratelimit-policy" {
				t.Errorf("headers of an unknown decision: %q", hs)
			}
			// Back up (same port, empty): decisions come back within the breaker's
			// longest pause.
			if err := r.start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(breakerMax + 5*time.Second)
			for {
				d, err := l.Allow(ctx, "k2", lim)
				if err == nil && !d.Unknown {
					if !d.Allowed {
						t.Fatalf("after restart: %+v", d)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no decision from the restarted Redis: %+v, %v", d, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestRedisHung: a server that accepts and never answers costs a decision
// rate_limit_redis_timeout only until the breaker opens.
func TestRedisHung(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		conns.Wait()
		for _, c := range held {
			c.Close()
		}
	}()
	l := newLimiter(t, Config{Redis: "redis://" + ln.Addr().String() + "/0", RedisTimeout: 20 * time.Millisecond, RedisFailure: "closed"}, nil)
	l.store.attempts.Store(0) // New's PING is not counted anyway; start from zero
	for i := range 100 {
		d, err := l.Allow(context.Background(), "k", Limit{10, time.Second})
		if !errors.Is(err, ErrStoreUnavailable) || d.Allowed {
			t.Fatalf("call %d: %+v, %v", i, d, err)
		}
	}
	if n := l.store.attempts.Load(); n > breakerAfter+5 {
		t.Errorf("%d of 100 decisions waited for the hung server", n)
	}
}

// TestRedisCallerGone: a request whose context ends does not count against Redis.
func TestRedisCallerGone(t *testing.T) {
	r := startRedis(t)
	l := newLimiter(t, Config{Redis: r.url()}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 10 {
		l.Allow(ctx, "k", Limit{1, time.Second})
	}
	if f := l.store.failures.Load(); f != 0 {
		t.Fatalf("cancelled requests counted as %d Redis failures", f)
	}
}

func BenchmarkRedisAllow(b *testing.B) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		b.Skip("redis-server is not installed")
	}
	r := &redisServer{bin: bin}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	r.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if err := r.start(); err != nil {
		b.Fatal(err)
	}
	defer r.stop()
	l, err := New(Config{Redis: r.url()}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	lim := Limit{1_000_000, time.Second}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Allow(context.Background(), "app|GET /items/{id}|203.0.113.9", lim); err != nil {
			b.Fatal(err)
		}
	}
}
