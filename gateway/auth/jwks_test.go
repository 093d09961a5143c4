package auth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// jwksServer serves a JWKS that the test can swap, or fail, and counts the
// fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	doc     []byte
	status  int
	delay   time.Duration
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{doc: jwks(keys...), status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		doc, status, delay := s.doc, s.status, s.delay
		s.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done(): // the client gave up
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, keys ...map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
	if keys != nil {
		s.doc = jwks(keys...)
	}
}

// clock is a settable time for a Verifier under concurrent use.
type clock struct{ ns atomic.Int64 }

func newClock() *clock                   { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newURLVerifier(t *testing.T, cfg Config, m *metrics.Metrics, c *clock) *Verifier {
	t.Helper()
	v, err := New(cfg, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	v.mu.Lock()
	v.now = c.now
	v.lastAttempt = c.now()
	v.mu.Unlock()
	return v
}

func fetchCount(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "covet_jwks_fetches_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// 10,000 concurrent requests with random unknown kids cause at most one JWKS
// fetch per auth_jwks_cooldown: none while the cooldown runs, exactly one
// once it has passed (the others wait for that fetch rather than start
// their own), then none again.
func TestJWKSUnknownKidSingleFlight(t *testing.T) {
	s := newSigner(t, "HS256", "real")
	srv := newJWKSServer(t, s.jwk)
	srv.delay = 50 * time.Millisecond // the burst piles up on an in-flight fetch
	c := newClock()
	v := newURLVerifier(t, Config{JWKSURL: srv.URL, Algorithms: []string{"HS256"}, JWKSCooldown: time.Minute}, nil, c)
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}
	const n = 10000
	tokens := make([][]byte, n)
	for i := range tokens {
		tokens[i] = []byte(s.mint(map[string]any{"exp": c.now().Add(time.Hour).Unix()}, map[string]any{"kid": fmt.Sprintf("k%d-%d", i, time.Now().UnixNano())}))
	}
	burst := func() {
		var wg sync.WaitGroup
		var wrong atomic.Int64
		for i := range tokens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := v.Verify(tokens[i]); reasonOf(err) != ReasonUnknownKid {
					wrong.Add(1)
				}
			}()
		}
		wg.Wait()
		if w := wrong.Load(); w > 0 {
			t.Fatalf("%d tokens not refused as unknown_kid", w)
		}
	}
	burst()
	if got := srv.fetches.Load(); got != 1 {
		t.Fatalf("within the cooldown: %d fetches, want 1 (the startup one)", got)
	}
	c.advance(time.Minute)
	burst()
	if got := srv.fetches.Load(); got != 2 {
		t.Fatalf("after the cooldown: %d fetches, want 2", got)
	}
	burst()
	if got := srv.fetches.Load(); got != 2 {
		t.Fatalf("again within the cooldown: %d fetches, want 2", got)
	}
}

// A failed refresh keeps the keys already held, and is counted.
func TestJWKSStaleWhileError(t *testing.T) {
	s := newSigner(t, "ES256", "k1")
	srv := newJWKSServer(t, s.jwk)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	v := newURLVerifier(t, Config{JWKSURL: srv.URL, Algorithms: []string{"ES256"}, CacheSize: -1}, m, c)
	good := []byte(s.mint(map[string]any{"exp": c.now().Add(time.Hour).Unix()}, nil))
	if _, err := v.Verify(good); err != nil {
		t.Fatal(err)
	}
	for _, status := range []int{http.StatusInternalServerError, http.StatusOK} {
		if status == http.StatusOK {
			srv.set(status)
			srv.mu.Lock()
			srv.doc = []byte(`{"keys":[{"kty":"oct","k":"AAAA","kid":"k1","kid":"k2"}]}`) // 200 but unusable
			srv.mu.Unlock()
		} else {
			srv.set(status)
		}
		c.advance(time.Minute)
		if _, err := v.Verify([]byte(s.mint(map[string]any{"exp": c.now().Add(time.Hour).Unix()}, map[string]any{"kid": "k9"}))); reasonOf(err) != ReasonUnknownKid {
			t.Fatalf("unknown kid: %v", err)
		}
		if _, err := v.Verify(good); err != nil {
			t.Fatalf("after a failed refresh (status %d) the old key is gone: %v", status, err)
		}
	}
	if ok, bad := fetchCount(t, reg, "ok"), fetchCount(t, reg, "error"); ok != 1 || bad != 2 {
		t.Fatalf("jwks_fetches_total ok=%v error=%v, want 1 and 2", ok, bad)
	}
}

