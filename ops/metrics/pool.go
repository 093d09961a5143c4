package metrics

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Worker states, the values of the state label of covet_workers.
const (
	StateStarting = "starting" // attached, handshake (WELCOME, segment mapping) not finished
	StateReady    = "ready"    // taking requests
	StateDraining = "draining" // finishing its requests; takes no new ones
)

// PoolStats is a snapshot of the dispatcher's worker pools, read at scrape
// time through the function given to SetPoolSource.
type PoolStats struct {
	Apps    []AppStats
	Workers []WorkerStats
}

// AppStats is one app's pool.
type AppStats struct {
	App      string
	InFlight int // requests handed to a worker and not yet answered
	Queued   int // requests waiting for a worker with free capacity

	Starting, Ready, Draining int // workers in each state
}

// WorkerStats is one ready worker's rings.
type WorkerStats struct {
	App    string
	Worker int64 // the dispatcher's worker (session) id

	RequestRingUsed, RequestRingSize   uint64 // bytes
	ResponseRingUsed, ResponseRingSize uint64 // bytes
}

// SetPoolSource installs the function the pool gauges are read from at
// scrape time (the dispatcher's snapshot). fn must be safe to call from any
// goroutine. A later call replaces the source.
func (m *Metrics) SetPoolSource(fn func() PoolStats) {
	if m == nil {
		return
	}
	m.pool.mu.Lock()
	m.pool.source = fn
	m.pool.mu.Unlock()
}

// poolCollector turns a PoolStats snapshot into gauges on every scrape: no
// bookkeeping on the request path, and series of workers that are gone
// vanish by themselves.
type poolCollector struct {
	mu     sync.Mutex
	source func() PoolStats

	inflight, queued, workers, ringUsed, ringSize *prometheus.Desc
}

func (c *poolCollector) init() {
	name := func(sub, n string) string { return prometheus.BuildFQName(namespace, sub, n) }
	c.inflight = prometheus.NewDesc(name("", "requests_in_flight"),
		"Requests handed to a worker and not yet answered, by app.", []string{"app"}, nil)
	c.queued = prometheus.NewDesc(name("", "queue_depth"),
		"Requests waiting for a worker with free capacity, by app.", []string{"app"}, nil)
	c.workers = prometheus.NewDesc(name("", "workers"),
		"Workers by app and state (starting, ready, draining).", []string{"app", "state"}, nil)
	c.ringUsed = prometheus.NewDesc(name("ring", "bytes_used"),
		"Bytes in use in a worker's request or response ring.", []string{"app", "worker", "ring"}, nil)
	c.ringSize = prometheus.NewDesc(name("ring", "bytes_capacity"),
		"Capacity of a worker's request or response ring.", []string{"app", "worker", "ring"}, nil)
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.inflight
	ch <- c.queued
	ch <- c.workers
	ch <- c.ringUsed
	ch <- c.ringSize
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	fn := c.source
	c.mu.Unlock()
	if fn == nil {
		return
	}
	st := fn()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, a := range st.Apps {
		gauge(c.inflight, float64(a.InFlight), a.App)
		gauge(c.queued, float64(a.Queued), a.App)
		gauge(c.workers, float64(a.Starting), a.App, StateStarting)
		gauge(c.workers, float64(a.Ready), a.App, StateReady)
		gauge(c.workers, float64(a.Draining), a.App, StateDraining)
	}
	for _, w := range st.Workers {
		id := strconv.FormatInt(w.Worker, 10)
		gauge(c.ringUsed, float64(w.RequestRingUsed), w.App, id, "request")
		gauge(c.ringSize, float64(w.RequestRingSize), w.App, id, "request")
		gauge(c.ringUsed, float64(w.ResponseRingUsed), w.App, id, "response")
		gauge(c.ringSize, float64(w.ResponseRingSize), w.App, id, "response")
	}
}
