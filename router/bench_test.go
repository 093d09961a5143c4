package router

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
)

// githubRoute is one line of testdata/github_routes.txt with a concrete
// request path built from it.
type githubRoute struct {
	method, pattern, path string
	static                bool // the pattern has no parameters
	inMux                 bool // net/http.ServeMux accepts it (see loadGitHub)
}

// loadGitHub reads the route set and registers it in a Router and a
// ServeMux. ServeMux refuses (panics on) a pattern that overlaps an earlier
// one when neither is more specific, e.g. /issues/comments/{comment_id}
// against /issues/{issue_number}/comments; such routes are left out of the
// ServeMux and of the comparison benchmarks. The Router accepts them all,
// settling the overlap by leftmost-segment precedence.
func loadGitHub(tb testing.TB) ([]githubRoute, *Router[int], *http.ServeMux) {
	tb.Helper()
	f, err := os.Open("testdata/github_routes.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var routes []githubRoute
	r := New[int]()
	mux := http.NewServeMux()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		method, pat, _ := strings.Cut(line, " ")
		if err := r.Add(Route[int]{Method: method, Pattern: pat, Value: len(routes)}); err != nil {
			tb.Fatal(err)
		}
		gr := githubRoute{method: method, pattern: pat, path: samplePathFor(pat), static: !strings.Contains(pat, "{")}
		gr.inMux = func() (ok bool) {
			defer func() { ok = recover() == nil }()
			mux.Handle(line, http.NotFoundHandler())
			return true
		}()
		routes = append(routes, gr)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return routes, r, mux
}

// samplePathFor fills a GitHub pattern with plausible values.
func samplePathFor(pattern string) string {
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
			b.WriteString("docs/guide/README.md")
		case tok.name == "owner":
			b.WriteString("octocat")
		case tok.name == "repo":
			b.WriteString("hello-world")
		case strings.HasSuffix(tok.name, "_id") || strings.HasSuffix(tok.name, "_number"):
			b.WriteString("1347")
		default:
			b.WriteString("v1." + tok.name)
		}
	}
	return b.String()
}

// TestGitHubRoutes checks that every sample path finds its own route, in
// the Router and (where registered) in the ServeMux.
func TestGitHubRoutes(t *testing.T) {
	routes, r, mux := loadGitHub(t)
	inMux := 0
	for _, gr := range routes {
		var ps Params
		m, st := r.Lookup(gr.method, gr.path, &ps)
		if st != StatusFound || m.Pattern != gr.pattern || m.Method != gr.method {
			t.Errorf("Router %s %s: %v %s %s", gr.method, gr.path, st, m.Method, m.Pattern)
		}
		if !gr.inMux {
			continue
		}
		inMux++
		req := &http.Request{Method: gr.method, Host: "api.github.com", URL: &url.URL{Path: gr.path}}
		if _, pat := mux.Handler(req); pat != gr.method+" "+gr.pattern {
			t.Errorf("ServeMux %s %s: %q", gr.method, gr.path, pat)
		}
	}
	t.Logf("%d routes; ServeMux accepts %d", len(routes), inMux)
	if len(routes) < 200 || inMux < 200 {
		t.Fatalf("route set too small: %d, %d", len(routes), inMux)
	}
}

