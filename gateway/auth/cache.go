package auth

import "sync"

// tokenCache maps the SHA-256 of a verified token to its identity. It is
// sharded to keep lock contention low and bounded: a full shard drops an
// arbitrary entry before it takes a new one. An entry past its until, or of
// an older key set, is dropped when it is next looked up.
type tokenCache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

const cacheShards = 16

type cacheShard struct {
	mu sync.RWMutex
	m  map[[32]byte]cacheEntry
}

type cacheEntry struct {
	id    *Identity
	gen   uint64 // the key set that verified it; another set makes it stale
	until int64  // Unix ns: exp + auth_leeway; never used at or after it
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{perShard: (size + cacheShards - 1) / cacheShards}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]cacheEntry)
	}
	return c
}

func (c *tokenCache) get(sum *[32]byte, gen uint64, now int64) *Identity {
	s := &c.shards[sum[0]%cacheShards]
	s.mu.RLock()
	e, ok := s.m[*sum]
	s.mu.RUnlock()
	if !ok {
		return nil
	}
	if e.gen != gen || now >= e.until {
		s.mu.Lock()
		if cur, ok := s.m[*sum]; ok && cur == e {
			delete(s.m, *sum)
		}
		s.mu.Unlock()
		return nil
	}
	return e.id
}

func (c *tokenCache) put(sum *[32]byte, id *Identity, gen uint64, until int64) {
	s := &c.shards[sum[0]%cacheShards]
	s.mu.Lock()
	if _, ok := s.m[*sum]; !ok && len(s.m) >= c.perShard {
		for k := range s.m { // map order is random: an arbitrary victim
			delete(s.m, k)
			break
		}
	}
	s.m[*sum] = cacheEntry{id: id, gen: gen, until: until}
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
