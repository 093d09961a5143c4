package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/covetpy/covetpy/ops/metrics"
)

// Config is the gateway's rate-limit settings (keys of the one config: file, flag,
// COVET_<KEY>). The zero Config is in-memory limits with no default limit.
type Config struct {
	// Default is the limit of the routes that set no rate_limit. "" or "none": none.
	Default string `config:"rate_limit_default" help:"rate limit of the routes that set none, N/unit with unit second, minute, hour or day (e.g. 100/minute); empty or none = no limit"`
	// DefaultKey is what a route that sets no rate_limit_key counts by. Default "ip".
	DefaultKey string `config:"rate_limit_key" help:"what a rate limit counts by where the route sets nothing: ip, subject (the bearer token's sub) or header:<Name>; empty = ip"`
	// Redis, when set, is the Redis server the limits are kept in, shared by every
	// gateway that names it: redis://[user:password@]host:port/db, rediss:// (TLS)
	// or unix:///path. "": each gateway keeps its own limits in memory.
	Redis string `config:"rate_limit_redis" help:"Redis server that holds the rate limits, shared by the gateways that name it: redis://[user:password@]host:port/db, rediss://... or unix:///path; empty = in memory, per gateway"`
	// RedisFailure is what a decision does when Redis cannot make it: "open"
	// (default) admits the request, "closed" refuses it (the gateway answers 503).
	RedisFailure string `config:"rate_limit_redis_failure" help:"when rate_limit_redis cannot decide: open (admit the request) or closed (answer 503); empty = open"`
	// RedisTimeout bounds one decision through Redis, dialing included. Default
	// 50ms.
	RedisTimeout time.Duration `config:"rate_limit_redis_timeout" help:"time one rate-limit decision may wait for rate_limit_redis, connecting included; 0 = 50ms"`
	// MaxKeys bounds the keys held in memory (without Redis). Default 1<<20.
	MaxKeys int `config:"rate_limit_max_keys" help:"keys (client x route) the in-memory rate limits hold at most; when full, expired keys are dropped, then the nearest to expiry; 0 = 1048576"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.DefaultKey == "" {
		c.DefaultKey = "ip"
	}
	if c.RedisFailure == "" {
		c.RedisFailure = "open"
	}
	if c.RedisTimeout == 0 {
		c.RedisTimeout = 50 * time.Millisecond
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	return c
}

// Validate reports every setting that is out of range, by name. Zero fields are
// read as their defaults.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.Default != "" {
		if _, err := ParseLimit(c.Default); err != nil {
			errs = append(errs, fmt.Errorf("rate_limit_default %w", err))
		}
	}
	if _, err := ParseKey(c.DefaultKey); err != nil {
		errs = append(errs, fmt.Errorf("rate_limit_key %w", err))
	}
	if c.Redis != "" {
		if _, err := redisOptions(c.Redis); err != nil {
			errs = append(errs, fmt.Errorf("rate_limit_redis %w", err))
		}
	}
	if c.RedisFailure != "open" && c.RedisFailure != "closed" {
		errs = append(errs, fmt.Errorf("rate_limit_redis_failure %q: must be open or closed", c.RedisFailure))
	}
	if c.RedisTimeout < 0 {
		errs = append(errs, fmt.Errorf("rate_limit_redis_timeout %v: must not be negative", c.RedisTimeout))
	}
	if c.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("rate_limit_max_keys %d: must not be negative", c.MaxKeys))
	}
	return errors.Join(errs...)
}

// redacted is u for an error message, its password hidden.
func redacted(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	if strings.Contains(s, "@") {
		return "(a URL with credentials)"
	}
	return s
}

// ErrStoreUnavailable is the error of a decision the shared store could not make
// with rate_limit_redis_failure closed.
var ErrStoreUnavailable = errors.New("ratelimit: rate_limit_redis could not decide")

// Limiter decides requests against their limits, in memory or through Redis
// (Config.Redis). Safe for concurrent use.
type Limiter struct {
	local      *Local      // without Redis
	store      *redisStore // with Redis
	failClosed bool
	def        Limit
	defKey     Key
	m          *metrics.Metrics
	log        *slog.Logger
}

// New checks cfg (zero fields are their defaults) and returns a Limiter. With
// Redis it connects lazily; a Redis that does not answer now is logged, not an
// error: decisions follow rate_limit_redis_failure until it answers. m may be nil
// (no metrics), log nil (slog.Default).
func New(cfg Config, m *metrics.Metrics, log *slog.Logger) (*Limiter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	l := &Limiter{failClosed: cfg.RedisFailure == "closed", m: m, log: log}
	if cfg.Default != "" {
		l.def, _ = ParseLimit(cfg.Default)
	}
	l.defKey, _ = ParseKey(cfg.DefaultKey)
	if cfg.Redis == "" {
		l.local = NewLocal(cfg.MaxKeys)
		return l, nil
	}
	s, err := newRedisStore(cfg.Redis, cfg.RedisTimeout, log)
	if err != nil {
		return nil, fmt.Errorf("rate_limit_redis %w", err)
	}
	l.store = s
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		log.Warn("rate_limit_redis does not answer yet; decisions follow rate_limit_redis_failure until it does",
			"redis", redacted(cfg.Redis), "mode", cfg.RedisFailure, "err", err)
	}
	return l, nil
}

// Default is the limit of the routes that set none (rate_limit_default); zero: none.
func (l *Limiter) Default() Limit { return l.def }

// DefaultKey is what the routes that set no rate_limit_key count by.
func (l *Limiter) DefaultKey() Key { return l.defKey }

// Shared reports whether the limits are kept in Redis.
func (l *Limiter) Shared() bool { return l.store != nil }

// Allow decides one request of key (opaque: the caller makes it unique per route
// and client) against lim, and counts it if admitted. A zero lim admits.
//
// err is not nil only when Redis could not decide and rate_limit_redis_failure is
// closed: the Decision then refuses, Unknown, with a RetryAfter; the caller answers
// 503. With open the request is admitted (Unknown). Either way the failure is
// counted (metrics RateLimitStoreError), unless ctx itself ended first.
func (l *Limiter) Allow(ctx context.Context, key string, lim Limit) (Decision, error) {
	if lim.IsZero() {
		return Decision{Allowed: true}, nil
	}
	if l.store == nil {
		return l.local.Allow(key, lim, time.Now()), nil
	}
	d, retry, err := l.store.allow(ctx, key, lim)
	if err == nil {
		return d, nil
	}
	mode := "open"
	if l.failClosed {
		mode = "closed"
	}
	if ctx.Err() == nil {
		l.m.RateLimitStoreError(mode)
	}
	if l.failClosed {
		return Decision{Limit: lim, Unknown: true, RetryAfter: retry}, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	return Decision{Allowed: true, Limit: lim, Unknown: true}, nil
}

// Close releases the connections to Redis.
func (l *Limiter) Close() error {
	if l.store != nil {
		return l.store.client.Close()
	}
	return nil
}
