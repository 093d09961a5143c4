package ratelimit

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is an injected clock's start: a wall time without a monotonic reading.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestLocalBurstThenSteady(t *testing.T) {
	l := NewLocal(0)
	lim := Limit{5, time.Minute}
	for i := range 5 {
		d := l.Allow("k", lim, t0)
		if !d.Allowed || d.Remaining != int64(4-i) || d.Reset != time.Duration(i+1)*12*time.Second {
			t.Fatalf("request %d of the burst: %+v", i+1, d)
		}
	}
	d := l.Allow("k", lim, t0)
	if d.Allowed || d.Remaining != 0 || d.RetryAfter != 12*time.Second || d.Reset != time.Minute || d.Limit != lim {
		t.Fatalf("sixth at once: %+v, want refused, retry after 12s, reset 60s", d)
	}
	// Refused requests cost nothing: 11.999 s later still refused, 12 s later one more.
	if d := l.Allow("k", lim, t0.Add(12*time.Second-time.Millisecond)); d.Allowed || d.RetryAfter != time.Millisecond {
		t.Fatalf("at 11.999s: %+v", d)
	}
	if d := l.Allow("k", lim, t0.Add(12*time.Second)); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("at 12s: %+v", d)
	}
	if d := l.Allow("k", lim, t0.Add(12*time.Second)); d.Allowed {
		t.Fatalf("again at 12s: %+v", d)
	}
	// Other keys are counted apart.
	if d := l.Allow("other", lim, t0); !d.Allowed || d.Remaining != 4 {
		t.Fatalf("another key: %+v", d)
	}
	// After a whole idle period the burst is back, whole.
	later := t0.Add(12*time.Second + time.Minute)
	for i := range 5 {
		if d := l.Allow("k", lim, later); !d.Allowed {
			t.Fatalf("burst after idle, request %d: %+v", i+1, d)
		}
	}
	if d := l.Allow("k", lim, later); d.Allowed {
		t.Fatalf("sixth after idle: %+v", d)
	}
}

// TestLocalExactCount: a client sending as fast as it can over W periods of the
// injected clock, both ends included, gets exactly N*W + N: the first burst, then
// one per interval.
func TestLocalExactCount(t *testing.T) {
	for _, lim := range []Limit{{100, time.Second}, {7, time.Second}, {5, time.Minute}, {1000, time.Hour}} {
		l := NewLocal(0)
		const W = 10
		admitted := int64(0)
		step := lim.Per / time.Duration(lim.N) / 10 // ten tries per interval
		end := t0.Add(W * lim.Per)
		for now := t0; !now.After(end); now = now.Add(step) {
			if l.Allow("k", lim, now).Allowed {
				admitted++
			}
		}
		want := lim.N*W + lim.N
		if int64(lim.Per)%lim.N != 0 && admitted == want-1 {
			// Per/N is rounded down to whole nanoseconds, and the tries fall on
			// multiples of a tenth of it: the last interval may end just past end.
			admitted = want
		}
		if admitted != want {
			t.Errorf("%v over %d periods: admitted %d, want %d", lim, W, admitted, want)
		}
	}
}

func TestLocalZeroLimit(t *testing.T) {
	l := NewLocal(0)
	for range 1000 {
		if d := l.Allow("k", Limit{}, t0); !d.Allowed || !d.Limit.IsZero() {
			t.Fatalf("zero limit: %+v", d)
		}
	}
	if l.Len() != 0 {
		t.Fatalf("zero limit held %d keys", l.Len())
	}
}

// TestLocalClockBackwards: a clock that steps back does not refund requests.
func TestLocalClockBackwards(t *testing.T) {
	l := NewLocal(0)
	lim := Limit{2, time.Second}
	l.Allow("k", lim, t0)
	l.Allow("k", lim, t0)
	if d := l.Allow("k", lim, t0.Add(-time.Hour)); d.Allowed {
		t.Fatalf("after the clock stepped back: %+v", d)
	}
}

