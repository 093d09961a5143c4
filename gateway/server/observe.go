package server

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/ops/metrics"
)

// statusClientGone is recorded for a request whose client left (or whose
// connection broke) before any response was written: nginx's 499.
const statusClientGone = 499

// obsCache is a connection's one-entry cache of the metrics handle for the
// last (route, method) it answered: a keep-alive client repeating a request
// skips even the lock-free map lookup.
type obsCache struct {
	route  *dispatch.Route // nil: unmatched
	method string
	h      *metrics.Route
}

// observe records the response to it, just written, in the metrics and the
// access log. It runs on the writer goroutine, only when either is on.
func (c *conn) observe(it item) {
	s := c.srv
	s.metrics.BytesOut(c.wrote)
	if it.cont {
		return // an interim 100 Continue: its request is recorded when answered
	}
	status := c.status
	if status == 0 {
		status = statusClientGone
	}
	start, method := it.start, ""
	var rt *dispatch.Route
	if x := it.x; x != nil {
		start, method, rt = x.start, x.method, x.route
	}
	d := time.Since(start)
	if s.metrics != nil {
		oc := &c.obs
		if oc.h == nil || oc.route != rt || oc.method != method {
			app, pattern := "", metrics.Unmatched
			if rt != nil {
				app, pattern = rt.App, rt.Pattern
			}
			// method is kept: methodString's strings are constants or copies.
			*oc = obsCache{route: rt, method: method, h: s.metrics.Route(app, pattern, method, metrics.ProtoHTTP1)}
		}
		oc.h.Observe(status, d)
	}
	if s.access != nil {
		c.accessLog(it, status, d, rt)
	}
}

// accessLog writes one record for the response to it. The request's strings
// alias the exchange's buffers, which are reused once this returns, so they
// are copied: a handler may keep the record.
func (c *conn) accessLog(it item, status int, d time.Duration, rt *dispatch.Route) {
	var method, path, rid, app, route string
	proto := "HTTP/1.1"
	if x := it.x; x != nil {
		method, path, rid = x.method, strings.Clone(x.path), strings.Clone(x.rid)
		if x.req.Minor == 0 {
			proto = "HTTP/1.0"
		}
	}
	if rt != nil {
		app, route = rt.App, rt.Pattern
	}
	c.srv.access.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("method", method),
		slog.String("path", path),
		slog.Int("status", status),
		slog.Int64("bytes", c.wrote),
		slog.Duration("duration", d),
		slog.String("request_id", rid),
		slog.String("app", app),
		slog.String("route", route),
		slog.String("client", c.remote),
		slog.String("protocol", proto),
	)
}

// protoLabels maps a Handler's proto to its metrics label and its access
// log name.
var protoLabels = map[string][2]string{
	"2": {metrics.ProtoH2, "HTTP/2"},
	"3": {metrics.ProtoH3, "HTTP/3"},
}

// observeStream records one HTTP/2 or HTTP/3 response (Handler), as
// observe does for HTTP/1.1; written counts body bytes only.
func (s *Server) observeStream(proto, method, path, rid, client string, rt *dispatch.Route, status int, written int64, d time.Duration) {
	if status == 0 {
		status = statusClientGone
	}
	s.metrics.BytesOut(written)
	labels := protoLabels[proto]
	app, pattern := "", metrics.Unmatched
	if rt != nil {
		app, pattern = rt.App, rt.Pattern
	}
	s.metrics.Route(app, pattern, method, labels[0]).Observe(status, d)
	if s.access == nil {
		return
	}
	route := ""
	if rt != nil {
		route = rt.Pattern
	}
	s.access.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("method", method),
		slog.String("path", strings.Clone(path)),
		slog.Int("status", status),
		slog.Int64("bytes", written),
		slog.Duration("duration", d),
		slog.String("request_id", strings.Clone(rid)),
		slog.String("app", app),
		slog.String("route", route),
		slog.String("client", client),
		slog.String("protocol", labels[1]),
	)
}
