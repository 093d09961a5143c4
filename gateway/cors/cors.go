package cors

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/covetpy/covetpy/workerproto"
)

// Config is the gateway's default CORS policy (the cors_* settings). The zero
// value turns CORS off.
type Config struct {
	// AllowOrigins: "*", exact origins ("https://app.example.com") or
	// wildcard subdomains ("https://*.example.com"); empty = CORS off.
	AllowOrigins []string `config:"cors_allow_origins" help:"origins allowed to read responses from a browser: *, an exact origin (https://app.example.com) or a wildcard subdomain (https://*.example.com); empty = CORS off"`
	// AllowMethods: methods a preflight may ask for; empty = GET, HEAD, POST.
	AllowMethods []string `config:"cors_allow_methods" help:"methods a cross-origin request may use (* = any); empty = GET,HEAD,POST"`
	// AllowHeaders: request headers a preflight may ask for; "*" = any but
	// authorization; empty = none.
	AllowHeaders []string `config:"cors_allow_headers" help:"request headers a cross-origin request may send (* = any but authorization, which must be named)"`
	// ExposeHeaders: response headers a script may read beyond the safelisted
	// ones; empty = none.
	ExposeHeaders []string `config:"cors_expose_headers" help:"response headers a cross-origin script may read beyond the safelisted ones (* = any, not with credentials)"`
	// AllowCredentials: cookies and HTTP authentication may come with a
	// cross-origin request (access-control-allow-credentials: true); refused
	// with AllowOrigins "*". Default false.
	AllowCredentials bool `config:"cors_allow_credentials" help:"let cross-origin requests carry cookies and HTTP authentication; not with cors_allow_origins *"`
	// MaxAge: how long a browser may cache a preflight's answer, whole
	// seconds; 0 = no Access-Control-Max-Age field (the browser's default, 5s).
	MaxAge time.Duration `config:"cors_max_age" help:"how long a browser may cache a preflight answer (whole seconds); 0 = no Access-Control-Max-Age"`
}

// Policy is a compiled CORS policy. A nil *Policy is CORS off: Actual and
// Preflight then add nothing.
type Policy struct {
	anyOrigin bool
	exact     [][]byte   // lower-case origins, "null" included
	wild      []wildcard // wildcard subdomain patterns

	anyMethod    bool
	methods      []string // upper case
	methodsValue []byte   // the access-control-allow-methods value

	anyHeader    bool
	headers      []string // lower case, without "*"
	headersValue []byte   // "a, b" or "*, a, b"; nil when none

	exposeValue []byte // nil when none
	credentials bool
	maxAgeValue []byte // decimal seconds; nil when absent
}

// wildcard is "scheme://*.suffix[:port]".
type wildcard struct {
	scheme string // "https"
	suffix string // ".example.com"
	port   string // "8443", or "" for none
}

// The fields this package writes. Shared, read-only.
var (
	nameOrigin  = "origin"
	nameReqMeth = "access-control-request-method"
	nameReqHdrs = "access-control-request-headers"

	hVary     = []byte("vary")
	hAllowOri = []byte("access-control-allow-origin")
	hAllowCre = []byte("access-control-allow-credentials")
	hAllowMet = []byte("access-control-allow-methods")
	hAllowHdr = []byte("access-control-allow-headers")
	hExpose   = []byte("access-control-expose-headers")
	hMaxAge   = []byte("access-control-max-age")

	vStar          = []byte("*")
	vTrue          = []byte("true")
	vOrigin        = []byte("origin")
	vPreflightVary = []byte("origin, access-control-request-method, access-control-request-headers")
)

// New compiles the gateway's default policy. It returns nil, nil when
// AllowOrigins is empty (CORS off). Errors name the setting.
func New(cfg Config) (*Policy, error) {
	if len(cfg.AllowOrigins) == 0 {
		return nil, nil
	}
	if cfg.MaxAge < 0 {
		return nil, fmt.Errorf("cors_max_age: %s is negative", cfg.MaxAge)
	}
	if cfg.MaxAge%time.Second != 0 {
		return nil, fmt.Errorf("cors_max_age: %s is not a whole number of seconds", cfg.MaxAge)
	}
	return compile(settingKey, cfg.AllowOrigins, cfg.AllowMethods, cfg.AllowHeaders,
		cfg.ExposeHeaders, cfg.AllowCredentials, int64(cfg.MaxAge/time.Second))
}

// keyFunc spells the name of setting k ("allow_origins") in errors.
type keyFunc func(k string) string

func settingKey(k string) string { return "cors_" + k }
func optionKey(k string) string  { return "cors." + k }

