package workerproto

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Manifest limits (PROTOCOL.md 1.3 and 4).
const (
	MaxRoutes    = 4096 // routes in one hello
	MaxRoutePath = 2048 // bytes of one route path
	MaxAppName   = 64   // bytes of a hello's app name
)

var routeMethods = map[string]bool{
	"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true,
	"HEAD": true, "OPTIONS": true, "*": true,
}

var routeKinds = map[string]bool{"http": true, "ws": true, "grpc": true, "static": true}

// Validate checks a hello against PROTOCOL.md 1.3: the version (an error wrapping
// ErrVersion), the pid, the app name, and the manifest (a *ManifestError naming the
// first bad route). It does not check the token; the gateway does that (CheckToken).
func (h *Hello) Validate() error {
	if h.Version != Version {
		return fmt.Errorf("%w: hello version %d (this gateway speaks %d)", ErrVersion, h.Version, Version)
	}
	if h.PID <= 0 || h.PID > math.MaxInt32 {
		return fmt.Errorf("%w: hello pid %d out of range", ErrProtocol, h.PID)
	}
	if err := ValidAppName(h.App); err != nil {
		return err
	}
	return ValidateRoutes(h.Routes)
}

// ValidAppName checks an app name: 1..64 bytes of [A-Za-z0-9_.-].
func ValidAppName(app string) error {
	if len(app) == 0 || len(app) > MaxAppName {
		return fmt.Errorf("%w: app name of %d bytes (want 1..%d)", ErrProtocol, len(app), MaxAppName)
	}
	for i := 0; i < len(app); i++ {
		c := app[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%w: app name %s: byte %d is not one of [A-Za-z0-9_.-]", ErrProtocol, strconv.Quote(app), i)
		}
	}
	return nil
}

type routeKey struct{ method, path string }

// ValidateRoutes checks a manifest: at most MaxRoutes routes; each with a known
// method, a path that starts with '/' and is at most MaxRoutePath bytes, a known
// kind, well-typed known options; no (method, path) pair twice. The error is a
// *ManifestError for the first problem found.
func ValidateRoutes(routes []Route) error {
	if len(routes) > MaxRoutes {
		return &ManifestError{Index: -1, Problem: fmt.Sprintf("%d routes, at most %d allowed", len(routes), MaxRoutes)}
	}
	seen := make(map[routeKey]int, len(routes))
	for i := range routes {
		r := &routes[i]
		bad := func(format string, args ...any) error {
			return &ManifestError{Index: i, Method: r.Method, Path: r.Path, Problem: fmt.Sprintf(format, args...)}
		}
		switch {
		case !routeMethods[r.Method]:
			return bad("method %s is not one of GET POST PUT PATCH DELETE HEAD OPTIONS *", strconv.Quote(r.Method))
		case len(r.Path) == 0 || r.Path[0] != '/':
			return bad("path does not start with '/'")
		case len(r.Path) > MaxRoutePath:
			return bad("path of %d bytes, at most %d allowed", len(r.Path), MaxRoutePath)
		case !routeKinds[r.Kind]:
			return bad("kind %s is not one of http ws grpc static", strconv.Quote(r.Kind))
		case r.Kind == "static" && r.Method != "GET":
			return bad("a static route's method is GET, not %s", r.Method)
		case r.Options["http"] != nil && r.Kind != "ws":
			return bad("option http is for a ws route, not a %s one", r.Kind)
		}
		if r.Kind == "static" {
			if d, _ := r.Options["dir"].(string); len(d) == 0 || d[0] != '/' {
				return bad("a static route needs option dir, an absolute path")
			}
			if !strings.HasSuffix(r.Path, "...}") && !strings.HasSuffix(r.Path, ":path}") {
				return bad("a static route's path ends in a catch-all parameter ({path...})")
			}
		}
		if err := checkOptions(r.Options); err != "" {
			return bad("%s", err)
		}
		k := routeKey{r.Method, r.Path}
		if j, dup := seen[k]; dup {
			return bad("duplicate of route %d", j)
		}
		seen[k] = i
	}
	return nil
}

