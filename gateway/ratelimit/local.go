package ratelimit

import (
	"crypto/sha256"
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// Local is the in-memory GCRA: one theoretical arrival time per key, in a fixed
// number of shards, each a map behind its own mutex. Safe for concurrent use.
//
// Memory is bounded: at most maxKeys keys are held (each shard holds maxKeys/shards).
// A key whose limit is wholly restored (its arrival time has passed) holds no state
// worth keeping and is swept when a full shard needs room. If a shard is still full
// after the sweep, one key is evicted to make room: of a few keys sampled at random,
// the one closest to being restored. An evicted key starts afresh on its next
// request, with a whole burst: at capacity the limiter forgets before it refuses,
// so that a flood of new keys cannot lock out the clients already known. Keys longer
// than maxKeyLen bytes are held as their SHA-256 digest, so that one entry costs at
// most about maxKeyLen+80 bytes whatever a client sends.
type Local struct {
	epoch    time.Time // monotonic origin: times are held as nanoseconds since epoch
	seed     maphash.Seed
	shards   []localShard
	mask     uint64
	perShard int // keys a shard holds at most
}

type localShard struct {
	mu sync.Mutex
	// tat: per key, the theoretical arrival time (ns since epoch) of the next
	// request were it to conform exactly; owned under mu.
	tat map[string]int64
	// inserts since the shard was last swept, owned under mu.
	inserts int
	_       [40]byte // a cache line each
}

const (
	maxShards   = 256
	evictSample = 8
	maxKeyLen   = 128
)

// NewLocal returns an in-memory limiter that holds at most maxKeys keys (at least 1;
// 0 or less means DefaultMaxKeys).
func NewLocal(maxKeys int) *Local {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	n := 1
	for n*2 <= maxShards && n*2 <= maxKeys {
		n *= 2
	}
	l := &Local{epoch: time.Now(), seed: maphash.MakeSeed(), shards: make([]localShard, n),
		mask: uint64(n - 1), perShard: maxKeys / n}
	for i := range l.shards {
		l.shards[i].tat = make(map[string]int64)
	}
	return l
}

// DefaultMaxKeys is the default bound on the keys a Local holds (rate_limit_max_keys).
const DefaultMaxKeys = 1 << 20

// Allow decides one request of key against lim at time now, and counts it if it
// is admitted. A zero lim admits without counting (and without headers).
func (l *Local) Allow(key string, lim Limit, now time.Time) Decision {
	if lim.IsZero() {
		return Decision{Allowed: true}
	}
	key = compactKey(key)
	t := int64(now.Sub(l.epoch))
	T := lim.interval()
	tau := T * lim.N // the burst tolerance: N requests at once
	s := &l.shards[maphash.String(l.seed, key)&l.mask]
	s.mu.Lock()
	tat, held := s.tat[key]
	if !held || tat < t {
		tat = t
	}
	next := tat + T
	if allowAt := next - tau; t < allowAt {
		s.mu.Unlock()
		return Decision{Limit: lim, Reset: time.Duration(tat - t), RetryAfter: time.Duration(allowAt - t)}
	}
	if held {
		s.tat[key] = next
	} else {
		l.insert(s, key, next, t)
	}
	s.mu.Unlock()
	return Decision{Allowed: true, Limit: lim, Remaining: (tau - (next - t)) / T, Reset: time.Duration(next - t)}
}

// insert adds key to s, making room first if s is full. s.mu is held.
func (l *Local) insert(s *localShard, key string, tat, now int64) {
	if len(s.tat) >= l.perShard {
		// A sweep walks the whole shard; after one, the next waits until an
		// eighth of the shard has been inserted again, so a shard full of live
		// keys costs O(1) per insert, not a walk each.
		if s.inserts >= l.perShard/8 {
			for k, v := range s.tat {
				if v <= now {
					delete(s.tat, k)
				}
			}
			s.inserts = 0
		}
		if len(s.tat) >= l.perShard {
			victim, first, i := "", int64(0), 0
			for k, v := range s.tat { // map order is random
				if i == 0 || v < first {
					victim, first = k, v
				}
				if i++; i == evictSample {
					break
				}
			}
			delete(s.tat, victim)
		}
	}
	s.tat[strings.Clone(key)] = tat // the caller's string may borrow a buffer
	s.inserts++
}

// Len is the number of keys held.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

// compactKey is key, or for a key longer than maxKeyLen its SHA-256 digest after a
// NUL (which no short key the gateway builds starts with).
func compactKey(key string) string {
	if len(key) <= maxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "\x00" + string(sum[:])
}
