package metrics

import "github.com/prometheus/client_golang/prometheus"

// grpcMetrics are the gateway's gRPC layer's (gateway/grpcgw).
type grpcMetrics struct {
	calls *prometheus.CounterVec // service, method, code
}

func (g *grpcMetrics) init() []prometheus.Collector {
	g.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "grpc", Name: "calls_total",
		Help: "Finished gRPC calls (native and gRPC-Web), by service and method (from the route table only: a call no route serves counts as unmatched/unmatched) and the status code the client got (OK, UNAVAILABLE, ...; CANCELLED for a client that went away).",
	}, []string{"service", "method", "code"})
	return []prometheus.Collector{g.calls}
}

// GRPCCall counts one finished gRPC call of service and method (a route's,
// or Unmatched for both when no route served it) with its status code's
// name. The labels must come from the route table, never from the request
// itself, so that a client cannot create series.
func (m *Metrics) GRPCCall(service, method, code string) {
	if m == nil {
		return
	}
	m.grpc.calls.WithLabelValues(service, method, code).Inc()
}