// checkOptions checks the types of the known option keys.
func checkOptions(o map[string]any) string {
	if v, ok := o["name"]; ok {
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("option name is %T, want string", v)
		}
	}
	if v, ok := o["timeout_ms"]; ok {
		switch n := v.(type) {
		case int64:
			if n < 0 {
				return "option timeout_ms is negative"
			}
		case int:
			if n < 0 {
				return "option timeout_ms is negative"
			}
		case uint64:
		default:
			return fmt.Sprintf("option timeout_ms is %T, want integer", v)
		}
	}
	for _, k := range [...]string{"resumable", "http", "index", "auth", "compress"} {
		if v, ok := o[k]; ok {
			if _, ok := v.(bool); !ok {
				return fmt.Sprintf("option %s is %T, want bool", k, v)
			}
		}
	}
	for _, k := range [...]string{"dir", "rate_limit", "rate_limit_key"} {
		if v, ok := o[k]; ok {
			if _, ok := v.(string); !ok {
				return fmt.Sprintf("option %s is %T, want string", k, v)
			}
		}
	}
	for _, k := range [...]string{"roles", "scopes"} {
		if v, ok := o[k]; ok {
			if p := checkStrings(k, v); p != "" {
				return p
			}
		}
	}
	// cors and security_headers: false, or a map (PROTOCOL.md 1.3); the
	// gateway checks the map's keys when it registers the route.
	for _, k := range [...]string{"cors", "security_headers"} {
		switch v := o[k].(type) {
		case nil, map[string]any:
		case bool:
			if v {
				return fmt.Sprintf("option %s is true, want false or a map", k)
			}
		default:
			return fmt.Sprintf("option %s is %T, want false or a map", k, v)
		}
	}
	return ""
}

// checkStrings checks that v, option k, is an array of strings.
func checkStrings(k string, v any) string {
	switch rs := v.(type) {
	case []string:
	case []any:
		for j, x := range rs {
			if _, ok := x.(string); !ok {
				return fmt.Sprintf("option %s[%d] is %T, want string", k, j, x)
			}
		}
	default:
		return fmt.Sprintf("option %s is %T, want array of strings", k, v)
	}
	return ""
}

// Name returns the route's "name" option, or "".
func (r *Route) Name() string { s, _ := r.Options["name"].(string); return s }

// TimeoutMS returns the route's "timeout_ms" option, or 0.
func (r *Route) TimeoutMS() int64 {
	switch n := r.Options["timeout_ms"].(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case uint64:
		return math.MaxInt64
	}
	return 0
}

// Roles returns the route's "roles" option, or nil.
func (r *Route) Roles() []string { return r.Strings("roles") }

// Scopes returns the route's "scopes" option, or nil.
func (r *Route) Scopes() []string { return r.Strings("scopes") }

// Strings returns the route's option k, an array of strings, or nil.
func (r *Route) Strings(k string) []string {
	switch rs := r.Options[k].(type) {
	case []string:
		return rs
	case []any:
		out := make([]string, 0, len(rs))
		for _, x := range rs {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Resumable reports the "resumable" option of a ws route (PROTOCOL.md 1.3).
func (r *Route) Resumable() bool { b, _ := r.Options["resumable"].(bool); return b }

// AlsoHTTP reports the "http" option of a ws route (PROTOCOL.md 1.3): a
// plain (non-upgrade) request for it is an HTTP request to the worker.
func (r *Route) AlsoHTTP() bool { b, _ := r.Options["http"].(bool); return b }

// Dir returns a static route's "dir" option, or "".
func (r *Route) Dir() string { s, _ := r.Options["dir"].(string); return s }

// Index reports a static route's "index" option.
func (r *Route) Index() bool { b, _ := r.Options["index"].(bool); return b }
