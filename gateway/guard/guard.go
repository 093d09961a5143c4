package guard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/covetpy/covetpy/gateway/audit"
	"github.com/covetpy/covetpy/gateway/auth"
	"github.com/covetpy/covetpy/gateway/clientip"
	"github.com/covetpy/covetpy/gateway/compress"
	"github.com/covetpy/covetpy/gateway/cors"
	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/gateway/ratelimit"
	"github.com/covetpy/covetpy/gateway/secheaders"
	"github.com/covetpy/covetpy/ops/metrics"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// Config is the chain's settings: each package's own, and the per-IP request
// rate. Every field is a key of the gateway's one config.
type Config struct {
	Auth      auth.Config
	RateLimit ratelimit.Config
	CORS      cors.Config
	Headers   secheaders.Config
	Compress  compress.Config
	ClientIP  clientip.Config
	Audit     audit.Config
	// IPRequestRate bounds the requests one client address may make across
	// all routes (after trusted_proxies), as a limit like "100/second"; the
	// gateway answers 429 past it (covet_client_refusals_total
	// {reason="request_rate_per_ip"}). Kept in memory, per gateway.
	IPRequestRate string `config:"ip_request_rate" help:"requests one client IP may make across all routes, e.g. 200/second, then 429; empty = no limit"`
	// PathPolicies set the security options for every request under a path
	// prefix, in place of its route's: "PREFIX=OPTIONS", the options separated
	// by spaces and spelt as `covet routes` shows them (auth, roles=a|b,
	// scopes=a|b, rate=10/minute, key=subject, cors=off, headers=off,
	// compress=off). The longest matching
	// prefix wins; "/admin" covers /admin and /admin/..., not /administrator.
	// Meant for apps whose routes carry no options: a hosted ASGI or WSGI
	// app's one catch-all route.
	PathPolicies []string `config:"path_policy" help:"security options for a path prefix, PREFIX=OPTIONS, e.g. '/admin=auth roles=admin rate=10/minute' (the longest prefix wins over the route's own)"`
}

// Backend is what the chain wraps and itself is: *dispatch.Dispatcher.
type Backend interface {
	Lookup(method, path string, ps *router.Params) (router.Match[*dispatch.Route], router.Status)
	Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error
	ServeWebSocket(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, peer dispatch.WebSocketPeer) error
}

// Chain is the middleware chain in front of a Backend.
type Chain struct {
	next     Backend
	metrics  *metrics.Metrics
	log      *slog.Logger
	verifier *auth.Verifier // nil: no key source configured
	limiter  *ratelimit.Limiter
	ipLocal  *ratelimit.Local // nil: no ip_request_rate
	ipRate   ratelimit.Limit
	clients  *clientip.Resolver // nil: no trusted proxies
	comp     *compress.Compressor
	audit    *audit.Log
	def      *policy // the defaults, for routes compiled without options
	// preflight is the route Lookup returns for an OPTIONS request that no
	// route answers, while CORS is on for some route: Serve answers it.
	preflight *dispatch.Route
	corsOn    atomic.Bool
	paths     []pathPolicy // path_policy, longest prefix first
}

// New builds the chain in front of next. Errors name the setting. log is the
// gateway's logger: each part logs under its own component.
func New(cfg Config, next Backend, m *metrics.Metrics, log *slog.Logger) (c *Chain, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c = &Chain{next: next, metrics: m, log: log.With("component", "guard"), preflight: &dispatch.Route{Pattern: metrics.Unmatched}}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	if cfg.IPRequestRate != "" {
		if c.ipRate, err = ratelimit.ParseLimit(cfg.IPRequestRate); err != nil {
			return c, fmt.Errorf("ip_request_rate: %w", err)
		}
		if c.ipRate.N > 0 {
			c.ipLocal = ratelimit.NewLocal(cfg.RateLimit.WithDefaults().MaxKeys)
		}
	}
	if c.clients, err = clientip.New(cfg.ClientIP); err != nil {
		return c, err
	}
	if c.verifier, err = auth.New(cfg.Auth, m, log.With("component", "auth")); err != nil {
		return c, err
	}
	if c.limiter, err = ratelimit.New(cfg.RateLimit, m, log.With("component", "ratelimit")); err != nil {
		return c, err
	}
	if c.comp, err = compress.New(cfg.Compress, m); err != nil {
		return c, err
	}
	if c.audit, err = audit.Open(cfg.Audit, log.With("component", "audit")); err != nil {
		return c, err
	}
	c.def = &policy{compress: true}
	if c.def.cors, err = cors.New(cfg.CORS); err != nil {
		return c, err
	}
	if c.def.headers, err = secheaders.New(cfg.Headers); err != nil {
		return c, err
	}
	c.def.limit, c.def.limitKey = c.limiter.Default(), c.limiter.DefaultKey()
	c.corsOn.Store(c.def.cors != nil)
	if c.paths, err = c.parsePathPolicies(cfg.PathPolicies); err != nil {
		return c, err
	}
	return c, nil
}