// TestLookupAllocs: a lookup that finds a static or parametrised route
// allocates nothing; nor does a 405/OPTIONS once its Allow string is cached.
func TestLookupAllocs(t *testing.T) {
	routes, r, _ := loadGitHub(t)
	var static, param []githubRoute
	for _, gr := range routes {
		if gr.static {
			static = append(static, gr)
		} else {
			param = append(param, gr)
		}
	}
	var ps Params
	for _, set := range []struct {
		name   string
		routes []githubRoute
	}{{"static", static}, {"param", param}} {
		allocs := testing.AllocsPerRun(100, func() {
			for _, gr := range set.routes {
				if _, st := r.Lookup(gr.method, gr.path, &ps); st != StatusFound {
					t.Fatalf("%s %s: %v", gr.method, gr.path, st)
				}
			}
		})
		if allocs != 0 {
			t.Errorf("%s lookups: %v allocs per run, want 0", set.name, allocs)
		}
	}
	others := []struct {
		method, path string
		want         Status
	}{
		{"HEAD", "/repos/octocat/hello-world/issues/1347", StatusFound},
		{"PUT", "/repos/octocat/hello-world/issues/1347", StatusMethodNotAllowed},
		{"OPTIONS", "/user/repos", StatusOptions},
		{"GET", "/no/such/thing", StatusNotFound},
	}
	for _, o := range others {
		allocs := testing.AllocsPerRun(100, func() {
			if _, st := r.Lookup(o.method, o.path, &ps); st != o.want {
				t.Fatalf("%s %s: %v", o.method, o.path, st)
			}
		})
		if allocs != 0 {
			t.Errorf("%s %s: %v allocs per run, want 0", o.method, o.path, allocs)
		}
	}
}

// BenchmarkGitHub looks up every route of the GitHub set that both routers
// accept; one op is one pass over the set, and ns/lookup is reported too.
// ServeMux is driven through mux.Handler with prebuilt requests, so both
// sides measure routing only.
func BenchmarkGitHub(b *testing.B) {
	routes, r, mux := loadGitHub(b)
	subsets := []struct {
		name string
		keep func(githubRoute) bool
	}{
		{"all", func(githubRoute) bool { return true }},
		{"static", func(gr githubRoute) bool { return gr.static }},
		{"param", func(gr githubRoute) bool { return !gr.static }},
	}
	for _, sub := range subsets {
		var set []githubRoute
		var reqs []*http.Request
		for _, gr := range routes {
			if gr.inMux && sub.keep(gr) {
				set = append(set, gr)
				reqs = append(reqs, &http.Request{Method: gr.method, Host: "api.github.com", URL: &url.URL{Path: gr.path}})
			}
		}
		b.Run(fmt.Sprintf("Router/%s-%d", sub.name, len(set)), func(b *testing.B) {
			b.ReportAllocs()
			var ps Params
			for b.Loop() {
				for i := range set {
					if _, st := r.Lookup(set[i].method, set[i].path, &ps); st != StatusFound {
						b.Fatal(st)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(set)), "ns/lookup")
		})
		b.Run(fmt.Sprintf("ServeMux/%s-%d", sub.name, len(set)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, req := range reqs {
					if _, pat := mux.Handler(req); pat == "" {
						b.Fatal(req.URL.Path)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(reqs)), "ns/lookup")
		})
	}
}

// BenchmarkLookupMisses covers the non-found answers on the GitHub set.
func BenchmarkLookupMisses(b *testing.B) {
	_, r, _ := loadGitHub(b)
	for _, c := range []struct{ name, method, path string }{
		{"404", "GET", "/repos/octocat/hello-world/nope/1"},
		{"405", "PUT", "/repos/octocat/hello-world/issues/1347"},
		{"options", "OPTIONS", "/repos/octocat/hello-world/issues/1347"},
		{"autohead", "HEAD", "/repos/octocat/hello-world/issues/1347"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var ps Params
			for b.Loop() {
				r.Lookup(c.method, c.path, &ps)
			}
		})
	}
}

// BenchmarkAddGitHub measures one update: rebuilding the snapshot of the
// whole GitHub set (every Add, Remove or Replace rebuilds it).
func BenchmarkAddGitHub(b *testing.B) {
	routes, _, _ := loadGitHub(b)
	rs := make([]Route[int], len(routes))
	for i, gr := range routes {
		rs[i] = Route[int]{Method: gr.method, Pattern: gr.pattern, Value: i}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := New[int]().Add(rs...); err != nil {
			b.Fatal(err)
		}
	}
}
