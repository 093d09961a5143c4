package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a connection is shed (the reason label of
// covet_connections_shed_total).
const (
	ShedIdle    = "idle"    // a keep-alive connection waiting for a request, closed to make room
	ShedRefused = "refused" // a new connection closed at once: every open one was busy
)

// limitMetrics are the counters of the gateway's bounds under hostile or
// overloading clients: max_connections, the response buffer budget, the
// minimum write rate and the release of memory after a burst.
type limitMetrics struct {
	connsShed     *prometheus.CounterVec // reason
	budgetShed    prometheus.Counter
	readersShed   prometheus.Counter
	budgetWaits   prometheus.Counter
	budgetInUse   prometheus.GaugeFunc
	budgetSource  atomic.Pointer[func() int64]
	slowWrites    prometheus.Counter
	memoryRelease prometheus.Counter
	engineInfo    *prometheus.GaugeVec
}

func (l *limitMetrics) init() []prometheus.Collector {
	l.connsShed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "connections_shed_total",
		Help: "Client connections closed to stay within max_connections, by reason: idle (the longest-idle keep-alive connection, closed to make room) or refused (a new connection closed at once because every open one was busy).",
	}, []string{"reason"})
	l.budgetShed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "response_budget_shed_total",
		Help: "Requests answered 503 because the response bytes held stayed over max_buffered_response_bytes for response_budget_wait.",
	})
	l.readersShed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "slow_readers_shed_total",
		Help: "Connections closed mid-response because the response bytes held passed max_buffered_response_bytes and their writes had been blocked longest.",
	})
	l.budgetWaits = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "response_budget_waits_total",
		Help: "Requests that waited before dispatch because the response bytes held were over max_buffered_response_bytes.",
	})
	l.budgetInUse = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "response_bytes_held",
		Help: "Response body bytes held in the gateway between the workers and slow clients (whole 64 KiB chunks), bounded by max_buffered_response_bytes.",
	}, func() float64 {
		if fn := l.budgetSource.Load(); fn != nil {
			return float64((*fn)())
		}
		return 0
	})
	l.slowWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "slow_writes_total",
		Help: "Responses cut, and their connections closed, because the client read them slower than min_write_rate after write_timeout of grace.",
	})
	l.memoryRelease = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "memory_releases_total",
		Help: "Times the gateway returned freed memory to the operating system after a burst of buffered responses ended.",
	})
	l.engineInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "engine_info",
		Help: "1 for the I/O engine the HTTP/1.1 front end runs on: uring (io_uring) or netpoll (Go's poller; also where io_uring is refused).",
	}, []string{"engine"})
	return []prometheus.Collector{l.connsShed, l.budgetShed, l.readersShed, l.budgetWaits, l.budgetInUse, l.slowWrites, l.memoryRelease, l.engineInfo}
}

// ConnShed counts a connection closed to stay within max_connections, for
// reason ShedIdle or ShedRefused.
func (m *Metrics) ConnShed(reason string) {
	if m == nil {
		return
	}
	m.limits.connsShed.WithLabelValues(reason).Inc()
}

// SetEngine records the I/O engine in use (covet_engine_info).
func (m *Metrics) SetEngine(name string) {
	if m == nil {
		return
	}
	m.limits.engineInfo.Reset()
	m.limits.engineInfo.WithLabelValues(name).Set(1)
}

// BudgetWaited counts a request that waited for the response buffer budget.
func (m *Metrics) BudgetWaited() {
	if m == nil {
		return
	}
	m.limits.budgetWaits.Inc()
}

// BudgetShed counts a request refused (503) for want of response buffer
// budget.
func (m *Metrics) BudgetShed() {
	if m == nil {
		return
	}
	m.limits.budgetShed.Inc()
}

// SetBudgetSource installs the function covet_response_bytes_held is read
// from at scrape time. fn must be safe to call from any goroutine.
func (m *Metrics) SetBudgetSource(fn func() int64) {
	if m == nil {
		return
	}
	m.limits.budgetSource.Store(&fn)
}

// SlowReaderShed counts a connection closed mid-response to bring the
// response bytes held back within max_buffered_response_bytes.
func (m *Metrics) SlowReaderShed() {
	if m == nil {
		return
	}
	m.limits.readersShed.Inc()
}

// SlowWrite counts a response cut for falling below min_write_rate.
func (m *Metrics) SlowWrite() {
	if m == nil {
		return
	}
	m.limits.slowWrites.Inc()
}

// MemoryReleased counts one return of freed memory to the operating system.
func (m *Metrics) MemoryReleased() {
	if m == nil {
		return
	}
	m.limits.memoryRelease.Inc()
}