// Close releases what the chain holds: the JWKS refresher, the Redis client,
// the audit log (flushed).
func (c *Chain) Close() error {
	var errs []error
	if c.verifier != nil {
		c.verifier.Close()
	}
	if c.limiter != nil {
		errs = append(errs, c.limiter.Close())
	}
	errs = append(errs, c.audit.Close())
	return errors.Join(errs...)
}

// policy is a route's compiled security options: its dispatch.Route's Policy.
type policy struct {
	auth     bool
	roles    []string
	scopes   []string
	limit    ratelimit.Limit
	limitKey ratelimit.Key
	bucket   string // "app METHOD pattern|": the route's share of a rate-limit key
	cors     *cors.Policy
	headers  *secheaders.Set
	compress bool
}

// CompileRoute compiles r's security options (PROTOCOL.md 1.3) into the
// policy its dispatch.Route carries; it is dispatch.Config.CompileRoute.
func (c *Chain) CompileRoute(app string, r *workerproto.Route) (any, error) {
	o := r.Options
	p := &policy{
		limit: c.def.limit, limitKey: c.def.limitKey, cors: c.def.cors, headers: c.def.headers, compress: true,
		bucket: app + " " + r.Method + " " + r.Path + "|",
	}
	p.auth, _ = o["auth"].(bool)
	p.roles, p.scopes = r.Roles(), r.Scopes()
	if !p.auth && (len(p.roles) > 0 || len(p.scopes) > 0) {
		return nil, errors.New("roles and scopes need auth true")
	}
	if p.auth && c.verifier == nil {
		return nil, errors.New("auth needs the gateway's auth_jwks_file or auth_jwks_url to be set")
	}
	var err error
	if s, ok := o["rate_limit"].(string); ok {
		if p.limit, err = ratelimit.ParseLimit(s); err != nil {
			return nil, fmt.Errorf("rate_limit: %w", err)
		}
	}
	if s, ok := o["rate_limit_key"].(string); ok {
		if p.limitKey, err = ratelimit.ParseKey(s); err != nil {
			return nil, fmt.Errorf("rate_limit_key: %w", err)
		}
	}
	if p.cors, err = cors.ForRoute(c.def.cors, o["cors"]); err != nil {
		return nil, err
	}
	if p.headers, err = c.def.headers.ForRoute(o["security_headers"]); err != nil {
		return nil, err
	}
	if b, ok := o["compress"].(bool); ok {
		p.compress = b
	}
	if p.cors != nil {
		c.corsOn.Store(true)
	}
	return p, nil
}

// policyOf is the policy a request to rt at path (raw) is served under: the
// longest path_policy covering path, else rt's own.
func (c *Chain) policyOf(rt *dispatch.Route, path string) *policy {
	if len(c.paths) > 0 {
		if p := c.pathPolicyFor(path); p != nil {
			return p
		}
	}
	return c.routePolicy(rt)
}

// routePolicy is rt's own policy (the defaults for a route compiled without
// options), path_policy aside.
func (c *Chain) routePolicy(rt *dispatch.Route) *policy {
	if p, ok := rt.Policy.(*policy); ok {
		return p
	}
	return c.def
}

