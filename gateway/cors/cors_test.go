package cors

import (
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/workerproto"
)

// hdrs builds a header list from name, value pairs.
func hdrs(kv ...string) []workerproto.Header {
	var hs []workerproto.Header
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, workerproto.Header{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return hs
}

// fields renders hs as "name: value" lines, in order.
func fields(hs []workerproto.Header) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(string(h.Name) + ": " + string(h.Value) + "\n")
	}
	return b.String()
}

func get(hs []workerproto.Header, name string) (string, bool) {
	for _, h := range hs {
		if string(h.Name) == name {
			return string(h.Value), true
		}
	}
	return "", false
}

func mustNew(t *testing.T, cfg Config) *Policy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	if p == nil {
		t.Fatalf("New(%+v): nil policy", cfg)
	}
	return p
}

// allowed is the access-control-allow-origin Actual gives origin o ("" = none).
func allowed(p *Policy, o string) string {
	v, _ := get(p.Actual(hdrs("origin", o), nil), "access-control-allow-origin")
	return v
}

func TestOriginMatching(t *testing.T) {
	p := mustNew(t, Config{AllowOrigins: []string{
		"https://app.example.com", "https://*.example.com", "http://127.0.0.1:8080",
		"https://*.corp.test:8443", "HTTP://Upper.Example.ORG",
	}})
	cases := []struct {
		origin, want string
	}{
		{"https://app.example.com", "https://app.example.com"},
		{"HTTPS://APP.EXAMPLE.COM", "https://app.example.com"}, // answered as configured
		{"https://a.example.com", "https://a.example.com"},
		{"https://a.b.example.com", "https://a.b.example.com"},
		{"https://A-1.example.com", "https://A-1.example.com"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://upper.example.org", "http://upper.example.org"},
		{"https://x.corp.test:8443", "https://x.corp.test:8443"},

		{"https://example.com", ""},            // the apex is not a subdomain
		{"https://evil-example.com", ""},       // suffix without the dot
		{"https://example.com.evil.net", ""},   // suffix in the middle
		{"https://a.example.com.evil.net", ""}, // same
		{"http://a.example.com", ""},           // other scheme
		{"https://a.example.com:8443", ""},     // a port the pattern lacks
		{"https://x.corp.test", ""},            // no port where the pattern has one
		{"https://x.corp.test:9443", ""},       // another port
		{"https://.example.com", ""},           // empty label
		{"https://a..example.com", ""},         // empty label
		{"https://a_b.example.com", ""},        // not a DNS label
		{"https://u@a.example.com", ""},        // user info
		{"https://a.example.com/", ""},         // a path
		{"http://127.0.0.1:8081", ""},          // other port
		{"http://127.0.0.1", ""},               // no port
		{"https://app.example.com.", ""},       // trailing dot
		{"null", ""},                           // not listed
		{"", ""},                               // empty
		{"https://app.example.com:443", ""},    // browsers never send the default port
	}
	for _, c := range cases {
		if got := allowed(p, c.origin); got != c.want {
			t.Errorf("origin %q: allow-origin %q, want %q", c.origin, got, c.want)
		}
	}
}

func TestAnyOriginAndNull(t *testing.T) {
	p := mustNew(t, Config{AllowOrigins: []string{"*"}})
	for _, o := range []string{"https://x.example", "null", "http://127.0.0.1:1"} {
		if got := allowed(p, o); got != "*" {
			t.Errorf("* policy, origin %q: %q, want *", o, got)
		}
	}
	// "*" is the same answer for every request: no Origin, no Vary.
	hs := p.Actual(nil, nil)
	if v, _ := get(hs, "access-control-allow-origin"); v != "*" {
		t.Errorf("* policy without Origin: %q", fields(hs))
	}
	if _, ok := get(hs, "vary"); ok {
		t.Errorf("* policy adds Vary: %q", fields(hs))
	}

	n := mustNew(t, Config{AllowOrigins: []string{"null"}})
	if got := allowed(n, "null"); got != "null" {
		t.Errorf("null listed: %q", got)
	}
	if got := allowed(n, "https://x.example"); got != "" {
		t.Errorf("null listed, other origin: %q", got)
	}
	w := mustNew(t, Config{AllowOrigins: []string{"https://*.example.com"}})
	if got := allowed(w, "null"); got != "" {
		t.Errorf("wildcard matches null: %q", got)
	}
}

func TestActualVary(t *testing.T) {
	p := mustNew(t, Config{
		AllowOrigins:     []string{"https://app.example.com"},
		ExposeHeaders:    []string{"X-Request-Id", "x-total"},
		AllowCredentials: true,
	})
	// Allowed origin: all the fields.
	got := fields(p.Actual(hdrs("origin", "https://app.example.com"), hdrs("content-type", "text/plain")))
	want := "content-type: text/plain\nvary: origin\naccess-control-allow-origin: https://app.example.com\n" +
		"access-control-allow-credentials: true\naccess-control-expose-headers: x-request-id, x-total\n"
	if got != want {
		t.Errorf("allowed:\n%s\nwant:\n%s", got, want)
	}
	// Refused origin and no Origin: only Vary.
	for _, req := range [][]workerproto.Header{hdrs("origin", "https://evil.example"), nil, hdrs("origin", "https://app.example.com", "origin", "https://evil.example")} {
		if got := fields(p.Actual(req, nil)); got != "vary: origin\n" {
			t.Errorf("request %q: %q, want only vary", fields(req), got)
		}
	}
	// The response already varies on origin (in any case, or on *): no second Vary.
	for _, v := range []string{"Origin", "accept-encoding, ORIGIN", "*"} {
		hs := p.Actual(nil, hdrs("vary", v))
		if got := fields(hs); got != "vary: "+v+"\n" {
			t.Errorf("vary %q: %q", v, got)
		}
	}
	// Another Vary stays and origin is added.
	if got := fields(p.Actual(nil, hdrs("vary", "accept-encoding"))); got != "vary: accept-encoding\nvary: origin\n" {
		t.Errorf("vary accept-encoding: %q", got)
	}
	// The worker answered CORS itself: its fields stay, ours are not added.
	hs := p.Actual(hdrs("origin", "https://app.example.com"), hdrs("access-control-allow-origin", "https://other.example"))
	if got := fields(hs); got != "access-control-allow-origin: https://other.example\nvary: origin\n" {
		t.Errorf("worker's own CORS: %q", got)
	}
	// nil policy: nothing.
	var off *Policy
	if got := off.Actual(hdrs("origin", "https://app.example.com"), nil); len(got) != 0 {
		t.Errorf("nil policy: %q", fields(got))
	}
}

func TestIsPreflight(t *testing.T) {
	cases := []struct {
		method string
		h      []workerproto.Header
		want   bool
	}{
		{"OPTIONS", hdrs("origin", "https://a.example", "access-control-request-method", "PUT"), true},
		{"OPTIONS", hdrs("origin", "https://a.example"), false},
		{"OPTIONS", hdrs("access-control-request-method", "PUT"), false},
		{"GET", hdrs("origin", "https://a.example", "access-control-request-method", "PUT"), false},
		{"options", hdrs("origin", "https://a.example", "access-control-request-method", "PUT"), false},
	}
	for _, c := range cases {
		if got := IsPreflight(c.method, c.h); got != c.want {
			t.Errorf("IsPreflight(%s, %q) = %v", c.method, fields(c.h), got)
		}
	}
}

const preflightVary = "vary: origin, access-control-request-method, access-control-request-headers\n"

func TestPreflight(t *testing.T) {
	p := mustNew(t, Config{
		AllowOrigins:     []string{"https://app.example.com", "https://*.example.net"},
		AllowMethods:     []string{"get", "PUT", "delete", "PATCH"},
		AllowHeaders:     []string{"X-Token", "content-type"},
		AllowCredentials: true,
		MaxAge:           10 * time.Minute,
	})
	req := func(origin, method, reqHeaders string) []workerproto.Header {
		h := hdrs("origin", origin, "access-control-request-method", method)
		if reqHeaders != "" {
			h = append(h, hdrs("access-control-request-headers", reqHeaders)...)
		}
		return h
	}
	// Allowed: methods answered upper case, headers as configured (lower case).
	out, ok := p.Preflight(req("https://app.example.com", "PUT", "x-token,Content-Type"), nil)
	want := preflightVary + "access-control-allow-origin: https://app.example.com\n" +
		"access-control-allow-credentials: true\naccess-control-allow-methods: GET, PUT, DELETE, PATCH\n" +
		"access-control-allow-headers: x-token, content-type\naccess-control-max-age: 600\n"
	if !ok || fields(out) != want {
		t.Errorf("allowed preflight (%v):\n%s\nwant:\n%s", ok, fields(out), want)
	}
	// Wildcard origin, no requested headers: no allow-headers field.
	out, ok = p.Preflight(req("https://a.example.net", "DELETE", ""), nil)
	if !ok {
		t.Fatalf("wildcard preflight refused: %s", fields(out))
	}
	if v, _ := get(out, "access-control-allow-origin"); v != "https://a.example.net" {
		t.Errorf("wildcard preflight origin %q", v)
	}
	if _, has := get(out, "access-control-allow-headers"); has {
		t.Errorf("allow-headers without a request for headers: %s", fields(out))
	}
	// Header lists: spaces, tabs, empty items, several fields, any case.
	out, ok = p.Preflight(append(req("https://app.example.com", "PUT", " X-TOKEN ,\t, content-type"),
		hdrs("access-control-request-headers", "x-token")...), nil)
	if !ok {
		t.Errorf("header list with spaces refused: %s", fields(out))
	}
	// A method in another case than the browser sends: allowed, and named as
	// requested too so that the browser's byte comparison passes.
	out, ok = p.Preflight(req("https://app.example.com", "patch", ""), nil)
	if v, _ := get(out, "access-control-allow-methods"); !ok || v != "GET, PUT, DELETE, PATCH, patch" {
		t.Errorf("lower-case patch: %v %q", ok, v)
	}

	refused := []struct {
		name string
		h    []workerproto.Header
	}{
		{"origin", req("https://evil.example", "PUT", "")},
		{"wildcard apex", req("https://example.net", "PUT", "")},
		{"method", req("https://app.example.com", "POST", "")},
		{"header", req("https://app.example.com", "PUT", "x-token, x-other")},
		{"authorization", req("https://app.example.com", "PUT", "authorization")},
		{"bad header token", req("https://app.example.com", "PUT", "x token")},
		{"bad method token", req("https://app.example.com", "P T", "")},
		{"two origins", append(req("https://app.example.com", "PUT", ""), hdrs("origin", "https://evil.example")...)},
		{"two methods", append(req("https://app.example.com", "PUT", ""), hdrs("access-control-request-method", "GET")...)},
		{"no origin", hdrs("access-control-request-method", "PUT")},
	}
	for _, c := range refused {
		out, ok := p.Preflight(c.h, nil)
		if ok || fields(out) != preflightVary {
			t.Errorf("%s: allowed=%v\n%s\nwant only vary", c.name, ok, fields(out))
		}
	}
	var off *Policy
	if out, ok := off.Preflight(req("https://app.example.com", "PUT", ""), nil); ok || len(out) != 0 {
		t.Errorf("nil policy preflight: %v %s", ok, fields(out))
	}
}

func TestPreflightDefaultsAndStars(t *testing.T) {
	// Defaults: GET, HEAD, POST; no headers; no max-age; no credentials.
	p := mustNew(t, Config{AllowOrigins: []string{"*"}})
	out, ok := p.Preflight(hdrs("origin", "https://x.example", "access-control-request-method", "POST"), nil)
	want := preflightVary + "access-control-allow-origin: *\naccess-control-allow-methods: GET, HEAD, POST\n"
	if !ok || fields(out) != want {
		t.Errorf("defaults:\n%s\nwant:\n%s", fields(out), want)
	}
	if _, ok := p.Preflight(hdrs("origin", "https://x.example", "access-control-request-method", "PUT"), nil); ok {
		t.Error("PUT allowed by default methods")
	}
	if _, ok := p.Preflight(hdrs("origin", "https://x.example", "access-control-request-method", "GET",
		"access-control-request-headers", "x-a"), nil); ok {
		t.Error("a header allowed by default")
	}

	// "*" methods and headers without credentials: answered "*".
	p = mustNew(t, Config{AllowOrigins: []string{"*"}, AllowMethods: []string{"*"}, AllowHeaders: []string{"*", "Authorization"}})
	out, ok = p.Preflight(hdrs("origin", "https://x.example", "access-control-request-method", "PURGE",
		"access-control-request-headers", "x-a, authorization"), nil)
	want = preflightVary + "access-control-allow-origin: *\naccess-control-allow-methods: *\n" +
		"access-control-allow-headers: *, authorization\n"
	if !ok || fields(out) != want {
		t.Errorf("stars:\n%s\nwant:\n%s", fields(out), want)
	}
	// "*" headers never cover authorization unless it is named.
	p = mustNew(t, Config{AllowOrigins: []string{"*"}, AllowHeaders: []string{"*"}})
	if _, ok := p.Preflight(hdrs("origin", "https://x.example", "access-control-request-method", "GET",
		"access-control-request-headers", "x-a, Authorization"), nil); ok {
		t.Error("* headers cover authorization")
	}

	// With credentials, browsers take "*" literally: the request is echoed.
	p = mustNew(t, Config{AllowOrigins: []string{"https://app.example.com"}, AllowMethods: []string{"*"},
		AllowHeaders: []string{"*"}, AllowCredentials: true})
	out, ok = p.Preflight(hdrs("origin", "https://app.example.com", "access-control-request-method", "PURGE",
		"access-control-request-headers", "X-A, x-b"), nil)
	want = preflightVary + "access-control-allow-origin: https://app.example.com\naccess-control-allow-credentials: true\n" +
		"access-control-allow-methods: PURGE\naccess-control-allow-headers: x-a, x-b\n"
	if !ok || fields(out) != want {
		t.Errorf("stars with credentials:\n%s\nwant:\n%s", fields(out), want)
	}
}

func TestNewErrors(t *testing.T) {
	if p, err := New(Config{}); p != nil || err != nil {
		t.Errorf("New(zero) = %v, %v; want nil, nil", p, err)
	}
	o := []string{"https://app.example.com"}
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{AllowOrigins: []string{"*"}, AllowCredentials: true}, `cors_allow_origins: "*" cannot be used with cors_allow_credentials`},
		{Config{AllowOrigins: []string{"https://a.example", "*"}}, `cors_allow_origins[1] "*": must be the only origin`},
		{Config{AllowOrigins: []string{"https://a.example", "https://app.example.com/"}}, `cors_allow_origins[1] "https://app.example.com/": an origin has no path`},
		{Config{AllowOrigins: []string{"app.example.com"}}, `cors_allow_origins[0] "app.example.com": want scheme://host[:port]`},
		{Config{AllowOrigins: []string{"https://app.example.com:0"}}, `bad port "0"`},
		{Config{AllowOrigins: []string{"https://app.example.com:99999"}}, `bad port "99999"`},
		{Config{AllowOrigins: []string{"https://a*.example.com"}}, `a wildcard must be the whole first label`},
		{Config{AllowOrigins: []string{"https://*.*.example.com"}}, `bad host "*.example.com" after "*."`},
		{Config{AllowOrigins: []string{"https://*"}}, `a wildcard must be the whole first label`},
		{Config{AllowOrigins: []string{"https://u@app.example.com"}}, `no user info`},
		{Config{AllowOrigins: []string{"1https://app.example.com"}}, `bad scheme`},
		{Config{AllowOrigins: o, AllowMethods: []string{"GET", "PU T"}}, `cors_allow_methods[1] "PU T": not a method name`},
		{Config{AllowOrigins: o, AllowHeaders: []string{"x-a:"}}, `cors_allow_headers[0] "x-a:": not a header name`},
		{Config{AllowOrigins: o, ExposeHeaders: []string{""}}, `cors_expose_headers[0] "": not a header name`},
		{Config{AllowOrigins: o, ExposeHeaders: []string{"*"}, AllowCredentials: true}, `cors_expose_headers[0] "*": cannot be used with cors_allow_credentials`},
		{Config{AllowOrigins: o, MaxAge: -time.Second}, `cors_max_age: -1s is negative`},
		{Config{AllowOrigins: o, MaxAge: 1500 * time.Millisecond}, `cors_max_age: 1.5s is not a whole number of seconds`},
	}
	for _, c := range cases {
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
	// Accepted spellings.
	for _, ok := range []string{"http://[::1]:8080", "http://[::1]", "https://*.example.com:8443", "http://localhost", "null", "HTTPS://APP.EXAMPLE.COM"} {
		if _, err := New(Config{AllowOrigins: []string{ok}}); err != nil {
			t.Errorf("origin %q refused: %v", ok, err)
		}
	}
}