// ForRoute compiles a route's "cors" option (PROTOCOL.md 1.3) against the
// gateway's default def: absent (nil) keeps def; false turns CORS off for the
// route (nil); a map replaces def altogether, keys allow_origins (required),
// allow_methods, allow_headers, expose_headers (arrays of str), allow_credentials
// (bool) and max_age (int, seconds), with the defaults of Config for the keys
// it lacks. An unknown key or a bad value is an error naming it
// ("cors.allow_origins[1] ...").
func ForRoute(def *Policy, opt any) (*Policy, error) {
	switch o := opt.(type) {
	case nil:
		return def, nil
	case bool:
		if o {
			return nil, fmt.Errorf("cors: true is not a policy, want false or a map")
		}
		return nil, nil
	case map[string]any:
		var (
			lists [4][]string
			creds bool
			age   int64
		)
		names := [4]string{"allow_origins", "allow_methods", "allow_headers", "expose_headers"}
		for k, v := range o {
			switch k {
			case "allow_credentials":
				b, ok := v.(bool)
				if !ok {
					return nil, fmt.Errorf("cors.allow_credentials is %s, want bool", workerproto.TypeName(v))
				}
				creds = b
			case "max_age":
				n, ok := toInt(v)
				if !ok {
					return nil, fmt.Errorf("cors.max_age is %s, want integer (seconds)", workerproto.TypeName(v))
				}
				if n < 0 {
					return nil, fmt.Errorf("cors.max_age: %d is negative", n)
				}
				age = n
			default:
				i := indexOf(names[:], k)
				if i < 0 {
					return nil, fmt.Errorf("cors.%s: unknown key (want allow_origins, allow_methods, allow_headers, expose_headers, allow_credentials or max_age)", k)
				}
				l, err := toStrings("cors."+k, v)
				if err != nil {
					return nil, err
				}
				lists[i] = l
			}
		}
		if len(lists[0]) == 0 {
			return nil, fmt.Errorf("cors.allow_origins: required, at least one origin (cors=False turns CORS off for a route)")
		}
		return compile(optionKey, lists[0], lists[1], lists[2], lists[3], creds, age)
	default:
		return nil, fmt.Errorf("cors is %s, want false or a map", workerproto.TypeName(opt))
	}
}

func compile(key keyFunc, origins, methods, headers, expose []string, creds bool, maxAge int64) (*Policy, error) {
	p := &Policy{credentials: creds}
	for i, o := range origins {
		if o == "*" {
			if len(origins) != 1 {
				return nil, fmt.Errorf("%s[%d] \"*\": must be the only origin", key("allow_origins"), i)
			}
			if creds {
				return nil, fmt.Errorf("%s: \"*\" cannot be used with %s (the Fetch standard forbids it); list the origins instead",
					key("allow_origins"), key("allow_credentials"))
			}
			p.anyOrigin = true
			continue
		}
		w, exact, err := parseOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] %q: %s", key("allow_origins"), i, o, err)
		}
		if exact != "" {
			p.exact = append(p.exact, []byte(exact))
		} else {
			p.wild = append(p.wild, w)
		}
	}

	if len(methods) == 0 {
		methods = []string{"GET", "HEAD", "POST"}
	}
	for i, m := range methods {
		if m == "*" {
			p.anyMethod = true
			continue
		}
		if !isToken(m) {
			return nil, fmt.Errorf("%s[%d] %q: not a method name (an HTTP token)", key("allow_methods"), i, m)
		}
		m = strings.ToUpper(m)
		if indexOf(p.methods, m) < 0 {
			p.methods = append(p.methods, m)
		}
	}
	if p.anyMethod && !creds {
		p.methodsValue = joinValue(append([]string{"*"}, p.methods...))
	} else {
		p.methodsValue = joinValue(p.methods)
	}

	for i, h := range headers {
		if h == "*" {
			p.anyHeader = true
			continue
		}
		if !isToken(h) {
			return nil, fmt.Errorf("%s[%d] %q: not a header name (an HTTP token)", key("allow_headers"), i, h)
		}
		h = strings.ToLower(h)
		if indexOf(p.headers, h) < 0 {
			p.headers = append(p.headers, h)
		}
	}
	switch {
	case p.anyHeader && !creds:
		p.headersValue = joinValue(append([]string{"*"}, p.headers...))
	case len(p.headers) > 0:
		p.headersValue = joinValue(p.headers)
	}

	var ex []string
	for i, h := range expose {
		if h == "*" {
			if creds {
				return nil, fmt.Errorf("%s[%d] \"*\": cannot be used with %s (browsers take it literally then); list the names",
					key("expose_headers"), i, key("allow_credentials"))
			}
		} else if !isToken(h) {
			return nil, fmt.Errorf("%s[%d] %q: not a header name (an HTTP token)", key("expose_headers"), i, h)
		}
		h = strings.ToLower(h)
		if indexOf(ex, h) < 0 {
			ex = append(ex, h)
		}
	}
	p.exposeValue = joinValue(ex)

	if maxAge > 0 {
		p.maxAgeValue = strconv.AppendInt(nil, maxAge, 10)
	}
	return p, nil
}

