package auth

import (
	"hash/maphash"
	"sync"
)

// tokenCache maps a verified token to its identity. It is keyed by the
// token's maphash under a seed chosen at start-up (a fast hash: hashing a
// 3.5 KB ML-DSA token with SHA-256 alone took longer than the whole cached
// verification may), and each entry keeps the token itself, so that a hit is
// a byte-for-byte match and a hash collision is only a miss. Memory is
// therefore bounded by auth_cache_size times auth_max_token_bytes.
//
// It is sharded to keep lock contention low and bounded: a full shard drops
// an arbitrary entry before it takes a new one. An entry past its until, or
// of an older key set, is dropped when it is next looked up.
type tokenCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

const cacheShards = 16

type cacheShard struct {
	mu sync.RWMutex
	m  map[uint64]cacheEntry
}

type cacheEntry struct {
	token string // the token verified
	id    *Identity
	gen   uint64 // the key set that verified it; another set makes it stale
	until int64  // Unix ns: exp + auth_leeway; never used at or after it
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{seed: maphash.MakeSeed(), perShard: (size + cacheShards - 1) / cacheShards}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]cacheEntry)
	}
	return c
}

// key is the cache key of token.
func (c *tokenCache) key(token []byte) uint64 { return maphash.Bytes(c.seed, token) }

func (c *tokenCache) get(k uint64, token []byte, gen uint64, now int64) *Identity {
	s := &c.shards[k%cacheShards]
	s.mu.RLock()
	e, ok := s.m[k]
	s.mu.RUnlock()
	if !ok || e.token != string(token) {
		return nil
	}
	if e.gen != gen || now >= e.until {
		s.mu.Lock()
		if cur, ok := s.m[k]; ok && cur == e {
			delete(s.m, k)
		}
		s.mu.Unlock()
		return nil
	}
	return e.id
}

func (c *tokenCache) put(k uint64, token []byte, id *Identity, gen uint64, until int64) {
	s := &c.shards[k%cacheShards]
	s.mu.Lock()
	if _, ok := s.m[k]; !ok && len(s.m) >= c.perShard {
		for k := range s.m { // map order is random: an arbitrary victim
			delete(s.m, k)
			break
		}
	}
	s.m[k] = cacheEntry{token: string(token), id: id, gen: gen, until: until}
	s.mu.Unlock()
}

func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
