package dispatch

import (
	"errors"
	"fmt"
	"github.com/covetpy/covetpy/workerproto"
	"time"

	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/covetpy/covetpy/shmring"
)

// Config tunes the dispatcher. The zero value is valid: every field documents its
// default.
type Config struct {
	// MaxInflight is the number of requests one worker may have at once (its
	// credits). Default 256: an asyncio worker serves I/O-bound handlers
	// concurrently, and 256 keeps one worker busy behind a few hundred
	// connections waiting on I/O while still bounding what a slow worker takes.
	MaxInflight int `config:"max_inflight" help:"requests one worker may have in flight (its credits); 0 = 256"`
	// QueueSize is the number of requests of one app that may wait for a worker
	// with credit. Beyond it requests get 503. Default 1024.
	QueueSize int `config:"queue_size" help:"requests of one app that may wait for a worker, then 503; 0 = 1024"`
	// QueueTimeout is how long a request may wait in the queue before it gets 503.
	// Default 5s.
	QueueTimeout time.Duration `config:"queue_timeout" help:"longest wait for a worker, then 503 with Retry-After; 0 = 5s"`
	// Timeout is the handler deadline for routes that set none. Past it the
	// request gets 504 and the worker a CANCEL. Default 30s.
	Timeout time.Duration `config:"timeout" help:"handler deadline for routes that set none, then 504 and CANCEL; 0 = 30s"`
	// HandshakeTimeout bounds the wait for a worker to map its segment and report
	// ready after WELCOME. Default 10s.
	HandshakeTimeout time.Duration `config:"handshake_timeout" help:"time a worker has to map its segment and report ready; 0 = 10s"`
	// Heartbeat is the interval the worker is told to refresh its heartbeat at
	// (WELCOME heartbeat_ms). Default 1s.
	Heartbeat time.Duration `config:"heartbeat" help:"interval workers refresh their heartbeat at; 0 = 1s"`
	// Geometry sizes each worker's rings. Default 1 MiB for requests and
	// DefaultResponseRing for responses.
	Geometry shmring.Geometry
	// Retries is how many other workers a request is tried on when a worker dies
	// before taking it off its ring. Default 2.
	Retries int `config:"retries" help:"other workers a request is tried on when its worker died before taking it; 0 = 2"`
	// Metrics, when set, receives the queue wait of every dispatched request and
	// is given the dispatcher's pool snapshot (PoolStats) to read in-flight
	// requests, queue depth, workers by state and ring occupancy from at scrape
	// time. nil records nothing.
	Metrics *metrics.Metrics
	// CompileRoute, when set, is called for each route of a manifest as it
	// is registered, and what it returns becomes the Route's Policy: the
	// gateway's middleware chain compiles the route's security options
	// (PROTOCOL.md 1.3) there, once. An error refuses the manifest (error
	// code manifest, naming the route). It must not block.
	CompileRoute func(app string, r *workerproto.Route) (any, error) `config:"-"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxInflight, 256)
	def(&c.QueueSize, 1024)
	def(&c.Retries, 2)
	dur(&c.QueueTimeout, 5*time.Second)
	dur(&c.Timeout, 30*time.Second)
	dur(&c.HandshakeTimeout, 10*time.Second)
	dur(&c.Heartbeat, time.Second)
	if c.Geometry.RespCapacity == 0 {
		c.Geometry.RespCapacity = DefaultResponseRing
	}
	c.Geometry = c.Geometry.WithDefaults()
	return c
}

// DefaultResponseRing is the default response ring: 4 MiB holds a few large bodies
// at once, so a worker writing them waits for space (and wakes the gateway for it)
// far less often than with 1 MiB (1 MiB responses at 64 connections: worker CPU
// 350 -> 240 us each, bench/RESULTS.md workload 1m).
const DefaultResponseRing = 4 << 20

// Validate reports the first field that is out of range, by name.
func (c Config) Validate() error {
	var errs []error
	if c.MaxInflight < 0 || c.MaxInflight > 1<<20 {
		errs = append(errs, fmt.Errorf("dispatch: max_inflight %d out of range 1..%d", c.MaxInflight, 1<<20))
	}
	if c.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("dispatch: queue_size %d is negative", c.QueueSize))
	}
	for name, d := range map[string]time.Duration{"queue_timeout": c.QueueTimeout, "timeout": c.Timeout,
		"handshake_timeout": c.HandshakeTimeout, "heartbeat": c.Heartbeat} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("dispatch: %s %v is negative", name, d))
		}
	}
	if c.Retries < 0 {
		errs = append(errs, fmt.Errorf("dispatch: retries %d is negative", c.Retries))
	}
	if err := c.Geometry.WithDefaults().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("dispatch: geometry: %w", err))
	}
	return errors.Join(errs...)
}