// Lookup routes as the backend does, except that an OPTIONS request no route
// answers goes to the chain's preflight route while CORS is on anywhere.
func (c *Chain) Lookup(method, path string, ps *router.Params) (router.Match[*dispatch.Route], router.Status) {
	m, st := c.next.Lookup(method, path, ps)
	if st == router.StatusOptions && c.corsOn.Load() {
		return router.Match[*dispatch.Route]{Value: c.preflight, Pattern: c.preflight.Pattern, Allow: m.Allow}, router.StatusFound
	}
	return m, st
}

// Serve runs the chain for one request and, unless the chain answers it
// itself, hands it to the backend.
func (c *Chain) Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error {
	h := &req.Head
	p := c.policyOf(rt, h.Path)
	if done, err := c.fromClient(h, p, w); done {
		return err
	}
	if (rt == c.preflight || p.cors != nil) && cors.IsPreflight(h.Method, h.Headers) {
		return c.servePreflight(h, w)
	}
	if rt == c.preflight { // a plain OPTIONS no route answers
		return c.answerOptions(h, p, w)
	}
	rl, done, err := c.admit(ctx, rt, h, p, w)
	if done {
		return err
	}
	gw := c.wrap(h, p, w, rl, nil)
	if gw == nil {
		return c.next.Serve(ctx, rt, req, w)
	}
	defer gw.release()
	err = c.next.Serve(ctx, rt, req, gw)
	if err == nil {
		err = gw.finish()
	}
	return err
}

// ServeWebSocket runs the chain's request checks (client address, per-IP
// rate, authentication, rate limit) before the session is handed on; a
// refusal is answered as HTTP before the upgrade.
func (c *Chain) ServeWebSocket(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, peer dispatch.WebSocketPeer) error {
	h := &req.Head
	p := c.policyOf(rt, h.Path)
	if done, err := c.fromClient(h, p, peer); done {
		return err
	}
	if p.cors != nil && !sameOrAllowedOrigin(h, p) {
		c.metrics.CORSPreflight("denied")
		return c.answer(h, p, peer, 403, nil)
	}
	if _, done, err := c.admit(ctx, rt, h, p, peer); done {
		return err
	}
	return c.next.ServeWebSocket(ctx, rt, req, peer)
}

// sameOrAllowedOrigin reports whether a WebSocket upgrade may go on under
// the route's CORS policy: it has no Origin (not a browser), its Origin is the
// request's own (scheme and Host), or the policy allows it. The CORS protocol
// does not cover WebSockets, so without this check any page could open one
// with the user's cookies (cross-site WebSocket hijacking).
func sameOrAllowedOrigin(h *workerproto.RequestHead, p *policy) bool {
	o := header(h.Headers, "origin")
	if o == nil {
		return true
	}
	host := header(h.Headers, "host") // HTTP/2's :authority travels as host too
	if s, rest, ok := bytes.Cut(o, []byte("://")); ok && host != nil && string(s) == h.Scheme && bytes.EqualFold(rest, host) {
		return true
	}
	return p.cors.AllowsOrigin(o)
}

// fromClient settles the client address (trusted proxies) and applies the
// per-IP request rate; done reports that it answered the request (429).
func (c *Chain) fromClient(h *workerproto.RequestHead, p *policy, w dispatch.ResponseWriter) (done bool, err error) {
	if c.clients != nil {
		h.Client = c.clients.Client(h.Client, h.Headers)
	}
	return c.ipRefused(h, p, w)
}

// admit authenticates the request (its identity goes to the worker in h)
// and applies the route's rate limit; done reports that it answered the
// request (401, 403, 429, 503), rl is the limit's decision otherwise.
func (c *Chain) admit(ctx context.Context, rt *dispatch.Route, h *workerproto.RequestHead, p *policy, w dispatch.ResponseWriter) (rl ratelimit.Decision, done bool, err error) {
	id, done, err := c.authenticate(rt, h, p, w)
	if done {
		return rl, true, err
	}
	if id != nil {
		h.Auth = &workerproto.Auth{Subject: id.Subject, Claims: id.Claims, Roles: id.Roles, Scopes: id.Scopes}
	}
	if p.limit.N > 0 {
		return c.rateLimit(ctx, rt, h, p, id, w)
	}
	return rl, false, nil
}

