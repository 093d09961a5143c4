package guard

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/audit"
	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// backend stands in for the dispatcher: it routes with a real router and
// answers every request it gets with a fixed body, recording the head.
type backend struct {
	routes *router.Router[*dispatch.Route]
	seen   []workerproto.RequestHead
	body   []byte
	record bool
}

func (b *backend) Lookup(method, path string, ps *router.Params) (router.Match[*dispatch.Route], router.Status) {
	return b.routes.Lookup(method, path, ps)
}

func (b *backend) Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error {
	if b.record {
		b.seen = append(b.seen, req.Head)
	}
	if err := w.WriteHead(200, []workerproto.Header{{Name: []byte("content-type"), Value: []byte("text/plain")}}, int64(len(b.body))); err != nil {
		return err
	}
	return w.WriteBody(b.body)
}

func (b *backend) ServeWebSocket(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, peer dispatch.WebSocketPeer) error {
	b.seen = append(b.seen, req.Head)
	return nil
}

// recorder is the front end's ResponseWriter.
type recorder struct {
	status  int
	headers map[string][]string
	body    bytes.Buffer
}

func (r *recorder) WriteHead(status int, hs []workerproto.Header, n int64) error {
	r.status = status
	r.headers = map[string][]string{}
	for _, h := range hs {
		k := strings.ToLower(string(h.Name))
		r.headers[k] = append(r.headers[k], string(h.Value))
	}
	return nil
}
func (r *recorder) WriteBody(p []byte) error { r.body.Write(p); return nil }
func (r *recorder) WriteBodyv(ps [][]byte) error {
	for _, p := range ps {
		r.body.Write(p)
	}
	return nil
}
func (r *recorder) get(name string) string { return strings.Join(r.headers[name], ", ") }

var secret = []byte("a secret of thirty-two bytes....")

// hs256 mints a token signed with secret.
func hs256(t testing.TB, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	hb, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"})
	cb, _ := json.Marshal(claims)
	in := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + enc.EncodeToString(m.Sum(nil))
}

