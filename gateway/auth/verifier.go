package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/covetpy/covetpy/ops/metrics"
)

// Identity is a verified token's subject and claims. Identities are shared
// between requests (the verified-token cache hands out the same one): treat
// every field, slices included, as read-only.
type Identity struct {
	Subject string    // the sub claim; "" when absent
	Claims  []byte    // the JSON claims set, exactly the bytes that were signed
	Roles   []string  // from auth_roles_claim
	Scopes  []string  // from auth_scopes_claim
	Expires time.Time // the exp claim
}

// maxJWKSBytes bounds a JWKS document read from the file or the URL.
const maxJWKSBytes = 1 << 20

// fetchTimeout bounds one fetch of auth_jwks_url.
const fetchTimeout = 10 * time.Second

// Verifier verifies bearer tokens against the configured JWKS. It is safe for
// concurrent use.
type Verifier struct {
	// Immutable after New.
	cfg     Config
	allowed map[string]*algorithm
	m       *metrics.Metrics
	log     *slog.Logger
	now     func() time.Time
	fetch   func(ctx context.Context) ([]byte, error)
	cache   *tokenCache     // nil: no cache
	ctx     context.Context // canceled by Close: ends a fetch in flight
	cancel  context.CancelFunc
	stop    chan struct{}
	done    chan struct{}
	closing sync.Once

	keys atomic.Pointer[keySet] // replaced whole by refresh

	// Guarded by mu: the single-flight refresh.
	mu          sync.Mutex
	inflight    chan struct{} // closed when the running refresh ends; nil when none runs
	lastAttempt time.Time     // start of the latest refresh
	lastRaw     []byte        // the JWKS document the current keys came from
	gen         uint64
}

// New returns a Verifier for cfg, or nil, nil when cfg has no key source
// (authentication off). It validates cfg (after WithDefaults) and loads the
// keys: a JWKS file that cannot be read or holds no usable key is an error; a
// JWKS URL that cannot be fetched is not (the gateway starts, every token is
// refused with reason no_keys, the failure is logged and the fetch retried
// every auth_jwks_cooldown until it succeeds). m and log may be nil.
func New(cfg Config, m *metrics.Metrics, log *slog.Logger) (*Verifier, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{cfg: cfg, m: m, log: log, now: time.Now, allowed: map[string]*algorithm{},
		stop: make(chan struct{}), done: make(chan struct{})}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	for _, a := range cfg.Algorithms {
		v.allowed[a] = algorithms[a]
	}
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
	}
	if cfg.JWKSFile != "" {
		v.fetch = func(context.Context) ([]byte, error) { return readFile(cfg.JWKSFile) }
	} else {
		client := &http.Client{Timeout: fetchTimeout}
		v.fetch = func(ctx context.Context) ([]byte, error) { return fetchURL(ctx, client, cfg.JWKSURL) }
	}
	err := v.refresh()
	if err != nil && cfg.JWKSFile != "" {
		return nil, fmt.Errorf("auth_jwks_file %q: %w", cfg.JWKSFile, err)
	}
	go v.loop()
	return v, nil
}

// Close stops the periodic refresh and ends a fetch in flight. Verify still
// works afterwards with the keys already loaded.
func (v *Verifier) Close() {
	if v == nil {
		return
	}
	v.closing.Do(func() {
		v.cancel()
		close(v.stop)
	})
	<-v.done
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f)
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	return data, nil
}

func fetchURL(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return readLimited(resp.Body)
}

// loop refreshes the keys every auth_jwks_refresh; while the latest attempt
// failed it retries every auth_jwks_cooldown instead.
func (v *Verifier) loop() {
	defer close(v.done)
	failed := v.keys.Load() == nil
	for {
		wait := v.cfg.JWKSRefresh
		if failed {
			wait = v.cfg.JWKSCooldown
		}
		t := time.NewTimer(wait)
		select {
		case <-v.stop:
			t.Stop()
			return
		case <-t.C:
		}
		failed = v.singleFlight(false) != nil
	}
}

// refreshOnUnknownKid refreshes the keys because a token named a kid the set
// lacks: at most once per auth_jwks_cooldown, and one refresh at a time (a
// caller arriving while one runs waits for it instead of starting another).
func (v *Verifier) refreshOnUnknownKid() { _ = v.singleFlight(true) }

var errCooldown = errors.New("refresh skipped: auth_jwks_cooldown has not passed")

func (v *Verifier) singleFlight(cooldown bool) error {
	v.mu.Lock()
	if ch := v.inflight; ch != nil {
		v.mu.Unlock()
		<-ch
		return nil
	}
	if cooldown && v.now().Sub(v.lastAttempt) < v.cfg.JWKSCooldown {
		v.mu.Unlock()
		return errCooldown
	}
	ch := make(chan struct{})
	v.inflight = ch
	v.mu.Unlock()
	err := v.refresh()
	v.mu.Lock()
	v.inflight = nil
	v.mu.Unlock()
	close(ch)
	return err
}

