// Package ratelimit decides whether a request is within its rate limit: a GCRA
// (generic cell rate algorithm) per key, held in memory ([Local]) or shared by
// several gateways through Redis ([Limiter] with rate_limit_redis).
//
// A [Limit] of N per period admits a burst of N requests at once, then one every
// period/N: "5/minute" admits 5 requests straight away, then one every 12 seconds,
// and a client that waits a whole minute has its 5 back. GCRA keeps one number per
// key, the theoretical arrival time (TAT) of the next request: a request at time t
// with emission interval T = period/N is admitted when t >= max(TAT, t) + T - N*T,
// and then TAT becomes max(TAT, t) + T. This is a token bucket of N tokens refilled
// at N per period, held without a timer and without a refill step. A refused request
// costs nothing: it does not move TAT.
//
// A [Decision] carries what the client is told: the RateLimit-Policy and RateLimit
// fields of draft-ietf-httpapi-ratelimit-headers-10, and Retry-After on refusal
// ([Decision.AppendHeaders]).
//
// With Redis each decision is one Lua script, atomic, on Redis' clock (TIME), the
// key prefixed [KeyPrefix] and expiring when the limit is wholly restored. A
// decision Redis cannot make within rate_limit_redis_timeout admits (open) or
// refuses (closed) and is counted; after a few failures in a row a circuit breaker
// stops asking Redis for a growing pause (100 ms doubling to 5 s, one probe at a
// time), so a dead server costs no request a timeout. docs/security.md
// has the whole story.
package ratelimit
