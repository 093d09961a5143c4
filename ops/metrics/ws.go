package metrics

import "github.com/prometheus/client_golang/prometheus"

// wsMetrics are the WebSocket front end's: sessions open and messages.
type wsMetrics struct {
	open     *prometheus.GaugeVec // protocol
	messages *prometheus.CounterVec
	in, out  prometheus.Counter
}

func (w *wsMetrics) init() []prometheus.Collector {
	w.open = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "websocket", Name: "sessions_open",
		Help: "WebSocket sessions currently open (from the handshake's 101 or 200 to the connection's close), by protocol they run over (http/1.1, h2). An HTTP/1.1 session's connection also counts in connections_open.",
	}, []string{"protocol"})
	w.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "websocket", Name: "messages_total",
		Help: "Whole WebSocket messages, by direction: in (read from clients, validated), out (written to clients).",
	}, []string{"direction"})
	w.in = w.messages.WithLabelValues("in")
	w.out = w.messages.WithLabelValues("out")
	return []prometheus.Collector{w.open, w.messages}
}

// WSOpened counts a WebSocket session open over protocol (ProtoHTTP1,
// ProtoH2).
func (m *Metrics) WSOpened(protocol string) {
	if m == nil {
		return
	}
	m.ws.open.WithLabelValues(protocol).Inc()
}

// WSClosed counts a WebSocket session over protocol closed.
func (m *Metrics) WSClosed(protocol string) {
	if m == nil {
		return
	}
	m.ws.open.WithLabelValues(protocol).Dec()
}

// WSMessage counts one whole WebSocket message, read from a client (in) or
// written to one.
func (m *Metrics) WSMessage(in bool) {
	if m == nil {
		return
	}
	if in {
		m.ws.in.Inc()
	} else {
		m.ws.out.Inc()
	}
}