// setup builds a chain over a backend with the given routes (options as a
// manifest would carry them) and returns both.
func setup(t testing.TB, cfg Config, routes ...workerproto.Route) (*Chain, *backend) {
	t.Helper()
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	k := base64.RawURLEncoding.EncodeToString(secret)
	if err := os.WriteFile(jwks, []byte(`{"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"`+k+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.JWKSFile == "" {
		cfg.Auth.JWKSFile = jwks
		cfg.Auth.Algorithms = []string{"HS256"}
	}
	if cfg.Audit.Path == "" {
		cfg.Audit.Path = filepath.Join(dir, "audit.jsonl")
	}
	b := &backend{routes: router.New[*dispatch.Route](), body: []byte("hello"), record: true}
	c, err := New(cfg, b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var rs []router.Route[*dispatch.Route]
	for i := range routes {
		r := &routes[i]
		p, err := c.CompileRoute("app", r)
		if err != nil {
			t.Fatalf("%s %s: %v", r.Method, r.Path, err)
		}
		rs = append(rs, router.Route[*dispatch.Route]{Method: r.Method, Pattern: r.Path, Value: &dispatch.Route{App: "app", Pattern: r.Path, Policy: p}})
	}
	if err := b.routes.Replace(func(router.Route[*dispatch.Route]) bool { return true }, rs...); err != nil {
		t.Fatal(err)
	}
	return c, b
}

// do routes and serves one request through the chain, as a front end would.
func do(t *testing.T, c *Chain, method, path string, headers ...string) *recorder {
	t.Helper()
	var ps router.Params
	m, st := c.Lookup(method, path, &ps)
	rec := &recorder{}
	switch st {
	case router.StatusFound:
	case router.StatusOptions:
		rec.status = 204 // the front end's own answer
		return rec
	default:
		t.Fatalf("%s %s: routing status %v", method, path, st)
	}
	req := &dispatch.Request{Head: workerproto.RequestHead{
		Method: method, Path: path, Route: m.Pattern, HTTPVersion: "1.1", Scheme: "http",
		Client: "192.0.2.7:40000", RequestID: "r1",
	}}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Head.Headers = append(req.Head.Headers, workerproto.Header{Name: []byte(headers[i]), Value: []byte(headers[i+1])})
	}
	if err := c.Serve(context.Background(), m.Value, req, rec); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return rec
}

func opts(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func TestAuthDecisions(t *testing.T) {
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	c, b := setup(t, Config{Audit: audit.Config{Path: auditPath}},
		workerproto.Route{Method: "GET", Path: "/admin", Kind: "http", Options: opts("auth", true, "roles", []any{"admin"}, "scopes", []any{"reports:read"})},
		workerproto.Route{Method: "GET", Path: "/public", Kind: "http", Options: opts()},
	)
	exp := time.Now().Add(time.Hour).Unix()
	good := hs256(t, map[string]any{"sub": "alice", "exp": exp, "roles": []string{"admin"}, "scope": "reports:read other"})
	weak := hs256(t, map[string]any{"sub": "bob", "exp": exp, "roles": []string{"user"}, "scope": "reports:read"})

	rec := do(t, c, "GET", "/admin")
	if rec.status != 401 || !strings.Contains(rec.get("www-authenticate"), `error="invalid_token"`) {
		t.Fatalf("no token: %d %v", rec.status, rec.headers)
	}
	rec = do(t, c, "GET", "/admin", "Authorization", "Bearer "+good[:len(good)-2]+"xx")
	if rec.status != 401 {
		t.Fatalf("bad signature: %d", rec.status)
	}
	rec = do(t, c, "GET", "/admin", "authorization", "Bearer "+weak)
	if rec.status != 403 || !strings.Contains(rec.get("www-authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("lacking a role: %d %v", rec.status, rec.headers)
	}
	if len(b.seen) != 0 {
		t.Fatalf("the backend saw %d refused requests", len(b.seen))
	}
	rec = do(t, c, "GET", "/admin", "Authorization", "Bearer "+good)
	if rec.status != 200 || len(b.seen) != 1 {
		t.Fatalf("good token: %d, backend saw %d", rec.status, len(b.seen))
	}
	a := b.seen[0].Auth
	if a == nil || a.Subject != "alice" || len(a.Roles) != 1 || a.Roles[0] != "admin" || len(a.Scopes) != 2 || !bytes.Contains(a.Claims, []byte(`"sub":"alice"`)) {
		t.Fatalf("identity: %+v", a)
	}
	// A public route: a valid token still reaches the worker, an invalid one
	// is dropped, none is fine.
	do(t, c, "GET", "/public", "Authorization", "Bearer "+weak)
	do(t, c, "GET", "/public", "Authorization", "Bearer nonsense")
	do(t, c, "GET", "/public")
	if len(b.seen) != 4 || b.seen[1].Auth == nil || b.seen[1].Auth.Subject != "bob" || b.seen[2].Auth != nil || b.seen[3].Auth != nil {
		t.Fatalf("public route identities: %d seen", len(b.seen))
	}
	// Every decision is audited, none with the token.
	c.Close()
	log, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d audit lines, want 6:\n%s", len(lines), log)
	}
	for _, want := range []string{`"reason":"missing","status":401`, `"reason":"insufficient_scope","status":403`, `"decision":"allow","reason":"ok"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("audit log lacks %s:\n%s", want, log)
		}
	}
	if strings.Contains(string(log), good[:20]) || strings.Contains(string(log), "nonsense") {
		t.Error("the audit log holds a token")
	}
}

func TestCompileRouteErrors(t *testing.T) {
	c, _ := setup(t, Config{})
	for _, tc := range []struct {
		o    map[string]any
		want string
	}{
		{opts("roles", []any{"admin"}), "roles and scopes need auth true"},
		{opts("rate_limit", "5/fortnight"), "rate_limit"},
		{opts("rate_limit_key", "cookie:x"), "rate_limit_key"},
	} {
		_, err := c.CompileRoute("app", &workerproto.Route{Method: "GET", Path: "/x", Kind: "http", Options: tc.o})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.o, err, tc.want)
		}
	}
	bare, err := New(Config{}, &backend{routes: router.New[*dispatch.Route]()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	if _, err := bare.CompileRoute("app", &workerproto.Route{Method: "GET", Path: "/x", Kind: "http", Options: opts("auth", true)}); err == nil || !strings.Contains(err.Error(), "auth_jwks_file") {
		t.Fatalf("auth without keys: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	c, b := setup(t, Config{},
		workerproto.Route{Method: "POST", Path: "/login", Kind: "http", Options: opts("rate_limit", "2/minute")},
		workerproto.Route{Method: "GET", Path: "/key", Kind: "http", Options: opts("rate_limit", "1/minute", "rate_limit_key", "header:X-API-Key")},
	)
	for i, want := range []int{200, 200, 429} {
		if rec := do(t, c, "POST", "/login"); rec.status != want {
			t.Fatalf("request %d: %d, want %d", i, rec.status, want)
		} else if want == 429 && rec.get("retry-after") == "" {
			t.Fatalf("429 without Retry-After: %v", rec.headers)
		}
	}
	// Keyed by header: each key has its own budget; none falls back to the IP.
	for _, tc := range []struct {
		key  string
		want int
	}{{"a", 200}, {"b", 200}, {"a", 429}, {"", 200}, {"", 429}} {
		var rec *recorder
		if tc.key == "" {
			rec = do(t, c, "GET", "/key")
		} else {
			rec = do(t, c, "GET", "/key", "X-Api-Key", tc.key)
		}
		if rec.status != tc.want {
			t.Fatalf("key %q: %d, want %d", tc.key, rec.status, tc.want)
		}
	}
	if len(b.seen) != 5 {
		t.Fatalf("backend saw %d, want 5", len(b.seen))
	}
}

func TestCORSPreflightNeverReachesBackend(t *testing.T) {
	c, b := setup(t, Config{},
		workerproto.Route{Method: "PUT", Path: "/items/{id}", Kind: "http", Options: opts("cors", map[string]any{
			"allow_origins": []any{"https://app.example.com"}, "allow_methods": []any{"PUT"}, "allow_headers": []any{"X-Token"},
		})},
	)
	rec := do(t, c, "OPTIONS", "/items/7", "Origin", "https://app.example.com", "Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "x-token")
	if rec.status != 204 || rec.get("access-control-allow-origin") != "https://app.example.com" {
		t.Fatalf("preflight: %d %v", rec.status, rec.headers)
	}
	rec = do(t, c, "OPTIONS", "/items/7", "Origin", "https://evil.example.net", "Access-Control-Request-Method", "PUT")
	if rec.status != 204 || rec.get("access-control-allow-origin") != "" {
		t.Fatalf("denied preflight: %d %v", rec.status, rec.headers)
	}
	if len(b.seen) != 0 {
		t.Fatalf("the backend saw a preflight")
	}
	rec = do(t, c, "PUT", "/items/7", "Origin", "https://app.example.com")
	if rec.status != 200 || rec.get("access-control-allow-origin") != "https://app.example.com" {
		t.Fatalf("actual request: %d %v", rec.status, rec.headers)
	}
	// Without an Origin (or with a refused one) no allow fields, but Vary:
	// origin all the same, so that a cache keeps the answers apart.
	for _, kv := range [][]string{nil, {"Origin", "https://evil.example.net"}} {
		rec = do(t, c, "PUT", "/items/7", kv...)
		if rec.status != 200 || rec.get("access-control-allow-origin") != "" || rec.get("vary") != "origin" {
			t.Fatalf("request with %q: %d %v", kv, rec.status, rec.headers)
		}
	}
}

func TestCompressionAndHeaders(t *testing.T) {
	cfg := Config{}
	cfg.Compress.Encodings = []string{"gzip"}
	cfg.Headers.Enabled = true
	c, b := setup(t, cfg,
		workerproto.Route{Method: "GET", Path: "/big", Kind: "http", Options: opts()},
		workerproto.Route{Method: "GET", Path: "/raw", Kind: "http", Options: opts("compress", false, "security_headers", false)},
	)
	b.body = bytes.Repeat([]byte("covet "), 2000)
	rec := do(t, c, "GET", "/big", "Accept-Encoding", "gzip")
	if rec.get("content-encoding") != "gzip" || rec.get("x-content-type-options") != "nosniff" {
		t.Fatalf("headers: %v", rec.headers)
	}
	zr, err := gzip.NewReader(&rec.body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, b.body) {
		t.Fatalf("decoded %d bytes, %v", len(got), err)
	}
	// A client that accepts no coding still learns the answer varies.
	rec = do(t, c, "GET", "/big")
	if rec.get("content-encoding") != "" || rec.get("vary") != "accept-encoding" || !bytes.Equal(rec.body.Bytes(), b.body) {
		t.Fatalf("no Accept-Encoding: %v", rec.headers)
	}
	rec = do(t, c, "GET", "/raw", "Accept-Encoding", "gzip")
	if rec.get("content-encoding") != "" || rec.get("x-content-type-options") != "" || rec.get("vary") != "" || !bytes.Equal(rec.body.Bytes(), b.body) {
		t.Fatalf("route with compress false and no security headers: %v", rec.headers)
	}
}

func TestClientAddressAndIPRate(t *testing.T) {
	cfg := Config{IPRequestRate: "2/minute"}
	cfg.ClientIP.TrustedProxies = []string{"192.0.2.0/24"}
	c, b := setup(t, cfg, workerproto.Route{Method: "GET", Path: "/", Kind: "http", Options: opts()})
	for i, want := range []int{200, 200, 429} {
		if rec := do(t, c, "GET", "/", "X-Forwarded-For", "203.0.113.9"); rec.status != want {
			t.Fatalf("request %d: %d, want %d", i, rec.status, want)
		}
	}
	// Another client behind the same proxy has its own budget.
	if rec := do(t, c, "GET", "/", "X-Forwarded-For", "203.0.113.10"); rec.status != 200 {
		t.Fatalf("second client: %d", rec.status)
	}
	if len(b.seen) != 3 || !strings.HasPrefix(b.seen[0].Client, "203.0.113.9") {
		t.Fatalf("client seen: %+v", b.seen)
	}
}

func TestVaries(t *testing.T) {
	hs := func(vs ...string) []workerproto.Header {
		var out []workerproto.Header
		for _, v := range vs {
			out = append(out, workerproto.Header{Name: []byte("Vary"), Value: []byte(v)})
		}
		return out
	}
	for _, tc := range []struct {
		h    []workerproto.Header
		want bool
	}{{nil, false}, {hs("origin"), false}, {hs("Origin, Accept-Encoding"), true}, {hs("origin", "accept-encoding"), true}, {hs("*"), true}, {hs("accept-encoding-x"), false}} {
		if got := varies(tc.h, "accept-encoding"); got != tc.want {
			t.Errorf("%v: %v", tc.h, got)
		}
	}
}

// Files the front end serves itself get the route's CORS fields and security
// headers (HSTS only over TLS).
func TestStaticFields(t *testing.T) {
	cfg := Config{}
	cfg.Headers.Enabled = true
	cfg.CORS.AllowOrigins = []string{"https://app.example"}
	c, _ := setup(t, cfg)
	names := func(hs []workerproto.Header) string {
		var out []string
		for _, h := range hs {
			out = append(out, string(h.Name)+"="+string(h.Value))
		}
		return strings.Join(out, " ")
	}
	rt := &dispatch.Route{Kind: dispatch.KindStatic}
	got := names(c.StaticFields(rt, []byte("https://app.example"), true, nil))
	for _, want := range []string{"access-control-allow-origin=https://app.example", "x-content-type-options=nosniff", "strict-transport-security="} {
		if !strings.Contains(got, want) {
			t.Errorf("over TLS with an allowed origin: %s lacks %s", got, want)
		}
	}
	got = names(c.StaticFields(rt, nil, false, nil))
	if strings.Contains(got, "access-control-allow-origin") || strings.Contains(got, "strict-transport-security") || !strings.Contains(got, "vary=origin") {
		t.Errorf("plain, no origin: %s", got)
	}
}

// peer is a WebSocket client's side that records what the chain answers.
type peer struct{ recorder }

func (*peer) Accept(string, []workerproto.Header) error { return nil }
func (*peer) ReadMessage() (bool, []byte, error)        { return false, nil, &dispatch.CloseError{Code: 1006} }
func (*peer) WriteMessage(bool, []byte) error           { return nil }
func (*peer) MaxMessage() int                           { return 1 << 20 }
func (*peer) Close(int, string) error                   { return nil }

// A WebSocket upgrade on a route with a CORS policy is refused from an origin
// the policy does not allow, unless it is the request's own.
func TestWebSocketOrigin(t *testing.T) {
	c, b := setup(t, Config{},
		workerproto.Route{Method: "GET", Path: "/ws", Kind: "ws", Options: opts("cors", map[string]any{"allow_origins": []any{"https://app.example"}})},
		workerproto.Route{Method: "GET", Path: "/open", Kind: "ws", Options: opts()},
	)
	for _, tc := range []struct {
		path, origin string
		want         int // 0: handed on
	}{
		{"/ws", "", 0},
		{"/ws", "https://app.example", 0},
		{"/ws", "http://gw.example:8000", 0}, // same origin as the request
		{"/ws", "https://evil.example", 403},
		{"/ws", "https://gw.example:8000", 403}, // another scheme is another origin
		{"/open", "https://evil.example", 0},    // no CORS policy: the app's business
	} {
		var ps router.Params
		m, _ := c.Lookup("GET", tc.path, &ps)
		req := &dispatch.Request{Head: workerproto.RequestHead{Method: "GET", Path: tc.path, Scheme: "http", Client: "192.0.2.7:1",
			Headers: []workerproto.Header{{Name: []byte("Host"), Value: []byte("gw.example:8000")}}}}
		if tc.origin != "" {
			req.Head.Headers = append(req.Head.Headers, workerproto.Header{Name: []byte("Origin"), Value: []byte(tc.origin)})
		}
		p := &peer{}
		before := len(b.seen)
		if err := c.ServeWebSocket(context.Background(), m.Value, req, p); err != nil {
			t.Fatal(err)
		}
		handed := len(b.seen) > before
		if tc.want == 0 && (!handed || p.status != 0) || tc.want != 0 && (handed || p.status != tc.want) {
			t.Errorf("%s from %q: status %d, handed on %v", tc.path, tc.origin, p.status, handed)
		}
	}
}

// TestPathPolicies: path_policy options govern every request under their
// prefix, the longest prefix first, in place of the (catch-all) route's own;
// an escaped spelling of a protected path is still under its prefix.
func TestPathPolicies(t *testing.T) {
	c, b := setup(t, Config{PathPolicies: []string{
		"/admin=auth roles=admin",
		"/admin/public=rate=1/minute",
		"/api/=rate=2/minute  key=ip compress=off",
	}}, workerproto.Route{Method: "GET", Path: "/{path...}", Kind: "http", Options: opts()})
	exp := time.Now().Add(time.Hour).Unix()
	admin := hs256(t, map[string]any{"sub": "ann", "exp": exp, "roles": []string{"admin"}})
	user := hs256(t, map[string]any{"sub": "bob", "exp": exp, "roles": []string{"user"}})
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/admin", "", 401},
		{"/admin/users", "", 401},
		{"/%61dmin/users", "", 401}, // %61 is 'a': the canonical path is under /admin
		{"/admin/users", user, 403},
		{"/admin/users", admin, 200},
		{"/administrator", "", 200}, // not under /admin: segment boundaries count
		{"/admin/public/x", "", 200},
		{"/admin/public/x", "", 429}, // the longer prefix's own rate, no auth
		{"/api/a", "", 200},
		{"/api/b", "", 200},
		{"/api/c", "", 429}, // one budget for the whole prefix
		{"/other", "", 200},
	} {
		var rec *recorder
		if tc.token == "" {
			rec = do(t, c, "GET", tc.path)
		} else {
			rec = do(t, c, "GET", tc.path, "Authorization", "Bearer "+tc.token)
		}
		if rec.status != tc.want {
			t.Fatalf("GET %s: %d, want %d", tc.path, rec.status, tc.want)
		}
	}
	if len(b.seen) != 6 {
		t.Fatalf("backend saw %d requests, want 6", len(b.seen))
	}
	for _, tc := range []struct{ entry, want string }{
		{"admin=auth", "want PREFIX=OPTIONS"},
		{"/x=auth frobnicate", `unknown option "frobnicate"`},
		{"/x=roles=admin", "roles and scopes need auth true"},
		{"/x=rate=5/fortnight", "rate_limit"},
		{"/x=cors=maybe", "cors must be on or off"},
	} {
		bad, err := New(Config{PathPolicies: []string{tc.entry}}, &backend{routes: router.New[*dispatch.Route]()}, nil, nil)
		if err == nil {
			bad.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "path_policy") {
			t.Errorf("%s: got %v, want an error naming path_policy and %q", tc.entry, err, tc.want)
		}
	}
}

// A WebSocket route that also serves HTTP (option http, PROTOCOL.md 1.3) is
// one route: its security options guard its plain requests (Serve) and its
// upgrades (ServeWebSocket) alike, and its rate limit is one budget for both.
func TestWebSocketRouteAlsoHTTP(t *testing.T) {
	c, b := setup(t, Config{},
		workerproto.Route{Method: "GET", Path: "/live", Kind: "ws", Options: opts("http", true, "auth", true, "rate_limit", "3/minute",
			"cors", map[string]any{"allow_origins": []any{"https://app.example"}})},
	)
	token := hs256(t, map[string]any{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	upgrade := func(headers ...string) *peer {
		t.Helper()
		var ps router.Params
		m, _ := c.Lookup("GET", "/live", &ps)
		req := &dispatch.Request{Head: workerproto.RequestHead{Method: "GET", Path: "/live", Scheme: "http", Client: "192.0.2.7:1"}}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Head.Headers = append(req.Head.Headers, workerproto.Header{Name: []byte(headers[i]), Value: []byte(headers[i+1])})
		}
		p := &peer{}
		if err := c.ServeWebSocket(context.Background(), m.Value, req, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if rec := do(t, c, "GET", "/live", "Origin", "https://app.example"); rec.status != 401 || rec.get("access-control-allow-origin") != "https://app.example" {
		t.Fatalf("plain GET without a token: %d %v", rec.status, rec.headers)
	}
	if p := upgrade(); p.status != 401 {
		t.Fatalf("upgrade without a token: %d", p.status)
	}
	if p := upgrade("Authorization", "Bearer "+token, "Origin", "https://evil.example"); p.status != 403 {
		t.Fatalf("upgrade from a foreign origin: %d", p.status)
	}
	if len(b.seen) != 0 {
		t.Fatalf("the backend saw %d refused requests", len(b.seen))
	}
	// Within the limit: a plain GET, an upgrade, a plain GET; then the shared
	// budget is spent for both.
	if rec := do(t, c, "GET", "/live", "Authorization", "Bearer "+token); rec.status != 200 || rec.body.String() != "hello" {
		t.Fatalf("plain GET with a token: %d %q", rec.status, rec.body.String())
	}
	if p := upgrade("Authorization", "Bearer "+token); p.status != 0 {
		t.Fatalf("upgrade with a token: %d", p.status)
	}
	if rec := do(t, c, "GET", "/live", "Authorization", "Bearer "+token); rec.status != 200 {
		t.Fatalf("third request: %d", rec.status)
	}
	if len(b.seen) != 3 || b.seen[0].Auth == nil || b.seen[1].Auth == nil || b.seen[1].Auth.Subject != "alice" {
		t.Fatalf("backend saw %d requests, identities %+v %+v", len(b.seen), b.seen[0].Auth, b.seen[min(1, len(b.seen)-1)].Auth)
	}
	if p := upgrade("Authorization", "Bearer "+token); p.status != 429 {
		t.Errorf("upgrade past the shared limit: %d", p.status)
	}
	if rec := do(t, c, "GET", "/live", "Authorization", "Bearer "+token); rec.status != 429 {
		t.Errorf("plain GET past the shared limit: %d", rec.status)
	}
}
