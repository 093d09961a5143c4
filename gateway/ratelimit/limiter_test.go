package ratelimit

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	ok := Config{Default: "100/minute", DefaultKey: "header:X-API-Key", Redis: "redis://127.0.0.1:6379/2",
		RedisFailure: "closed", RedisTimeout: time.Second, MaxKeys: 10}
	if err := ok.Validate(); err != nil {
		t.Fatalf("%+v: %v", ok, err)
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Default: "5/fortnight"}, `rate_limit_default "5/fortnight": unit must be second, minute, hour or day (or s, m, h, d)`},
		{Config{DefaultKey: "cookie"}, `rate_limit_key "cookie": must be ip, subject or header:<Name>`},
		{Config{Redis: "http://127.0.0.1:6379"}, `rate_limit_redis "http://127.0.0.1:6379": want redis://host:port/db, rediss://host:port/db or unix:///path`},
		{Config{Redis: "redis://127.0.0.1:6379/x"}, `rate_limit_redis "redis://127.0.0.1:6379/x": redis: invalid database number: "x"`},
		{Config{RedisFailure: "maybe"}, `rate_limit_redis_failure "maybe": must be open or closed`},
		{Config{RedisTimeout: -time.Second}, `rate_limit_redis_timeout -1s: must not be negative`},
		{Config{MaxKeys: -1}, `rate_limit_max_keys -1: must not be negative`},
	} {
		err := c.cfg.Validate()
		if err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v, want %s", c.cfg, err, c.want)
		}
		if _, err := New(c.cfg, nil, nil); err == nil || err.Error() != c.want {
			t.Errorf("New(%+v): %v, want %s", c.cfg, err, c.want)
		}
	}
	// Several bad settings: each named.
	err := Config{Default: "x", RedisFailure: "y"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "rate_limit_default") || !strings.Contains(err.Error(), "rate_limit_redis_failure") {
		t.Errorf("two bad settings: %v", err)
	}
	// A password in rate_limit_redis never reaches an error.
	err = Config{Redis: "redis://user:s3cret@127.0.0.1:6379/x"}.Validate()
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error with the password: %v", err)
	}
}

func TestLimiterInMemory(t *testing.T) {
	l, err := New(Config{Default: "2/second", DefaultKey: "subject"}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Shared() || l.Default() != (Limit{2, time.Second}) || l.DefaultKey() != (Key{Kind: KeySubject}) {
		t.Fatalf("Shared %v Default %v DefaultKey %v", l.Shared(), l.Default(), l.DefaultKey())
	}
	ctx := context.Background()
	for i, want := range []bool{true, true, false} {
		d, err := l.Allow(ctx, "k", l.Default())
		if err != nil || d.Allowed != want {
			t.Fatalf("request %d: %+v, %v", i+1, d, err)
		}
	}
	if d, err := l.Allow(ctx, "k", Limit{}); err != nil || !d.Allowed {
		t.Fatalf("zero limit: %+v, %v", d, err)
	}
	def, _ := New(Config{}, nil, nil)
	if !def.Default().IsZero() || def.DefaultKey() != (Key{Kind: KeyIP}) || def.local.perShard*len(def.local.shards) != DefaultMaxKeys {
		t.Fatalf("defaults: %v %v", def.Default(), def.DefaultKey())
	}
}