// parseOrigin checks a configured origin: "null", scheme://host[:port], or
// scheme://*.suffix[:port]. It returns the lower-case exact origin, or the
// wildcard.
func parseOrigin(o string) (wildcard, string, error) {
	lo := strings.ToLower(o)
	if lo == "null" {
		return wildcard{}, "null", nil
	}
	scheme, rest, ok := strings.Cut(lo, "://")
	if !ok {
		return wildcard{}, "", fmt.Errorf("want scheme://host[:port], \"*\" or \"null\"")
	}
	if !isScheme(scheme) {
		return wildcard{}, "", fmt.Errorf("bad scheme %q", scheme)
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		return wildcard{}, "", fmt.Errorf("an origin has no path, query or fragment (drop %q)", rest[i:])
	}
	if strings.Contains(rest, "@") {
		return wildcard{}, "", fmt.Errorf("an origin has no user info")
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return wildcard{}, "", fmt.Errorf("unclosed IPv6 literal")
		}
		host, rest = rest[:end+1], rest[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return wildcard{}, "", fmt.Errorf("junk after the IPv6 literal")
			}
			port = rest[1:]
			if err := checkPort(port); err != nil {
				return wildcard{}, "", err
			}
		}
		if !isIPv6Literal(host[1 : len(host)-1]) {
			return wildcard{}, "", fmt.Errorf("bad IPv6 literal %q", host)
		}
		return wildcard{}, lo, nil
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i+1:]
		if err := checkPort(port); err != nil {
			return wildcard{}, "", err
		}
	}
	if suffix, ok := strings.CutPrefix(host, "*."); ok {
		if !isHostname(suffix) {
			return wildcard{}, "", fmt.Errorf("bad host %q after \"*.\"", suffix)
		}
		return wildcard{scheme: scheme, suffix: "." + suffix, port: port}, "", nil
	}
	if strings.Contains(host, "*") {
		return wildcard{}, "", fmt.Errorf("a wildcard must be the whole first label (\"*.example.com\")")
	}
	if !isHostname(host) {
		return wildcard{}, "", fmt.Errorf("bad host %q", host)
	}
	return wildcard{}, lo, nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || p[0] == '0' || p[0] == '+' {
		return fmt.Errorf("bad port %q", p)
	}
	return nil
}

// isScheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), lower case.
func isScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// isHostname: dot-separated non-empty labels of [a-z0-9-] (lower case), which
// also covers IPv4 addresses.
func isHostname(s string) bool {
	return isLabels([]byte(s))
}

func isLabels(s []byte) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	n := 0 // current label's length
	for _, c := range s {
		switch {
		case c == '.':
			if n == 0 {
				return false
			}
			n = 0
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			n++
			if n > 63 {
				return false
			}
		default:
			return false
		}
	}
	return n > 0
}

func isIPv6Literal(s string) bool {
	if s == "" {
		return false
	}
	colons := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ':':
			colons++
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c == '.':
		default:
			return false
		}
	}
	return colons >= 2
}

// isToken: RFC 9110 5.6.2 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar(s[i]) {
			return false
		}
	}
	return true
}

func tchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func joinValue(l []string) []byte {
	if len(l) == 0 {
		return nil
	}
	return []byte(strings.Join(l, ", "))
}

func indexOf(l []string, s string) int {
	for i, x := range l {
		if x == s {
			return i
		}
	}
	return -1
}

