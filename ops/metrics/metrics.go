// Package metrics holds the gateway's Prometheus metrics and its admin HTTP
// handler (/metrics, /healthz, /readyz).
//
// Everything is registered on a registry the caller passes in; nothing here
// touches prometheus.DefaultRegisterer. The package is a leaf: it imports only
// the standard library and client_golang, never gateway/ (the method names the
// method label keeps are listed here, in Methods, and gateway/http1's tests
// check that they match what its parser knows). A nil *Metrics is valid and
// records nothing, as are the nil handles its methods return, so instrumented
// code needs no "metrics enabled?" checks of its own.
//
// The hot path (one call per HTTP request) goes through a *Route handle that
// caches the resolved label children: once a route has seen a status code,
// Route.Observe allocates nothing.
package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "covet"

// Unmatched is the route label of requests no route served: 400, 404, 405,
// automatic OPTIONS, parse errors. Their app label is "".
const Unmatched = "unmatched"

// LatencyBuckets are the upper bounds, in seconds, of the request latency
// and queue wait histograms: 1-2.5-5 steps per decade from 100us to 10s,
// then 30s, so that p50, p95 and p99 interpolate within a factor of 2.5.
var LatencyBuckets = []float64{
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1, 2.5, 5,
	10, 30,
}

// Metrics is the gateway's set of metrics. Create it with New; a nil
// *Metrics records nothing.
type Metrics struct {
	requests  *prometheus.CounterVec   // app, route, method, status, protocol
	latency   *prometheus.HistogramVec // app, route, method
	queueWait *prometheus.HistogramVec // app
	restarts  *prometheus.CounterVec   // app, reason
	missed    *prometheus.CounterVec   // app
	recycles  *prometheus.CounterVec   // app, reason

	connsOpen     *prometheus.GaugeVec // protocol
	connsAccepted prometheus.Counter
	tlsFailures   prometheus.Counter
	bytesIn       prometheus.Counter
	bytesOut      prometheus.Counter

	pool     poolCollector
	limits   limitMetrics    // limits.go
	ws       wsMetrics       // ws.go
	security securityMetrics // security.go
	grpc     grpcMetrics     // grpc.go

	routes cowMap[routeKey, *Route]
	apps   cowMap[string, *App]
}

type routeKey struct{ app, route, method, protocol string }

// Protocol label values (requests_total, connections_open): HTTP/1.0 counts
// as ProtoHTTP1.
const (
	ProtoHTTP1 = "http/1.1"
	ProtoH2    = "h2"
	ProtoH3    = "h3"
)

// cowMap is a map read without locks and grown by copying: a lookup of a key
// that exists (once per request) takes no lock and allocates nothing, and an
// insert (once per new key) copies the map.
type cowMap[K comparable, V any] struct {
	mu sync.Mutex // serialises inserts
	p  atomic.Pointer[map[K]V]
}