// ipRefused applies ip_request_rate; refused reports that it answered.
func (c *Chain) ipRefused(h *workerproto.RequestHead, p *policy, w dispatch.ResponseWriter) (refused bool, err error) {
	if c.ipLocal == nil {
		return false, nil
	}
	d := c.ipLocal.Allow(hostOf(h.Client), c.ipRate, time.Now())
	if d.Allowed {
		return false, nil
	}
	c.metrics.ClientRefused("request_rate_per_ip")
	return true, c.answer(h, p, w, 429, d.AppendHeaders(nil))
}

// hostOf is the address part of an "ip:port" client.
func hostOf(client string) string {
	if host, _, err := net.SplitHostPort(client); err == nil {
		return host
	}
	return client
}

// header returns the value of the request's first field named name (lower
// case), compared without regard to case; nil when absent.
func header(hs []workerproto.Header, name string) []byte {
	for i := range hs {
		if workerproto.NameIs(hs[i].Name, name) {
			return hs[i].Value
		}
	}
	return nil
}

var (
	nameContentType     = []byte("content-type")
	nameAllow           = []byte("allow")
	nameWWWAuthenticate = []byte("www-authenticate")
	nameRetryAfter      = []byte("retry-after")
	valTextPlain        = []byte("text/plain; charset=utf-8")
)

// answer writes a response of the chain's own: status, extra fields, a
// one-line text body, with the route's CORS and security headers (a browser
// script must be able to read a 401 or 429).
func (c *Chain) answer(h *workerproto.RequestHead, p *policy, w dispatch.ResponseWriter, status int, hs []workerproto.Header) error {
	var body []byte
	if status != 204 {
		body = []byte(http1.StatusText(status) + "\n") // as the front ends word their own
		hs = append(hs, workerproto.Header{Name: nameContentType, Value: valTextPlain})
	}
	if gw := c.wrap(h, p, w, ratelimit.Decision{}, hs); gw != nil {
		defer gw.release()
		w = gw
		hs = nil // gw adds them
	}
	if err := w.WriteHead(status, hs, int64(len(body))); err != nil {
		return err
	}
	if len(body) > 0 && h.Method != "HEAD" {
		return w.WriteBody(body)
	}
	return nil
}

// servePreflight answers a CORS preflight with the policy of the route its
// Access-Control-Request-Method names at its path (the gateway's default
// policy when none matches).
func (c *Chain) servePreflight(h *workerproto.RequestHead, w dispatch.ResponseWriter) error {
	pol := c.def.cors
	if rt := c.routeFor(string(header(h.Headers, "access-control-request-method")), h.Path); rt != nil {
		pol = c.policyOf(rt, h.Path).cors
	}
	var hs []workerproto.Header
	allowed := false
	if pol != nil {
		hs, allowed = pol.Preflight(h.Headers, nil)
	}
	if allowed {
		c.metrics.CORSPreflight("allowed")
	} else {
		c.metrics.CORSPreflight("denied")
	}
	// Only the CORS fields: a preflight's answer is not a resource.
	if err := w.WriteHead(204, hs, 0); err != nil {
		return err
	}
	return nil
}

// routeFor looks up the route method names at path, or nil.
func (c *Chain) routeFor(method, path string) *dispatch.Route {
	if method == "" {
		return nil
	}
	var ps router.Params
	lookup := path
	if b, ok := router.AppendCanonicalPath(nil, path); ok {
		lookup = string(b)
	}
	m, st := c.next.Lookup(method, lookup, &ps)
	if st != router.StatusFound {
		return nil
	}
	return m.Value
}

// answerOptions answers an OPTIONS request no route handles, as the front
// ends do without the chain: 204 with Allow.
func (c *Chain) answerOptions(h *workerproto.RequestHead, p *policy, w dispatch.ResponseWriter) error {
	var ps router.Params
	lookup := h.Path
	if b, ok := router.AppendCanonicalPath(nil, h.Path); ok {
		lookup = string(b)
	}
	m, _ := c.next.Lookup("OPTIONS", lookup, &ps)
	var hs []workerproto.Header
	if m.Allow != "" {
		hs = append(hs, workerproto.Header{Name: nameAllow, Value: []byte(m.Allow)})
	}
	return c.answer(h, p, w, 204, hs)
}