// refresh reads the key source once and, when it parses, replaces the keys.
// On failure the keys already held stay (stale-while-error).
func (v *Verifier) refresh() error {
	v.mu.Lock()
	v.lastAttempt = v.now()
	v.mu.Unlock()
	ctx, cancel := context.WithTimeout(v.ctx, fetchTimeout)
	defer cancel()
	data, err := v.fetch(ctx)
	var set *keySet
	var skipped []error
	if err == nil {
		set, skipped, err = parseJWKS(data)
	}
	if v.cfg.JWKSURL != "" {
		if err != nil {
			v.m.JWKSFetch("error")
		} else {
			v.m.JWKSFetch("ok")
		}
	}
	if err != nil {
		v.log.Error("auth: JWKS refresh failed; keeping the keys already held", "source", v.source(), "err", err,
			"keys_held", v.keyCount())
		return err
	}
	for _, s := range skipped {
		v.log.Warn("auth: JWKS key skipped", "source", v.source(), "err", s)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys.Load() != nil && bytes.Equal(data, v.lastRaw) {
		return nil // unchanged: cached identities stay valid
	}
	v.gen++
	set.gen = v.gen
	v.lastRaw = data
	v.keys.Store(set)
	v.log.Info("auth: JWKS loaded", "source", v.source(), "keys", len(set.all))
	return nil
}

func (v *Verifier) source() string {
	if v.cfg.JWKSFile != "" {
		return v.cfg.JWKSFile
	}
	return v.cfg.JWKSURL
}

func (v *Verifier) keyCount() int {
	if s := v.keys.Load(); s != nil {
		return len(s.all)
	}
	return 0
}

// Verify verifies a bearer token (the credentials of an Authorization:
// Bearer header) and returns its identity. The error is always an *Error.
// A token verified before and still valid comes from the cache.
func (v *Verifier) Verify(token []byte) (*Identity, error) {
	id, err := v.verify(token)
	if err != nil {
		return nil, err
	}
	return id, nil
}

func (v *Verifier) verify(token []byte) (*Identity, *Error) {
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, fail(ReasonTooLarge, fmt.Sprintf("token longer than auth_max_token_bytes (%d)", v.cfg.MaxTokenBytes))
	}
	var key uint64
	now := v.now()
	if v.cache != nil {
		key = v.cache.key(token)
		if set := v.keys.Load(); set != nil {
			if id := v.cache.get(key, token, set.gen, now.UnixNano()); id != nil {
				return id, nil
			}
		}
	}
	c, err := parseCompact(token, v.allowed)
	if err != nil {
		return nil, err
	}
	// The claims are checked before the signature, whose check costs far
	// more (ES256 about 80 µs): a replayed expired token, or one for another
	// issuer or audience, is refused without it, and never sends the JWKS
	// refresher after its kid. Only a refusal is taken from claims not yet
	// verified; the identity is used only once the signature verifies.
	id, until, err := v.checkClaims(c.payload, now)
	if err != nil {
		return nil, err
	}
	set, err := v.verifySignature(c)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(key, token, id, set.gen, until)
	}
	return id, nil
}

// verifyJWS parses the token and verifies its signature. It does not look
// at the payload.
func (v *Verifier) verifyJWS(token []byte) (*compact, *keySet, *Error) {
	c, err := parseCompact(token, v.allowed)
	if err != nil {
		return nil, nil, err
	}
	set, err := v.verifySignature(c)
	return c, set, err
}

// verifySignature verifies a parsed token's signature with a key of the set
// that fits its alg (and kid, when it has one).
func (v *Verifier) verifySignature(c *compact) (*keySet, *Error) {
	set := v.keys.Load()
	if set == nil {
		v.refreshOnUnknownKid()
		if set = v.keys.Load(); set == nil {
			return nil, fail(ReasonNoKeys, "no JWKS loaded yet")
		}
	}
	cands := set.all
	if c.header.hasKid {
		// The kid is only ever a map key here: never a path, a query or a URL.
		cands = set.byKid[c.header.kid]
		if len(cands) == 0 {
			v.refreshOnUnknownKid()
			set = v.keys.Load()
			cands = set.byKid[c.header.kid]
			if len(cands) == 0 {
				return nil, fail(ReasonUnknownKid, "no key with the token's kid")
			}
		}
	}
	alg := v.allowed[c.header.alg]
	fitted := false
	for _, k := range cands {
		if !keyFits(alg, k) {
			continue
		}
		fitted = true
		if alg.verify(k, c.input, c.sig) {
			return set, nil
		}
	}
	if !fitted {
		return nil, fail(ReasonBadAlg, fmt.Sprintf("no key for alg %q (kty, crv, alg, use or key_ops of the key do not fit)", c.header.alg))
	}
	return nil, fail(ReasonBadSignature, "the signature does not verify")
}

