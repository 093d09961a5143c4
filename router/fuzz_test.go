package router

import (
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// refMatch is a slow reference matcher written straight from the package
// doc: split pattern and path into segments, match segment by segment, and
// among the routes that match pick the one whose per-segment specificity
// (static 0, typed 1, str 2, catch-all 3) is lexicographically smallest.
// It returns the winning route index (-1 if none), its parameter values, and
// whether two matching routes tied (which a conflict check must prevent).
func refMatch(pats []*pattern, path string) (best int, values []string, tie bool) {
	best = -1
	var bestKey []int
	for i, p := range pats {
		key, vals, ok := refMatchOne(p, path)
		if !ok {
			continue
		}
		switch c := slices.Compare(key, bestKey); {
		case best < 0 || c < 0:
			best, bestKey, values, tie = i, key, vals, false
		case c == 0:
			tie = true
		}
	}
	return best, values, tie
}

func refMatchOne(p *pattern, path string) (key []int, values []string, ok bool) {
	if path == "" || path[0] != '/' {
		return nil, nil, false
	}
	psegs := strings.Split(p.raw, "/")
	segs := strings.Split(path, "/")
	var params []token
	for _, t := range p.tokens {
		if t.kind != tokStatic {
			params = append(params, t)
		}
	}
	for i, ps := range psegs {
		if strings.HasPrefix(ps, "{") {
			tok := params[0] // the k'th '{' segment is the k'th parameter token
			params = params[1:]
			if tok.kind == tokCatchAll {
				if i >= len(segs) {
					return nil, nil, false
				}
				return append(key, 3), append(values, strings.Join(segs[i:], "/")), true
			}
			if i >= len(segs) || segs[i] == "" || tok.typ.match != nil && !tok.typ.match(segs[i]) {
				return nil, nil, false
			}
			k := 1
			if tok.typ == typeStr {
				k = 2
			}
			key = append(key, k)
			values = append(values, segs[i])
			continue
		}
		if i >= len(segs) || segs[i] != canonicalText(ps) { // static text is held canonical
			return nil, nil, false
		}
		key = append(key, 0)
	}
	if len(segs) != len(psegs) {
		return nil, nil, false
	}
	return key, values, true
}

// isSubstring reports whether s lies inside the bytes of path (zero-copy).
func isSubstring(s, path string) bool {
	if s == "" {
		return true
	}
	b, e := uintptr(unsafe.Pointer(unsafe.StringData(path))), uintptr(len(path))
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	return p >= b && p+uintptr(len(s)) <= b+e
}

// checkLookup compares r's answer for (method, path) against the reference
// over routes.
func checkLookup(t *testing.T, r *Router[string], routes []Route[string], method, path string) {
	t.Helper()
	byMethod := map[string][]*pattern{}
	idx := map[string][]int{}
	for i, rt := range routes {
		p, err := parsePattern(rt.Pattern, builtinTypes)
		if err != nil {
			t.Fatalf("route %q: %v", rt.Pattern, err)
		}
		byMethod[rt.Method] = append(byMethod[rt.Method], p)
		idx[rt.Method] = append(idx[rt.Method], i)
	}
	ref := func(m string) (int, []string) {
		best, vals, tie := refMatch(byMethod[m], path)
		if tie {
			t.Fatalf("routes %v accepted, but two tie on %s %q", routes, m, path)
		}
		if best < 0 {
			return -1, nil
		}
		return idx[m][best], vals
	}

	var ps Params
	m, st := r.Lookup(method, path, &ps)

	want, vals := ref(method)
	autoHead := false
	if want < 0 && method == "HEAD" {
		want, vals = ref("GET")
		autoHead = want >= 0
	}
	if want < 0 {
		want, vals = ref(MethodAny)
	}
	if want >= 0 {
		rt := routes[want]
		if st != StatusFound || m.Pattern != rt.Pattern || m.Method != rt.Method || m.AutoHead != autoHead {
			t.Fatalf("%s %q: got %v %s %q autoHead=%v, want %s %q", method, path, st, m.Method, m.Pattern, m.AutoHead, rt.Method, rt.Pattern)
		}
		p, _ := parsePattern(rt.Pattern, builtinTypes)
		if ps.Len() != len(p.names) {
			t.Fatalf("%s %q: %d params, want %d", method, path, ps.Len(), len(p.names))
		}
		for i, name := range p.names {
			got := ps.At(i)
			if got.Name != name || got.Value != vals[i] {
				t.Fatalf("%s %q: param %d = %+v, want %s=%q", method, path, i, got, name, vals[i])
			}
			if !isSubstring(got.Value, path) {
				t.Fatalf("%s %q: param %q is not a substring of the path", method, path, got.Value)
			}
		}
		// Substituting the values back into the pattern gives the path.
		var b strings.Builder
		i := 0
		for _, tok := range p.tokens {
			if tok.kind == tokStatic {
				b.WriteString(tok.text)
			} else {
				b.WriteString(ps.At(i).Value)
				i++
			}
		}
		if b.String() != path {
			t.Fatalf("%s %q: pattern %q with params rebuilds %q", method, path, rt.Pattern, b.String())
		}
		return
	}
	if ps.Len() != 0 {
		t.Fatalf("%s %q: %v with %d params", method, path, st, ps.Len())
	}
	var allow []string
	for m := range byMethod {
		if m == MethodAny {
			continue
		}
		if best, _, _ := refMatch(byMethod[m], path); best >= 0 {
			allow = append(allow, m)
			if m == "GET" && !slices.Contains(allow, "HEAD") {
				allow = append(allow, "HEAD")
			}
		}
	}
	switch {
	case len(allow) == 0:
		if st != StatusNotFound {
			t.Fatalf("%s %q: %v, want not found", method, path, st)
		}
	default:
		if !slices.Contains(allow, "OPTIONS") {
			allow = append(allow, "OPTIONS")
		}
		slices.Sort(allow)
		allow = slices.Compact(allow)
		wantSt := StatusMethodNotAllowed
		if method == "OPTIONS" {
			wantSt = StatusOptions
		}
		if st != wantSt || m.Allow != strings.Join(allow, ", ") {
			t.Fatalf("%s %q: %v Allow %q, want %v %q", method, path, st, m.Allow, wantSt, strings.Join(allow, ", "))
		}
	}
}

var fuzzRoutes = []string{
	"GET /", "GET /users", "GET /users/", "GET /users/me", "GET /users/{id:int}", "GET /users/{name}",
	"GET /users/me/settings", "GET /users/{id:int}/posts", "GET /users/{name}/posts/{post}",
	"POST /users", "DELETE /users/{id:int}", "PUT /users/{id:uuid}",
	"GET /files/{id:int}/raw", "GET /files/{rest...}", "GET /a/b/c", "GET /a/{x}/d",
	"GET /deep/static/x/y", "GET /deep/{p}/x/z", "GET /deep/{p...}",
	"GET /u/{id:uuid}/x", "GET /u/{id:int}/x", "GET /u/{s}/y", "HEAD /u/{s}/y",
	"OPTIONS /opt/{x}", "PATCH /opt/{x}/y", "* /any/{x}", "GET /any/get", "PURGE /{all...}",
}

var fuzzMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE", "BREW"}

func parseRouteLines(lines []string) []Route[string] {
	var routes []Route[string]
	for _, l := range lines {
		m, p, _ := strings.Cut(l, " ")
		routes = append(routes, Route[string]{Method: m, Pattern: p, Value: l})
	}
	return routes
}

// FuzzLookup: on a fixed route set, Lookup never panics and agrees with the
// reference matcher; parameters are substrings of the path that rebuild it.
func FuzzLookup(f *testing.F) {
	routes := parseRouteLines(fuzzRoutes)
	r := New[string]()
	if err := r.Add(routes...); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"/", "/users/me", "/users/42/posts/9", "/users/me/posts/1", "/files/42/other", "/files/",
		"/deep/static/x/w", "/u/123e4567-e89b-12d3-a456-426614174000/x", "/u/5/y", "/opt/a",
		"/any/get", "/any/x", "//", "/users//", "", "x", "/a%2Fb", "/users/-9223372036854775808",
	} {
		for i := range fuzzMethods {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, mi uint8, path string) {
		checkLookup(t, r, routes, fuzzMethods[int(mi)%len(fuzzMethods)], path)
	})
}

