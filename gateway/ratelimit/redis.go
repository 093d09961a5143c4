package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// KeyPrefix starts the name of every Redis key the limiter writes.
const KeyPrefix = "covet:rl:"

// gcraScript is the GCRA in one atomic step, on Redis' own clock (TIME), so that
// gateways whose clocks differ agree. Times are microseconds: they stay exact in
// Lua's doubles (2^53 us is 285 years). KEYS[1]: the key; ARGV[1]: the emission
// interval T; ARGV[2]: the burst tolerance N*T. The key holds the theoretical
// arrival time and expires when it passes (the limit is then wholly restored,
// which is what no key means). Returns {admitted 0|1, reset, retry after}.
const gcraScript = `
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local T = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local nxt = tat + T
local allow_at = nxt - tau
if now < allow_at then
  return {0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.ceil((nxt - now) / 1000))
return {1, nxt - now, 0}
`

// The circuit breaker: after breakerAfter failures in a row, Redis is not asked
// for breakerBase, then (one probe request at a time) for twice as long after each
// further failure, at most breakerMax; one success closes it again. Meanwhile
// decisions fail at once, as rate_limit_redis_failure says, instead of each waiting
// rate_limit_redis_timeout for a server that is down.
const (
	breakerAfter = 3
	breakerBase  = 100 * time.Millisecond
	breakerMax   = 5 * time.Second
)

var errBreakerOpen = errors.New("not asked: Redis failed just before (circuit open)")

type redisStore struct {
	client  *redis.Client
	script  *redis.Script
	timeout time.Duration
	log     *slog.Logger
	epoch   time.Time // monotonic origin of openUntil

	failures  atomic.Int64 // in a row
	openUntil atomic.Int64 // ns since epoch: Redis not asked before
	probing   atomic.Bool  // a request is asking Redis while failures >= breakerAfter
	attempts  atomic.Int64 // requests sent to Redis (for tests)
}

// redisOptions reads a rate_limit_redis URL. Errors quote it, its password hidden.
func redisOptions(s string) (*redis.Options, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		return nil, fmt.Errorf("%q: want redis://host:port/db, rediss://host:port/db or unix:///path", redacted(s))
	}
	o, err := redis.ParseURL(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", redacted(s), err)
	}
	return o, nil
}

func newRedisStore(rawURL string, timeout time.Duration, log *slog.Logger) (*redisStore, error) {
	o, err := redisOptions(rawURL)
	if err != nil {
		return nil, err
	}
	// Each decision has its own deadline (timeout); nothing is retried within it:
	// the circuit breaker, not retries, deals with a Redis that is down.
	o.ContextTimeoutEnabled = true
	o.DialTimeout = timeout
	o.ReadTimeout = timeout
	o.WriteTimeout = timeout
	o.MaxRetries = -1
	o.DialerRetries = 1
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	// go-redis logs failed dials itself; route them to the gateway's log, at
	// debug (the breaker's own warnings say what matters, once per outage).
	redis.SetLogger(redisLog{log})
	return &redisStore{client: redis.NewClient(o), script: redis.NewScript(gcraScript), timeout: timeout,
		log: log, epoch: time.Now()}, nil
}

// allow runs the script for key. On failure retry is how long a client should wait
// before trying again (the rest of the breaker's pause, at least a second).
func (s *redisStore) allow(ctx context.Context, key string, lim Limit) (d Decision, retry time.Duration, err error) {
	now := int64(time.Since(s.epoch))
	if until := s.openUntil.Load(); now < until {
		return d, max(time.Duration(until-now), time.Second), errBreakerOpen
	}
	probe := s.failures.Load() >= breakerAfter
	if probe && !s.probing.CompareAndSwap(false, true) {
		return d, time.Second, errBreakerOpen
	}
	if probe {
		defer s.probing.Store(false)
	}
	T := max(lim.interval()/1000, 1) // microseconds
	tau := T * lim.N
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	s.attempts.Add(1)
	res, err := s.script.Run(ctx, s.client, []string{KeyPrefix + compactKey(key)}, T, tau).Int64Slice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("script answered %d values, want 3", len(res))
	}
	if err != nil {
		if parent.Err() == nil { // not the caller giving up
			s.failed(err)
		}
		return d, time.Second, err
	}
	if s.failures.Swap(0) >= breakerAfter {
		s.openUntil.Store(0)
		s.log.Info("rate_limit_redis answers again")
	}
	d = Decision{Allowed: res[0] == 1, Limit: lim, Reset: time.Duration(res[1]) * time.Microsecond}
	if d.Allowed {
		d.Remaining = max((tau-res[1])/T, 0)
	} else {
		d.RetryAfter = time.Duration(res[2]) * time.Microsecond
	}
	return d, 0, nil
}

// failed counts a failure and opens the breaker from the breakerAfter-th in a row.
func (s *redisStore) failed(err error) {
	n := s.failures.Add(1)
	if n < breakerAfter {
		return
	}
	pause := breakerMax
	if k := n - breakerAfter; k < 6 {
		pause = min(breakerBase<<k, breakerMax)
	}
	s.openUntil.Store(int64(time.Since(s.epoch) + pause))
	if n == breakerAfter {
		s.log.Warn("rate_limit_redis fails; not asking it again for a while, decisions follow rate_limit_redis_failure",
			"failures", n, "pause", pause, "err", err)
	}
}

// redisLog is go-redis's logger on the gateway's slog logger, at debug.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
