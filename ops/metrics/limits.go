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
	budgetWaits   prometheus.Counter
	budgetInUse   prometheus.GaugeFunc
	budgetSource  atomic.Pointer[func() int64]
	slowWrites    prometheus.Counter
	memoryRelease prometheus.Counter
}

func (l *limitMetrics) init() []prometheus.Collector {
	l.connsShed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "connections_shed_total",
		Help: "Client connections closed to stay within max_connections, by reason: idle (the longest-idle keep-alive connection, closed to make room) or refused (a new connection closed at once because every open one was busy).",
	}, []string{"reason"})
	l.budgetShed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "response_budget_shed_total",
		Help: "Requests answered 503 because the response buffer budget (max_buffered_response_bytes) stayed spent for response_budget_wait.",
	})
	l.budgetWaits = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "response_budget_waits_total",
		Help: "Requests that had to wait for the response buffer budget before they were dispatched.",
	})
	l.budgetInUse = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "response_budget_reserved_bytes",
		Help: "Response buffer budget (max_buffered_response_bytes) reserved by the requests being served: the most their responses may hold in the gateway.",
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
	return []prometheus.Collector{l.connsShed, l.budgetShed, l.budgetWaits, l.budgetInUse, l.slowWrites, l.memoryRelease}
}

// ConnShed counts a connection closed to stay within max_connections, for
// reason ShedIdle or ShedRefused.
func (m *Metrics) ConnShed(reason string) {
	if m == nil {
		return
	}
	m.limits.connsShed.WithLabelValues(reason).Inc()
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

// SetBudgetSource installs the function covet_response_budget_reserved_bytes
// is read from at scrape time. fn must be safe to call from any goroutine.
func (m *Metrics) SetBudgetSource(fn func() int64) {
	if m == nil {
		return
	}
	m.limits.budgetSource.Store(&fn)
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