// get returns k's value, creating it with mk on first use.
func (c *cowMap[K, V]) get(k K, mk func() V) V {
	if p := c.p.Load(); p != nil {
		if v, ok := (*p)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[K]V
	if p := c.p.Load(); p != nil {
		old = *p
	}
	if v, ok := old[k]; ok {
		return v
	}
	v := mk()
	next := make(map[K]V, len(old)+1)
	for kk, vv := range old {
		next[kk] = vv
	}
	next[k] = v
	c.p.Store(&next)
	return v
}

// New creates the metrics and registers them, with the Go runtime and process
// collectors, on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "HTTP requests answered, by app, route pattern, method, status (499: the client left before a response) and protocol (http/1.1, h2, h3).",
		}, []string{"app", "route", "method", "status", "protocol"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help:    "Time from a request's head being parsed to its response being written, by app, route pattern and method.",
			Buckets: LatencyBuckets,
		}, []string{"app", "route", "method"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "queue_wait_seconds",
			Help:    "Time each dispatched request waited for a worker with free capacity (0 when one was free), by app.",
			Buckets: LatencyBuckets,
		}, []string{"app"}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "worker", Name: "late_wakeups_total",
			Help: "Times the gateway's response-ring reader slept its whole timeout (10ms) and then found an answer waiting: the worker did not ring its doorbell in time, or the gateway did not get to run. 0 in a healthy system; by app.",
		}, []string{"app"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "worker", Name: "restarts_total",
			Help: "Worker processes restarted by the supervisor, by app and reason.",
		}, []string{"app", "reason"}),
		recycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "worker", Name: "recycles_total",
			Help: "Workers replaced on purpose (not after a failure), by app and reason.",
		}, []string{"app", "reason"}),
		connsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "connections_open",
			Help: "Client connections currently open, by protocol (http/1.1, h2, h3), from the moment it is known (after the TLS handshake).",
		}, []string{"protocol"}),
		connsAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "connections_accepted_total",
			Help: "Client connections accepted (TCP and QUIC).",
		}),
		tlsFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "tls_handshake_failures_total",
			Help: "TLS handshakes that failed (including plain HTTP sent to the TLS port).",
		}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "bytes_received_total",
			Help: "Bytes read from client connections.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "bytes_sent_total",
			Help: "Bytes written to client connections.",
		}),
	}
	m.pool.init()
	for _, c := range append([]prometheus.Collector{
		m.requests, m.latency, m.queueWait, m.missed, m.restarts, m.recycles,
		m.connsOpen, m.connsAccepted, m.tlsFailures, m.bytesIn, m.bytesOut, &m.pool,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, append(append(append(m.limits.init(), m.ws.init()...), m.security.init()...), m.grpc.init()...)...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Route is the pre-resolved handle of one (app, route, method): Observe
// records a request without resolving labels again. A nil *Route records
// nothing.
type Route struct {
	app, route, method, protocol string

	latency prometheus.Observer
	vec     *prometheus.CounterVec

	mu     sync.Mutex                      // serialises status inserts
	status atomic.Pointer[[]statusCounter] // copy on write
}

type statusCounter struct {
	code int
	c    prometheus.Counter
}

// Route returns the handle for requests of app matched by the route pattern
// route with method, over protocol (ProtoHTTP1, ProtoH2, ProtoH3). Use app "" and route Unmatched for requests no route
// served. Methods other than the nine registered ones are labelled "OTHER",
// so a client cannot make up label values. Handles are created once and
// shared: callers may cache them. Looking one up does not allocate once it
// exists.
func (m *Metrics) Route(app, route, method, protocol string) *Route {
	if m == nil {
		return nil
	}
	k := routeKey{app, route, MethodLabel(method), protocol}
	return m.routes.get(k, func() *Route {
		r := &Route{
			app: k.app, route: k.route, method: k.method, protocol: k.protocol,
			latency: m.latency.WithLabelValues(k.app, k.route, k.method),
			vec:     m.requests,
		}
		empty := []statusCounter{}
		r.status.Store(&empty)
		return r
	})
}

// Observe records one request answered with status after d.
func (r *Route) Observe(status int, d time.Duration) {
	if r == nil {
		return
	}
	r.counter(status).Inc()
	r.latency.Observe(d.Seconds())
}

func (r *Route) counter(status int) prometheus.Counter {
	for _, s := range *r.status.Load() {
		if s.code == status {
			return s.c
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.status.Load()
	for _, s := range old {
		if s.code == status {
			return s.c
		}
	}
	c := r.vec.WithLabelValues(r.app, r.route, r.method, strconv.Itoa(status), r.protocol)
	next := append(append(make([]statusCounter, 0, len(old)+1), old...), statusCounter{status, c})
	r.status.Store(&next)
	return c
}

// Methods are the request methods the method label keeps: those of RFC 9110
// section 9 and PATCH, the set gateway/http1.KnownMethod recognises (its tests
// check the two agree). Every other token is labelled "OTHER".
var Methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

// MethodLabel is the method label of a request with method m: m itself if it is
// one of Methods (case-sensitive, as methods are), else "OTHER", so that the
// label's values stay bounded. The returned strings are constants, safe to keep
// when m aliases a reused buffer.
func MethodLabel(m string) string {
	for _, k := range Methods {
		if m == k {
			return k
		}
	}
	return "OTHER"
}

// App is the pre-resolved handle of one app's dispatcher metrics. A nil *App
// records nothing.
type App struct {
	queueWait prometheus.Observer
	late      prometheus.Counter
}

// App returns the handle for app; handles are created once and shared.
func (m *Metrics) App(app string) *App {
	if m == nil {
		return nil
	}
	return m.apps.get(app, func() *App {
		return &App{queueWait: m.queueWait.WithLabelValues(app), late: m.missed.WithLabelValues(app)}
	})
}

// LateWakeup counts one response-ring sleep that lasted its whole timeout while
// an answer was waiting (covet_worker_late_wakeups_total).
func (a *App) LateWakeup() {
	if a == nil {
		return
	}
	a.late.Inc()
}

// QueueWait records how long one request waited for a worker (0: none).
func (a *App) QueueWait(d time.Duration) {
	if a == nil {
		return
	}
	a.queueWait.Observe(d.Seconds())
}

// WorkerRestarted counts one restart of a worker of app, for reason (a
// fixed word such as "exited", "killed", "protocol", "handshake", "spawn").
func (m *Metrics) WorkerRestarted(app, reason string) {
	if m == nil {
		return
	}
	m.restarts.WithLabelValues(app, reason).Inc()
}

// WorkerRecycled counts one worker of app replaced on purpose, for reason (a
// fixed word such as "max_requests" or "memory").
func (m *Metrics) WorkerRecycled(app, reason string) {
	if m == nil {
		return
	}
	m.recycles.WithLabelValues(app, reason).Inc()
}

// ConnAccepted counts a client connection accepted (a QUIC one included).
func (m *Metrics) ConnAccepted() {
	if m == nil {
		return
	}
	m.connsAccepted.Inc()
}

// ConnOpened counts a client connection open over protocol, once known.
func (m *Metrics) ConnOpened(protocol string) {
	if m == nil {
		return
	}
	m.connsOpen.WithLabelValues(protocol).Inc()
}

// ConnClosed counts a client connection over protocol closed.
func (m *Metrics) ConnClosed(protocol string) {
	if m == nil {
		return
	}
	m.connsOpen.WithLabelValues(protocol).Dec()
}

// TLSHandshakeFailed counts a failed TLS handshake.
func (m *Metrics) TLSHandshakeFailed() {
	if m == nil {
		return
	}
	m.tlsFailures.Inc()
}

// BytesIn counts n bytes read from clients.
func (m *Metrics) BytesIn(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.bytesIn.Add(float64(n))
}

// BytesOut counts n bytes written to clients.
func (m *Metrics) BytesOut(n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.bytesOut.Add(float64(n))
}