// FuzzRoutes: arbitrary patterns never panic the parser or the builder;
// whatever set is accepted has no ties (the conflict rule is complete) and
// every lookup agrees with the reference.
func FuzzRoutes(f *testing.F) {
	f.Add("/users/{id}", "/users/{id:int}", "/users/me", "/users/42")
	f.Add("/a/{x:int}", "/a/{x:uuid}", "/a/{p...}", "/a/1")
	f.Add("/a/{x}/b", "/a/c/{y...}", "/{z}/c/b", "/a/c/b")
	f.Add("/f/{p:path}", "/f/{q}", "/f/", "/f/x/y")
	f.Add("/x/{a}", "/x/{b}", "/x/{c:int}", "/x/-1")
	f.Add("/caf%c3%a9/{w}", "/%7Eme", "/caf%C3%A9/{v:int}", "/caf%C3%A9/x")
	f.Fuzz(func(t *testing.T, p1, p2, p3, path string) {
		r := New[string]()
		var routes []Route[string]
		for _, p := range []string{p1, p2, p3} {
			rt := Route[string]{Method: "GET", Pattern: p, Value: "GET " + p}
			if r.Add(rt) == nil {
				routes = append(routes, rt)
			}
		}
		checkLookup(t, r, routes, "GET", path)
		checkLookup(t, r, routes, "HEAD", path)
		checkLookup(t, r, routes, "POST", path)
		// Each accepted pattern, filled with sample values, is found.
		for _, rt := range routes {
			checkLookup(t, r, routes, "GET", samplePath(rt.Pattern))
		}
	})
}

// samplePath fills a pattern's parameters with values their types accept.
func samplePath(pattern string) string {
	p, err := parsePattern(pattern, builtinTypes)
	if err != nil {
		panic(err)
	}
	var b strings.Builder
	for _, tok := range p.tokens {
		switch {
		case tok.kind == tokStatic:
			b.WriteString(tok.text)
		case tok.kind == tokCatchAll:
			b.WriteString("rest/of/it")
		case tok.typ.name == "int":
			b.WriteString("42")
		case tok.typ.name == "uuid":
			b.WriteString("123e4567-e89b-12d3-a456-426614174000")
		default:
			b.WriteString("v")
		}
	}
	return b.String()
}