// checkClaims checks the claims set of a verified token and builds its
// identity; until is the last instant (Unix ns) the identity may be used.
func (v *Verifier) checkClaims(payload []byte, now time.Time) (*Identity, int64, *Error) {
	if err := checkDuplicates(payload); err != nil {
		if errors.Is(err, errDuplicate) {
			return nil, 0, fail(ReasonDuplicateKeys, "claims: "+err.Error())
		}
		return nil, 0, fail(ReasonMalformed, "claims: bad JSON")
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var claims map[string]any
	if err := d.Decode(&claims); err != nil || claims == nil {
		return nil, 0, fail(ReasonMalformed, "claims: not a JSON object")
	}
	leeway := v.cfg.Leeway
	exp, ok, err := numericDate(claims, "exp")
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, fail(ReasonMissingExp, "the token has no exp claim")
	}
	until := exp.Add(leeway)
	if !now.Before(until) {
		return nil, 0, fail(ReasonExpired, "exp is past")
	}
	if nbf, ok, err := numericDate(claims, "nbf"); err != nil {
		return nil, 0, err
	} else if ok && now.Add(leeway).Before(nbf) {
		return nil, 0, fail(ReasonNotYetValid, "nbf is in the future")
	}
	if iat, ok, err := numericDate(claims, "iat"); err != nil {
		return nil, 0, err
	} else if ok && now.Add(leeway).Before(iat) {
		return nil, 0, fail(ReasonNotYetValid, "iat is in the future")
	}
	if v.cfg.Issuer != "" {
		if iss, _ := claims["iss"].(string); iss != v.cfg.Issuer {
			return nil, 0, fail(ReasonBadIssuer, "iss is not auth_issuer")
		}
	}
	if len(v.cfg.Audience) > 0 && !audienceOK(claims["aud"], v.cfg.Audience) {
		return nil, 0, fail(ReasonBadAudience, "aud holds none of auth_audience")
	}
	id := &Identity{Claims: payload, Expires: exp}
	if sub, ok := claims["sub"]; ok {
		s, isStr := sub.(string)
		if !isStr {
			return nil, 0, fail(ReasonMalformed, "claims: sub is not a string")
		}
		id.Subject = s
	}
	id.Roles = stringList(lookup(claims, v.cfg.RolesClaim), false)
	id.Scopes = stringList(lookup(claims, v.cfg.ScopesClaim), true)
	return id, until.UnixNano(), nil
}

// numericDate reads a NumericDate claim (RFC 7519 2: seconds since the epoch,
// possibly fractional).
func numericDate(claims map[string]any, name string) (time.Time, bool, *Error) {
	raw, ok := claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	n, isNum := raw.(json.Number)
	if !isNum {
		return time.Time{}, false, fail(ReasonMalformed, "claims: "+name+" is not a number")
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, false, fail(ReasonMalformed, "claims: "+name+" is not a valid NumericDate")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

func audienceOK(aud any, want []string) bool {
	match := func(s string) bool {
		for _, w := range want {
			if s == w {
				return true
			}
		}
		return false
	}
	switch a := aud.(type) {
	case string:
		return match(a)
	case []any:
		for _, e := range a {
			if s, ok := e.(string); ok && match(s) {
				return true
			}
		}
	}
	return false
}

// lookup follows a dotted path ("realm_access.roles") through nested objects.
// A claim whose own name contains a dot is found when the whole path names it
// at the top level.
func lookup(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = obj[part]; !ok {
			return nil
		}
	}
	return cur
}

// stringList reads a roles or scopes claim: a list of strings (other elements
// are ignored) or one string, split at spaces when split is set.
func stringList(v any, split bool) []string {
	switch x := v.(type) {
	case string:
		if split {
			return strings.Fields(x)
		}
		if x == "" {
			return nil
		}
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// BearerToken extracts the token of an Authorization header value in the
// Bearer scheme (RFC 6750 2.1): "Bearer", case-insensitive, one or more
// spaces, then a token68 (letters, digits, "-._~+/", then any "="). ok is
// false for any other value.
func BearerToken(authorization []byte) (token []byte, ok bool) {
	const scheme = "bearer"
	if len(authorization) < len(scheme)+2 || !bytes.EqualFold(authorization[:len(scheme)], []byte(scheme)) || authorization[len(scheme)] != ' ' {
		return nil, false
	}
	t := bytes.TrimLeft(authorization[len(scheme):], " ")
	t = bytes.TrimRight(t, " \t")
	if len(t) == 0 {
		return nil, false
	}
	i := 0
	for i < len(t) && isToken68(t[i]) {
		i++
	}
	if i == 0 {
		return nil, false
	}
	for i < len(t) && t[i] == '=' {
		i++
	}
	if i != len(t) {
		return nil, false
	}
	return t, true
}

func isToken68(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}