func TestLocalBounded(t *testing.T) {
	const max = 1024
	l := NewLocal(max)
	lim := Limit{1, time.Hour}
	for i := range 20 * max {
		l.Allow(fmt.Sprint("key-", i), lim, t0)
		if n := l.Len(); n > max {
			t.Fatalf("after %d keys: %d held, bound %d", i+1, n, max)
		}
	}
	// Expired keys are swept before anything live is evicted: keys of a short
	// limit, then (after it passed) as many new ones; the live "held" key stays.
	l = NewLocal(max)
	day := Limit{1, 24 * time.Hour}
	l.Allow("held", day, t0)
	short := Limit{1, time.Second}
	for i := range max {
		l.Allow(fmt.Sprint("short-", i), short, t0)
	}
	for i := range 4 * max {
		l.Allow(fmt.Sprint("new-", i), short, t0.Add(time.Duration(2+i)*time.Second))
	}
	if d := l.Allow("held", day, t0.Add(2*time.Hour)); d.Allowed {
		// Each "new-" key comes when every key but "held" has expired: an
		// eviction would have had an expired key to take first.
		t.Fatalf("live key forgotten while expired ones could be swept: %+v", d)
	}
	if n := l.Len(); n > max {
		t.Fatalf("%d held, bound %d", n, max)
	}
}

func TestLocalSmallBound(t *testing.T) {
	for _, max := range []int{1, 2, 3, 300} {
		l := NewLocal(max)
		for i := range 10 * max {
			l.Allow(fmt.Sprint(i), Limit{1, time.Hour}, t0)
		}
		if n := l.Len(); n > max || n == 0 {
			t.Errorf("NewLocal(%d): %d held", max, n)
		}
	}
}

func TestLocalLongKeys(t *testing.T) {
	l := NewLocal(0)
	lim := Limit{1, time.Hour}
	a := strings.Repeat("a", 10000)
	b := strings.Repeat("a", 9999) + "b"
	if !l.Allow(a, lim, t0).Allowed || l.Allow(a, lim, t0).Allowed {
		t.Fatal("a long key is not counted")
	}
	if !l.Allow(b, lim, t0).Allowed {
		t.Fatal("two long keys that differ at the end are counted as one")
	}
	for i := range l.shards {
		for k := range l.shards[i].tat {
			if len(k) > maxKeyLen+1 {
				t.Fatalf("a key of %d bytes held", len(k))
			}
		}
	}
}

// TestLocalKeyCopied: the key is copied when held, so a caller may build it in a
// buffer it reuses.
func TestLocalKeyCopied(t *testing.T) {
	l := NewLocal(0)
	lim := Limit{1, time.Hour}
	buf := []byte("client-a")
	l.Allow(unsafeString(buf), lim, t0)
	copy(buf, "client-b")
	if !l.Allow("client-b", lim, t0).Allowed {
		t.Fatal("the held key changed with the caller's buffer")
	}
	if l.Allow("client-a", lim, t0).Allowed {
		t.Fatal("client-a forgotten")
	}
}

// TestLocalConcurrent: many goroutines on one key admit exactly the burst.
func TestLocalConcurrent(t *testing.T) {
	l := NewLocal(0)
	lim := Limit{1000, time.Hour}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				if l.Allow("shared", lim, t0).Allowed {
					admitted.Add(1)
				}
				l.Allow(fmt.Sprint(g, "-", i%50), lim, t0)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 1000 {
		t.Fatalf("admitted %d of 8000 at once, want the burst of 1000", admitted.Load())
	}
}

func BenchmarkLocalAllow(b *testing.B) {
	l := NewLocal(0)
	lim := Limit{1_000_000, time.Second}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("app|GET /items/{id}|203.0.113.%d", i)
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Allow(keys[i&1023], lim, now)
	}
}

func BenchmarkLocalAllowParallel(b *testing.B) {
	l := NewLocal(0)
	lim := Limit{1_000_000, time.Second}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("app|GET /items/{id}|203.0.113.%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(keys[i&1023], lim, time.Now())
			i++
		}
	})
}

// BenchmarkLocalAllowNow includes reading the clock, as the gateway does.
func BenchmarkLocalAllowNow(b *testing.B) {
	l := NewLocal(0)
	lim := Limit{100, time.Second}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Allow("app|POST /login|198.51.100.7", lim, time.Now())
	}
}
