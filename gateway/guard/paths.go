package guard

import (
	"fmt"
	"sort"
	"strings"

	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// pathPolicy is one path_policy setting: the routes' security options for
// every request whose path is prefix or lies under it.
type pathPolicy struct {
	prefix string // canonical, without a trailing '/' unless it is "/"
	p      *policy
}

// parsePathPolicies compiles the path_policy settings, each "PREFIX=OPTION
// OPTION ...", into policies longest prefix first. The options, separated by
// spaces (a comma separates list items in the environment and on flags), are
// spelt as `covet routes` shows a route's: auth, roles=a|b, scopes=a|b,
// rate=N/unit (or none), key=ip|subject|header:Name, cors=off|on,
// headers=off|on, compress=off|on.
func (c *Chain) parsePathPolicies(entries []string) ([]pathPolicy, error) {
	var out []pathPolicy
	seen := map[string]bool{}
	for _, e := range entries {
		prefix, opts, ok := strings.Cut(e, "=")
		if !ok || !strings.HasPrefix(prefix, "/") {
			return nil, fmt.Errorf("path_policy %q: want PREFIX=OPTIONS, e.g. \"/admin=auth roles=admin rate=10/minute\"", e)
		}
		if canon, changed := router.AppendCanonicalPath(nil, prefix); changed {
			prefix = string(canon)
		}
		if len(prefix) > 1 {
			prefix = strings.TrimSuffix(prefix, "/")
		}
		if seen[prefix] {
			return nil, fmt.Errorf("path_policy %q: prefix %s given twice", e, prefix)
		}
		seen[prefix] = true
		r := &workerproto.Route{Method: "*", Path: prefix, Kind: "http", Options: map[string]any{}}
		for _, opt := range strings.Fields(opts) {
			if err := setPathOption(r.Options, opt); err != nil {
				return nil, fmt.Errorf("path_policy %q: %w", e, err)
			}
		}
		p, err := c.CompileRoute("path", r)
		if err != nil {
			return nil, fmt.Errorf("path_policy %q: %w", e, err)
		}
		out = append(out, pathPolicy{prefix: prefix, p: p.(*policy)})
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].prefix) > len(out[j].prefix) })
	return out, nil
}

// setPathOption sets one path_policy option, in the spelling of `covet
// routes`, as the manifest option it stands for.
func setPathOption(o map[string]any, opt string) error {
	name, value, hasValue := strings.Cut(opt, "=")
	onOff := func(key string) error {
		switch value {
		case "off":
			o[key] = false
		case "on":
			o[key] = true
		default:
			return fmt.Errorf("%s must be on or off, got %q", name, value)
		}
		return nil
	}
	switch {
	case name == "auth" && !hasValue:
		o["auth"] = true
	case name == "roles" || name == "scopes":
		items := []any{}
		for s := range strings.SplitSeq(value, "|") {
			if s != "" {
				items = append(items, s)
			}
		}
		if len(items) == 0 {
			return fmt.Errorf("%s needs at least one name (%s=a|b)", name, name)
		}
		o[name] = items
	case name == "rate" && hasValue:
		o["rate_limit"] = value
	case name == "key" && hasValue:
		o["rate_limit_key"] = value
	case name == "cors" && hasValue:
		return onOff("cors")
	case name == "headers" && hasValue:
		return onOff("security_headers")
	case name == "compress" && hasValue:
		return onOff("compress")
	default:
		return fmt.Errorf("unknown option %q (want auth, roles=, scopes=, rate=, key=, cors=, headers=, compress=)", opt)
	}
	return nil
}

// pathPolicyFor is the policy of the longest path_policy prefix that path
// (the request's raw path) is or lies under, in canonical form so that an
// escaped spelling of a protected path is still under it; nil when none.
func (c *Chain) pathPolicyFor(path string) *policy {
	if canon, changed := router.AppendCanonicalPath(nil, path); changed {
		path = string(canon)
	}
	for i := range c.paths {
		pp := &c.paths[i]
		if pp.prefix == "/" || path == pp.prefix ||
			(strings.HasPrefix(path, pp.prefix) && path[len(pp.prefix)] == '/') {
			return pp.p
		}
	}
	return nil
}
