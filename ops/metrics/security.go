package metrics

import "github.com/prometheus/client_golang/prometheus"

// securityMetrics count what the gateway's middleware chain decides before a
// request reaches a worker: authentication, rate limits, per-client limits,
// CORS preflights and compression.
type securityMetrics struct {
	auth         *prometheus.CounterVec // decision, reason
	jwksFetches  *prometheus.CounterVec // result
	rateLimited  *prometheus.CounterVec // app
	storeErrors  *prometheus.CounterVec // mode
	clientRefuse *prometheus.CounterVec // reason
	preflights   *prometheus.CounterVec // result
	compressed   *prometheus.CounterVec // encoding
	proxyRefuse  *prometheus.CounterVec // reason
}

func (s *securityMetrics) init() []prometheus.Collector {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	s.auth = cv("auth_decisions_total", "Bearer-token decisions of the gateway: decision allow or deny, with the reason (ok, missing, expired, bad_signature, insufficient_scope, ...).", "decision", "reason")
	s.jwksFetches = cv("jwks_fetches_total", "Fetches of auth_jwks_url, by result: ok, error (the keys already held are kept: stale-while-error).", "result")
	s.rateLimited = cv("rate_limited_total", "Requests answered 429 by a rate limit, by app.", "app")
	s.storeErrors = cv("rate_limit_store_errors_total", "Rate-limit decisions the shared store (rate_limit_redis) could not make, by what the gateway did: open (admitted) or closed (answered 503).", "mode")
	s.clientRefuse = cv("client_refusals_total", "Connections or requests refused by a per-client limit: conns_per_ip (max_conns_per_ip) or request_rate_per_ip (the per-IP request rate).", "reason")
	s.preflights = cv("cors_preflights_total", "CORS preflight requests the gateway answered, by result: allowed or denied.", "result")
	s.compressed = cv("compressed_responses_total", "Responses the gateway compressed, by encoding: gzip, br or zstd.", "encoding")
	s.proxyRefuse = cv("proxy_protocol_refusals_total", "Connections closed because they did not begin with a valid PROXY protocol header (proxy_protocol), by reason: invalid (not a PROXY header), timeout (none within read_header_timeout) or closed (the peer left, the read failed or the gateway closed first).", "reason")
	return []prometheus.Collector{s.auth, s.jwksFetches, s.rateLimited, s.storeErrors, s.clientRefuse, s.preflights, s.compressed, s.proxyRefuse}
}

// AuthDecision counts a bearer-token decision: decision "allow" or "deny",
// reason a fixed word (never anything from the token).
func (m *Metrics) AuthDecision(decision, reason string) {
	if m == nil {
		return
	}
	m.security.auth.WithLabelValues(decision, reason).Inc()
}

// JWKSFetch counts a fetch of the JWKS URL: result "ok" or "error".
func (m *Metrics) JWKSFetch(result string) {
	if m == nil {
		return
	}
	m.security.jwksFetches.WithLabelValues(result).Inc()
}

// RateLimited counts a request of app answered 429.
func (m *Metrics) RateLimited(app string) {
	if m == nil {
		return
	}
	m.security.rateLimited.WithLabelValues(app).Inc()
}

// RateLimitStoreError counts a decision the shared rate-limit store could not
// make; mode is what was done instead: "open" or "closed".
func (m *Metrics) RateLimitStoreError(mode string) {
	if m == nil {
		return
	}
	m.security.storeErrors.WithLabelValues(mode).Inc()
}

// ClientRefused counts a connection or request refused by a per-client limit:
// reason "conns_per_ip" or "request_rate_per_ip".
func (m *Metrics) ClientRefused(reason string) {
	if m == nil {
		return
	}
	m.security.clientRefuse.WithLabelValues(reason).Inc()
}

// ProxyProtocolRefused counts a connection closed for want of a valid PROXY
// protocol header: reason "invalid", "timeout" or "closed".
func (m *Metrics) ProxyProtocolRefused(reason string) {
	if m == nil {
		return
	}
	m.security.proxyRefuse.WithLabelValues(reason).Inc()
}

// CORSPreflight counts a preflight answered by the gateway: result "allowed" or
// "denied".
func (m *Metrics) CORSPreflight(result string) {
	if m == nil {
		return
	}
	m.security.preflights.WithLabelValues(result).Inc()
}

// Compressed counts a response compressed with encoding.
func (m *Metrics) Compressed(encoding string) {
	if m == nil {
		return
	}
	m.security.compressed.WithLabelValues(encoding).Inc()
}