// A JWKS URL down at startup: New succeeds, tokens are refused no_keys, and
// the keys arrive on the first request after the cooldown once the URL
// answers.
func TestJWKSURLDownAtStart(t *testing.T) {
	s := newSigner(t, "EdDSA", "k1")
	srv := newJWKSServer(t, s.jwk)
	srv.set(http.StatusServiceUnavailable)
	c := newClock()
	v := newURLVerifier(t, Config{JWKSURL: srv.URL, Algorithms: []string{"EdDSA"}}, nil, c)
	tok := []byte(s.mint(map[string]any{"exp": c.now().Add(time.Hour).Unix()}, nil))
	if _, err := v.Verify(tok); reasonOf(err) != ReasonNoKeys {
		t.Fatalf("before any key: %v", err)
	}
	srv.set(http.StatusOK)
	if _, err := v.Verify(tok); reasonOf(err) != ReasonNoKeys {
		t.Fatalf("within the cooldown: %v", err)
	}
	c.advance(time.Minute)
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("after the cooldown: %v", err)
	}
}

// Key rotation: a new kid is fetched on first sight; the removed key's
// tokens, cached before, are not served from the cache any more.
func TestJWKSRotation(t *testing.T) {
	a := newSigner(t, "ES256", "a")
	b := newSigner(t, "ES256", "b")
	srv := newJWKSServer(t, a.jwk)
	c := newClock()
	v := newURLVerifier(t, Config{JWKSURL: srv.URL, Algorithms: []string{"ES256"}}, nil, c)
	exp := map[string]any{"exp": c.now().Add(time.Hour).Unix()}
	ta, tb := []byte(a.mint(exp, nil)), []byte(b.mint(exp, nil))
	if _, err := v.Verify(ta); err != nil {
		t.Fatal(err)
	}
	srv.set(http.StatusOK, b.jwk)
	c.advance(time.Minute)
	if _, err := v.Verify(tb); err != nil {
		t.Fatalf("the new key: %v", err)
	}
	if _, err := v.Verify(ta); reasonOf(err) != ReasonUnknownKid {
		t.Fatalf("the removed key's cached token: %v", err)
	}
}

// auth_jwks_refresh re-fetches in the background.
func TestJWKSPeriodicRefresh(t *testing.T) {
	s := newSigner(t, "HS256", "k")
	srv := newJWKSServer(t, s.jwk)
	v, err := New(Config{JWKSURL: srv.URL, Algorithms: []string{"HS256"}, JWKSRefresh: 20 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.fetches.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	v.Close()
	if n := srv.fetches.Load(); n < 3 {
		t.Fatalf("%d fetches in 10s with auth_jwks_refresh 20ms", n)
	}
	after := srv.fetches.Load()
	time.Sleep(60 * time.Millisecond)
	if n := srv.fetches.Load(); n != after {
		t.Fatalf("fetches went on after Close: %d -> %d", after, n)
	}
}

// Close ends a fetch in flight instead of waiting out its timeout.
func TestCloseEndsAFetchInFlight(t *testing.T) {
	s := newSigner(t, "HS256", "k")
	srv := newJWKSServer(t, s.jwk)
	v, err := New(Config{JWKSURL: srv.URL, Algorithms: []string{"HS256"}, JWKSRefresh: time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	srv.delay = time.Minute // the next refresh hangs
	srv.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for srv.fetches.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if srv.fetches.Load() < 2 {
		t.Fatal("no periodic refresh started")
	}
	done := make(chan struct{})
	go func() { v.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(fetchTimeout / 2):
		t.Fatal("Close waited for the hung fetch")
	}
}