func toStrings(key string, v any) ([]string, error) {
	switch l := v.(type) {
	case []string:
		return l, nil
	case []any:
		out := make([]string, len(l))
		for i, x := range l {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("%s[%d] is %s, want string", key, i, workerproto.TypeName(x))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is %s, want array of strings", key, workerproto.TypeName(v))
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case uint64:
		if n > 1<<62 {
			return 1 << 62, true
		}
		return int64(n), true
	}
	return 0, false
}

// IsPreflight reports whether a request is a CORS preflight: OPTIONS with an
// Origin and an Access-Control-Request-Method field. Header names are compared
// without regard to case. It allocates nothing.
func IsPreflight(method string, headers []workerproto.Header) bool {
	if method != "OPTIONS" {
		return false
	}
	var o, m bool
	for i := range headers {
		switch {
		case workerproto.NameIs(headers[i].Name, nameOrigin):
			o = true
		case workerproto.NameIs(headers[i].Name, nameReqMeth):
			m = true
		}
	}
	return o && m
}

// origin returns the request's one Origin value; ok is false when there is
// none, or more than one (a malformed request, never allowed).
func origin(headers []workerproto.Header) (v []byte, ok bool) {
	n := 0
	for i := range headers {
		if workerproto.NameIs(headers[i].Name, nameOrigin) {
			v = headers[i].Value
			n++
		}
	}
	return v, n == 1
}

// AllowsOrigin reports whether the policy allows the request origin o. The
// gateway asks it for a WebSocket upgrade, which the CORS protocol does not
// cover: a page on another origin may open a WebSocket with the user's
// cookies (cross-site WebSocket hijacking), so an upgrade whose Origin the
// route's policy does not allow, and that is not same-origin, is refused. A
// nil Policy allows every origin.
func (p *Policy) AllowsOrigin(o []byte) bool { return p == nil || p.allowOrigin(o) != nil }

// allowOrigin returns the access-control-allow-origin value for the request
// origin o, or nil when o is not allowed.
func (p *Policy) allowOrigin(o []byte) []byte {
	o = bytes.TrimSpace(o)
	if len(o) == 0 {
		return nil
	}
	if p.anyOrigin {
		return vStar
	}
	for _, e := range p.exact {
		if bytes.EqualFold(o, e) {
			return e
		}
	}
	for i := range p.wild {
		if p.wild[i].match(o) {
			return bytes.Clone(o)
		}
	}
	return nil
}

// match reports whether origin o is scheme://<labels><suffix>[:port].
func (w *wildcard) match(o []byte) bool {
	if len(o) < len(w.scheme)+3 || !strings.EqualFold(string(o[:len(w.scheme)]), w.scheme) ||
		string(o[len(w.scheme):len(w.scheme)+3]) != "://" {
		return false
	}
	rest := o[len(w.scheme)+3:]
	host := rest
	if i := bytes.LastIndexByte(rest, ':'); i >= 0 {
		if w.port == "" || string(rest[i+1:]) != w.port {
			return false
		}
		host = rest[:i]
	} else if w.port != "" {
		return false
	}
	if len(host) <= len(w.suffix) || !strings.EqualFold(string(host[len(host)-len(w.suffix):]), w.suffix) {
		return false
	}
	return isLabels(host[:len(host)-len(w.suffix)])
}

// varies reports whether the response fields hs already list name in a Vary
// field (or "*").
func varies(hs []workerproto.Header, name string) bool {
	for i := range hs {
		if !workerproto.NameIs(hs[i].Name, "vary") {
			continue
		}
		for v := hs[i].Value; len(v) > 0; {
			var item []byte
			if j := bytes.IndexByte(v, ','); j >= 0 {
				item, v = v[:j], v[j+1:]
			} else {
				item, v = v, nil
			}
			item = bytes.TrimSpace(item)
			if string(item) == "*" || strings.EqualFold(string(item), name) {
				return true
			}
		}
	}
	return false
}

func has(hs []workerproto.Header, name []byte) bool {
	for i := range hs {
		if bytes.EqualFold(hs[i].Name, name) {
			return true
		}
	}
	return false
}

// Actual appends to hs, a response's header fields, the CORS fields for a
// request that is not a preflight, and returns the extended slice; headers
// are the request's. With an allowed Origin: access-control-allow-origin,
// -allow-credentials (when allowed) and -expose-headers (when configured).
// Unless the policy is "*": vary: origin, whether or not the request has an
// Origin. When hs already has access-control-allow-origin (the worker's own
// CORS answer), only Vary is added. A nil Policy adds nothing. It allocates
// nothing (beyond growing hs) but for a wildcard match (see the package doc).
func (p *Policy) Actual(headers []workerproto.Header, hs []workerproto.Header) []workerproto.Header {
	if p == nil {
		return hs
	}
	if !p.anyOrigin && !varies(hs, "origin") {
		hs = append(hs, workerproto.Header{Name: hVary, Value: vOrigin})
	}
	if has(hs, hAllowOri) {
		return hs
	}
	var allow []byte
	if p.anyOrigin {
		// "*" is the same answer with or without an Origin (Fetch 3.2.5:
		// then no Vary is needed).
		allow = vStar
	} else if o, ok := origin(headers); ok {
		allow = p.allowOrigin(o)
	}
	if allow == nil {
		return hs
	}
	hs = append(hs, workerproto.Header{Name: hAllowOri, Value: allow})
	if p.credentials {
		hs = append(hs, workerproto.Header{Name: hAllowCre, Value: vTrue})
	}
	if p.exposeValue != nil {
		hs = append(hs, workerproto.Header{Name: hExpose, Value: p.exposeValue})
	}
	return hs
}

// Preflight appends to hs the fields answering a preflight (IsPreflight) whose
// request fields are headers, and reports whether the policy allows it: the
// origin, the requested method and every requested header. Allowed:
// access-control-allow-origin, -allow-methods, -allow-headers (when headers
// were requested), -allow-credentials (when allowed), -max-age (when set).
// Refused: none of those, so that the browser fails the request. Always the
// Vary field naming origin and the two request fields. A nil Policy appends
// nothing and allows nothing (the caller should not answer preflights then).
func (p *Policy) Preflight(headers []workerproto.Header, hs []workerproto.Header) (out []workerproto.Header, allowed bool) {
	if p == nil {
		return hs, false
	}
	hs = append(hs, workerproto.Header{Name: hVary, Value: vPreflightVary})
	o, ok := origin(headers)
	if !ok {
		return hs, false
	}
	allow := p.allowOrigin(o)
	if allow == nil {
		return hs, false
	}
	var method []byte
	n := 0
	for i := range headers {
		if workerproto.NameIs(headers[i].Name, nameReqMeth) {
			method = bytes.TrimSpace(headers[i].Value)
			n++
		}
	}
	if n != 1 || !isToken(string(method)) {
		return hs, false
	}
	methodListed := false
	for _, m := range p.methods {
		if strings.EqualFold(string(method), m) {
			methodListed = true
			break
		}
	}
	if !methodListed && !p.anyMethod {
		return hs, false
	}

	// Requested headers: every item of every access-control-request-headers
	// field must be allowed.
	requested := false
	for i := range headers {
		if !workerproto.NameIs(headers[i].Name, nameReqHdrs) {
			continue
		}
		ok := eachItem(headers[i].Value, func(h []byte) bool {
			requested = true
			if !isToken(string(h)) {
				return false
			}
			for _, a := range p.headers {
				if strings.EqualFold(string(h), a) {
					return true
				}
			}
			return p.anyHeader && !strings.EqualFold(string(h), "authorization")
		})
		if !ok {
			return hs, false
		}
	}

	hs = append(hs, workerproto.Header{Name: hAllowOri, Value: allow})
	if p.credentials {
		hs = append(hs, workerproto.Header{Name: hAllowCre, Value: vTrue})
	}
	exact := false
	for _, m := range p.methods {
		if m == string(method) {
			exact = true
			break
		}
	}
	mv := p.methodsValue
	if !exact && (p.credentials || !p.anyMethod) {
		// "*" with credentials, or a method spelled in another case than
		// configured (fetch() sends "patch" as given): browsers compare the
		// method byte for byte, so name it as requested.
		mv = appendItem(bytes.Clone(mv), method)
	}
	hs = append(hs, workerproto.Header{Name: hAllowMet, Value: mv})
	if requested {
		hv := p.headersValue
		if p.anyHeader && p.credentials {
			// Browsers take "*" literally with credentials: echo the names.
			hv = nil
			for i := range headers {
				if workerproto.NameIs(headers[i].Name, nameReqHdrs) {
					eachItem(headers[i].Value, func(h []byte) bool {
						hv = appendItem(hv, bytes.ToLower(h))
						return true
					})
				}
			}
		}
		hs = append(hs, workerproto.Header{Name: hAllowHdr, Value: hv})
	}
	if p.maxAgeValue != nil {
		hs = append(hs, workerproto.Header{Name: hMaxAge, Value: p.maxAgeValue})
	}
	return hs, true
}

// eachItem calls f on each non-empty item of the comma-separated list v,
// trimmed of optional whitespace, and stops at the first false.
func eachItem(v []byte, f func([]byte) bool) bool {
	for len(v) > 0 {
		var item []byte
		if j := bytes.IndexByte(v, ','); j >= 0 {
			item, v = v[:j], v[j+1:]
		} else {
			item, v = v, nil
		}
		item = bytes.Trim(item, " \t")
		if len(item) > 0 && !f(item) {
			return false
		}
	}
	return true
}

func appendItem(l, item []byte) []byte {
	if len(l) > 0 {
		l = append(l, ", "...)
	}
	return append(l, item...)
}