func TestForRoute(t *testing.T) {
	def := mustNew(t, Config{AllowOrigins: []string{"https://app.example.com"}})
	if p, err := ForRoute(def, nil); p != def || err != nil {
		t.Errorf("absent: %v, %v; want def", p, err)
	}
	if p, err := ForRoute(def, false); p != nil || err != nil {
		t.Errorf("false: %v, %v; want nil", p, err)
	}
	if p, err := ForRoute(nil, nil); p != nil || err != nil {
		t.Errorf("absent with CORS off: %v, %v", p, err)
	}
	// A map replaces the default, with Config's defaults for what it lacks; it
	// may turn CORS on where the gateway's default is off.
	p, err := ForRoute(nil, map[string]any{
		"allow_origins":     []any{"https://*.example.org"},
		"allow_methods":     []any{"PUT"},
		"allow_headers":     []any{"X-Token"},
		"expose_headers":    []any{"X-Id"},
		"allow_credentials": true,
		"max_age":           int64(30),
	})
	if err != nil {
		t.Fatal(err)
	}
	if allowed(p, "https://app.example.com") != "" || allowed(p, "https://a.example.org") != "https://a.example.org" {
		t.Errorf("route policy does not replace the default")
	}
	out, ok := p.Preflight(hdrs("origin", "https://a.example.org", "access-control-request-method", "PUT",
		"access-control-request-headers", "x-token"), nil)
	want := preflightVary + "access-control-allow-origin: https://a.example.org\naccess-control-allow-credentials: true\n" +
		"access-control-allow-methods: PUT\naccess-control-allow-headers: x-token\naccess-control-max-age: 30\n"
	if !ok || fields(out) != want {
		t.Errorf("route preflight:\n%s\nwant:\n%s", fields(out), want)
	}
	if v, _ := get(p.Actual(hdrs("origin", "https://a.example.org"), nil), "access-control-expose-headers"); v != "x-id" {
		t.Errorf("route expose %q", v)
	}
	// uint64 and int max_age (decoders differ), []string lists (Go callers).
	for _, age := range []any{uint64(5), 5} {
		if _, err := ForRoute(nil, map[string]any{"allow_origins": []string{"*"}, "max_age": age}); err != nil {
			t.Errorf("max_age %T: %v", age, err)
		}
	}

	bad := []struct {
		opt  any
		want string
	}{
		{true, `cors: true is not a policy`},
		{"yes", `cors is str, want false or a map`},
		{map[string]any{}, `cors.allow_origins: required`},
		{map[string]any{"allow_origins": []any{}}, `cors.allow_origins: required`},
		{map[string]any{"allow_origins": []any{"https://a.example", 7}}, `cors.allow_origins[1] is int, want string`},
		{map[string]any{"allow_origins": "https://a.example"}, `cors.allow_origins is str, want array of strings`},
		{map[string]any{"allow_origins": []any{"https://a.example", "https://b.example/x"}}, `cors.allow_origins[1] "https://b.example/x": an origin has no path`},
		{map[string]any{"allow_origins": []any{"*"}, "allow_credentials": true}, `cors.allow_origins: "*" cannot be used with cors.allow_credentials`},
		{map[string]any{"allow_origins": []any{"*"}, "allow_credentials": "yes"}, `cors.allow_credentials is str, want bool`},
		{map[string]any{"allow_origins": []any{"*"}, "max_age": "60"}, `cors.max_age is str, want integer`},
		{map[string]any{"allow_origins": []any{"*"}, "max_age": int64(-1)}, `cors.max_age: -1 is negative`},
		{map[string]any{"allow_origins": []any{"*"}, "allow_methods": []any{"G T"}}, `cors.allow_methods[0] "G T": not a method name`},
		{map[string]any{"allow_origins": []any{"*"}, "allow_headers": []any{nil}}, `cors.allow_headers[0] is nil, want string`},
		{map[string]any{"allow_origins": []any{"*"}, "expose": []any{"x"}}, `cors.expose: unknown key`},
	}
	for _, c := range bad {
		_, err := ForRoute(def, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ForRoute(%#v) = %v, want an error containing %q", c.opt, err, c.want)
		}
	}
}

// The gateway calls Actual on every response of a route with a policy: it
// must not allocate when there is no Origin, nor for a refused or exact one.
func TestActualAllocs(t *testing.T) {
	p := mustNew(t, Config{AllowOrigins: []string{"https://app.example.com", "https://*.example.net"},
		AllowCredentials: true, ExposeHeaders: []string{"x-id"}})
	star := mustNew(t, Config{AllowOrigins: []string{"*"}})
	buf := make([]workerproto.Header, 0, 16)
	for _, c := range []struct {
		name string
		p    *Policy
		req  []workerproto.Header
	}{
		{"no origin", p, hdrs("accept", "*/*", "host", "x")},
		{"exact", p, hdrs("origin", "https://app.example.com")},
		{"refused", p, hdrs("origin", "https://evil.example")},
		{"refused wildcard", p, hdrs("origin", "https://evil.example.net.x")},
		{"star", star, hdrs("origin", "https://evil.example")},
	} {
		n := testing.AllocsPerRun(100, func() { buf = c.p.Actual(c.req, buf[:0]) })
		if n != 0 {
			t.Errorf("%s: %v allocations per Actual, want 0", c.name, n)
		}
	}
	n := testing.AllocsPerRun(100, func() { IsPreflight("OPTIONS", hdrs0) })
	if n != 0 {
		t.Errorf("IsPreflight: %v allocations", n)
	}
}

var hdrs0 = hdrs("origin", "https://a.example", "access-control-request-method", "PUT")

func BenchmarkActual(b *testing.B) {
	p, _ := New(Config{AllowOrigins: []string{"https://app.example.com", "https://*.example.net"}, AllowCredentials: true})
	for _, c := range []struct {
		name string
		req  []workerproto.Header
	}{
		{"NoOrigin", hdrs("accept", "*/*", "host", "x", "user-agent", "bench")},
		{"Exact", hdrs("accept", "*/*", "host", "x", "origin", "https://app.example.com")},
		{"Wildcard", hdrs("accept", "*/*", "host", "x", "origin", "https://a.example.net")},
	} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]workerproto.Header, 0, 16)
			b.ReportAllocs()
			for b.Loop() {
				buf = p.Actual(c.req, buf[:0])
			}
		})
	}
}

func BenchmarkPreflight(b *testing.B) {
	p, _ := New(Config{AllowOrigins: []string{"https://app.example.com"}, AllowMethods: []string{"GET", "PUT"},
		AllowHeaders: []string{"x-token", "content-type"}, MaxAge: time.Hour})
	req := hdrs("origin", "https://app.example.com", "access-control-request-method", "PUT",
		"access-control-request-headers", "x-token, content-type")
	buf := make([]workerproto.Header, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = p.Preflight(req, buf[:0])
	}
}
