package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// mustRouter registers "METHOD /pattern" lines; the value of each route is
// the line itself.
func mustRouter(t testing.TB, lines ...string) *Router[string] {
	t.Helper()
	r := New[string]()
	for _, l := range lines {
		m, p, _ := strings.Cut(l, " ")
		if err := r.Add(Route[string]{Method: m, Pattern: p, Value: l}); err != nil {
			t.Fatalf("Add(%q): %v", l, err)
		}
	}
	return r
}

func fmtParams(ps *Params) string {
	var parts []string
	for _, p := range ps.Slice() {
		parts = append(parts, p.Name+"="+p.Value)
	}
	return strings.Join(parts, ",")
}

type lookupCase struct {
	method, path string
	status       Status
	pattern      string // matched pattern (StatusFound)
	params       string // "a=1,b=2"
	allow        string // StatusMethodNotAllowed, StatusOptions
	autoHead     bool
}

func runCases(t *testing.T, r *Router[string], cases []lookupCase) {
	t.Helper()
	for _, c := range cases {
		var ps Params
		m, st := r.Lookup(c.method, c.path, &ps)
		name := c.method + " " + c.path
		if st != c.status {
			t.Errorf("%s: status %v (pattern %q), want %v", name, st, m.Pattern, c.status)
			continue
		}
		if m.Pattern != c.pattern {
			t.Errorf("%s: pattern %q, want %q", name, m.Pattern, c.pattern)
		}
		if got := fmtParams(&ps); got != c.params {
			t.Errorf("%s: params %q, want %q", name, got, c.params)
		}
		if m.Allow != c.allow {
			t.Errorf("%s: allow %q, want %q", name, m.Allow, c.allow)
		}
		if m.AutoHead != c.autoHead {
			t.Errorf("%s: autoHead %v, want %v", name, m.AutoHead, c.autoHead)
		}
		if st == StatusFound && m.Value != m.Method+" "+m.Pattern {
			t.Errorf("%s: value %q does not match method %q pattern %q", name, m.Value, m.Method, m.Pattern)
		}
	}
}

func TestLookup(t *testing.T) {
	const (
		found    = StatusFound
		notFound = StatusNotFound
		notAllow = StatusMethodNotAllowed
		options  = StatusOptions
	)
	tests := []struct {
		name   string
		routes []string
		cases  []lookupCase
	}{
		{
			name:   "static",
			routes: []string{"GET /", "GET /users", "GET /users/", "GET /user", "GET /users/me", "GET /a%20b"},
			cases: []lookupCase{
				{method: "GET", path: "/", status: found, pattern: "/"},
				{method: "GET", path: "/users", status: found, pattern: "/users"},
				{method: "GET", path: "/users/", status: found, pattern: "/users/"},
				{method: "GET", path: "/user", status: found, pattern: "/user"},
				{method: "GET", path: "/users/me", status: found, pattern: "/users/me"},
				{method: "GET", path: "/a%20b", status: found, pattern: "/a%20b"},
				{method: "GET", path: "/us", status: notFound},
				{method: "GET", path: "/users/me/", status: notFound},
				{method: "GET", path: "/Users", status: notFound},
				{method: "GET", path: "", status: notFound},
				{method: "GET", path: "users", status: notFound},
				{method: "GET", path: "*", status: notFound},
			},
		},
		{
			name: "params",
			routes: []string{
				"GET /users/{id}", "GET /users/{id}/posts/{post}", "GET /users/{name}/avatar",
				"GET /orgs/{org}/", "GET /x/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{p}",
			},
			cases: []lookupCase{
				{method: "GET", path: "/users/42", status: found, pattern: "/users/{id}", params: "id=42"},
				{method: "GET", path: "/users/a%2Fb", status: found, pattern: "/users/{id}", params: "id=a%2Fb"},
				{method: "GET", path: "/users/42/posts/7", status: found, pattern: "/users/{id}/posts/{post}", params: "id=42,post=7"},
				{method: "GET", path: "/users/bob/avatar", status: found, pattern: "/users/{name}/avatar", params: "name=bob"},
				{method: "GET", path: "/users/", status: notFound},
				{method: "GET", path: "/users//posts/7", status: notFound},
				{method: "GET", path: "/users/42/", status: notFound},
				{method: "GET", path: "/orgs/acme/", status: found, pattern: "/orgs/{org}/", params: "org=acme"},
				{method: "GET", path: "/orgs/acme", status: notFound},
				{method: "GET", path: "/x/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16", status: found,
					pattern: "/x/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{p}",
					params:  "a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9,j=10,k=11,l=12,m=13,n=14,o=15,p=16"},
			},
		},
		{
			name:   "typed",
			routes: []string{"GET /n/{id:int}", "GET /n/{id:uuid}", "GET /s/{id:str}"},
			cases: []lookupCase{
				{method: "GET", path: "/n/42", status: found, pattern: "/n/{id:int}", params: "id=42"},
				{method: "GET", path: "/n/-42", status: found, pattern: "/n/{id:int}", params: "id=-42"},
				{method: "GET", path: "/n/007", status: found, pattern: "/n/{id:int}", params: "id=007"},
				{method: "GET", path: "/n/9223372036854775807", status: found, pattern: "/n/{id:int}", params: "id=9223372036854775807"},
				{method: "GET", path: "/n/-9223372036854775808", status: found, pattern: "/n/{id:int}", params: "id=-9223372036854775808"},
				{method: "GET", path: "/n/9223372036854775808", status: notFound},
				{method: "GET", path: "/n/99999999999999999999", status: notFound},
				{method: "GET", path: "/n/-", status: notFound},
				{method: "GET", path: "/n/+1", status: notFound},
				{method: "GET", path: "/n/1e3", status: notFound},
				{method: "GET", path: "/n/123e4567-e89b-12d3-a456-426614174000", status: found,
					pattern: "/n/{id:uuid}", params: "id=123e4567-e89b-12d3-a456-426614174000"},
				{method: "GET", path: "/n/123E4567-E89B-12D3-A456-426614174000", status: found,
					pattern: "/n/{id:uuid}", params: "id=123E4567-E89B-12D3-A456-426614174000"},
				{method: "GET", path: "/n/123e4567e89b12d3a456426614174000", status: notFound},
				{method: "GET", path: "/n/123e4567-e89b-12d3-a456-42661417400g", status: notFound},
				{method: "GET", path: "/s/anything", status: found, pattern: "/s/{id:str}", params: "id=anything"},
			},
		},
		{
			name:   "catch-all",
			routes: []string{"GET /static/{path...}", "GET /files/{p:path}", "GET /{all...}", "GET /static/index.html"},
			cases: []lookupCase{
				{method: "GET", path: "/static/a/b/c.css", status: found, pattern: "/static/{path...}", params: "path=a/b/c.css"},
				{method: "GET", path: "/static/", status: found, pattern: "/static/{path...}", params: "path="},
				{method: "GET", path: "/static/index.html", status: found, pattern: "/static/index.html"},
				{method: "GET", path: "/static/index.html/x", status: found, pattern: "/static/{path...}", params: "path=index.html/x"},
				{method: "GET", path: "/static", status: found, pattern: "/{all...}", params: "all=static"},
				{method: "GET", path: "/files/x//y/", status: found, pattern: "/files/{p:path}", params: "p=x//y/"},
				{method: "GET", path: "/", status: found, pattern: "/{all...}", params: "all="},
				{method: "GET", path: "/other/thing", status: found, pattern: "/{all...}", params: "all=other/thing"},
			},
		},
		{
			name: "precedence and backtracking",
			routes: []string{
				"GET /users/me", "GET /users/{id:int}", "GET /users/{name}",
				"GET /users/me/settings", "GET /users/{id:int}/posts", "GET /users/{name}/posts/{post}",
				"GET /files/{id:int}/raw", "GET /files/{rest...}",
				"GET /a/b/c", "GET /a/{x}/d",
				"GET /deep/static/x/y", "GET /deep/{p}/x/z", "GET /deep/{p...}",
				"GET /u/{id:uuid}/x", "GET /u/{id:int}/x", "GET /u/{s}/y",
			},
			cases: []lookupCase{
				{method: "GET", path: "/users/me", status: found, pattern: "/users/me"},
				{method: "GET", path: "/users/42", status: found, pattern: "/users/{id:int}", params: "id=42"},
				{method: "GET", path: "/users/bob", status: found, pattern: "/users/{name}", params: "name=bob"},
				{method: "GET", path: "/users/meow", status: found, pattern: "/users/{name}", params: "name=meow"},
				{method: "GET", path: "/users/m", status: found, pattern: "/users/{name}", params: "name=m"},
				{method: "GET", path: "/users/me/settings", status: found, pattern: "/users/me/settings"},
				// static "me" fails at /posts, int fails on "me", str wins
				{method: "GET", path: "/users/me/posts/1", status: found, pattern: "/users/{name}/posts/{post}", params: "name=me,post=1"},
				{method: "GET", path: "/users/42/posts", status: found, pattern: "/users/{id:int}/posts", params: "id=42"},
				// int matches 42 but /posts/9 fails below it: back off to str
				{method: "GET", path: "/users/42/posts/9", status: found, pattern: "/users/{name}/posts/{post}", params: "name=42,post=9"},
				{method: "GET", path: "/files/42/raw", status: found, pattern: "/files/{id:int}/raw", params: "id=42"},
				{method: "GET", path: "/files/42/other", status: found, pattern: "/files/{rest...}", params: "rest=42/other"},
				{method: "GET", path: "/files/x/raw", status: found, pattern: "/files/{rest...}", params: "rest=x/raw"},
				{method: "GET", path: "/a/b/c", status: found, pattern: "/a/b/c"},
				{method: "GET", path: "/a/b/d", status: found, pattern: "/a/{x}/d", params: "x=b"},
				{method: "GET", path: "/deep/static/x/y", status: found, pattern: "/deep/static/x/y"},
				{method: "GET", path: "/deep/static/x/z", status: found, pattern: "/deep/{p}/x/z", params: "p=static"},
				{method: "GET", path: "/deep/static/x/w", status: found, pattern: "/deep/{p...}", params: "p=static/x/w"},
				{method: "GET", path: "/u/5/x", status: found, pattern: "/u/{id:int}/x", params: "id=5"},
				{method: "GET", path: "/u/123e4567-e89b-12d3-a456-426614174000/x", status: found,
					pattern: "/u/{id:uuid}/x", params: "id=123e4567-e89b-12d3-a456-426614174000"},
				{method: "GET", path: "/u/5/y", status: found, pattern: "/u/{s}/y", params: "s=5"},
				{method: "GET", path: "/u/5/z", status: notFound},
			},
		},
		{
			name: "405 and Allow",
			routes: []string{
				"GET /items", "POST /items", "DELETE /items/{id:int}", "PUT /items/{id:int}",
				"PATCH /items/{name}", "PURGE /cache/{key...}", "POST /only-post",
			},
			cases: []lookupCase{
				{method: "PUT", path: "/items", status: notAllow, allow: "GET, HEAD, OPTIONS, POST"},
				{method: "GET", path: "/items/1", status: notAllow, allow: "DELETE, OPTIONS, PATCH, PUT"},
				{method: "GET", path: "/items/x", status: notAllow, allow: "OPTIONS, PATCH"},
				{method: "GET", path: "/cache/a/b", status: notAllow, allow: "OPTIONS, PURGE"},
				{method: "HEAD", path: "/only-post", status: notAllow, allow: "OPTIONS, POST"},
				{method: "get", path: "/items", status: notAllow, allow: "GET, HEAD, OPTIONS, POST"},
				{method: "GET", path: "/nope", status: notFound},
				{method: "DELETE", path: "/items/1", status: found, pattern: "/items/{id:int}", params: "id=1"},
			},
		},
		{
			name:   "automatic HEAD",
			routes: []string{"GET /a", "GET /b/{x}", "HEAD /b/special", "GET /b/special"},
			cases: []lookupCase{
				{method: "HEAD", path: "/a", status: found, pattern: "/a", autoHead: true},
				{method: "HEAD", path: "/b/1", status: found, pattern: "/b/{x}", params: "x=1", autoHead: true},
				{method: "HEAD", path: "/b/special", status: found, pattern: "/b/special"},
				{method: "POST", path: "/b/special", status: notAllow, allow: "GET, HEAD, OPTIONS"},
				{method: "HEAD", path: "/c", status: notFound},
			},
		},
		{
			name:   "automatic OPTIONS",
			routes: []string{"GET /a", "POST /a", "OPTIONS /b", "GET /b", "PUT /c/{id}"},
			cases: []lookupCase{
				{method: "OPTIONS", path: "/a", status: options, allow: "GET, HEAD, OPTIONS, POST"},
				{method: "OPTIONS", path: "/b", status: found, pattern: "/b"},
				{method: "OPTIONS", path: "/c/1", status: options, allow: "OPTIONS, PUT"},
				{method: "OPTIONS", path: "/nothing", status: notFound},
				{method: "OPTIONS", path: "*", status: notFound},
			},
		},
		{
			name:   "any method",
			routes: []string{"* /ws/{room}", "GET /ws/lobby", "* /proxy/{rest...}"},
			cases: []lookupCase{
				{method: "GET", path: "/ws/lobby", status: found, pattern: "/ws/lobby"},
				{method: "POST", path: "/ws/lobby", status: found, pattern: "/ws/{room}", params: "room=lobby"},
				{method: "HEAD", path: "/ws/lobby", status: found, pattern: "/ws/lobby", autoHead: true},
				{method: "OPTIONS", path: "/ws/x", status: found, pattern: "/ws/{room}", params: "room=x"},
				{method: "BREW", path: "/proxy/a/b", status: found, pattern: "/proxy/{rest...}", params: "rest=a/b"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRouter(t, tt.routes...)
			runCases(t, r, tt.cases)
		})
	}
}

func TestEmptyRouter(t *testing.T) {
	var r Router[int]
	var ps Params
	if _, st := r.Lookup("GET", "/", &ps); st != StatusNotFound {
		t.Fatalf("zero Router: %v", st)
	}
	if r.Routes() != nil || r.RemoveFunc(func(Route[int]) bool { return true }) != 0 {
		t.Fatal("zero Router is not empty")
	}
}

func TestCanonicalPath(t *testing.T) {
	// The cases are shared with the SDK's in-process router (python-sdk/tests).
	raw, err := os.ReadFile("testdata/canonical_paths.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []struct {
			Path      string
			Canonical *string
		}
	}
	if err := json.Unmarshal(raw, &file); err != nil || len(file.Cases) == 0 {
		t.Fatalf("canonical_paths.json: %v", err)
	}
	for _, c := range file.Cases {
		got, ok := AppendCanonicalPath([]byte("keep:"), c.Path)
		if c.Canonical == nil {
			if ok || string(got) != "keep:" {
				t.Errorf("%q: got %q, %v; want it left as it is", c.Path, got, ok)
			}
			continue
		}
		if !ok || string(got) != "keep:"+*c.Canonical {
			t.Errorf("%q: got %q, %v; want %q", c.Path, got, ok, *c.Canonical)
		}
	}
	if n := testing.AllocsPerRun(100, func() { AppendCanonicalPath(nil, "/users/42/posts") }); n != 0 {
		t.Errorf("a path without escapes: %v allocations", n)
	}
}

func TestCanonicalPatterns(t *testing.T) {
	r := mustRouter(t, "GET /caf%c3%a9/{w}", "GET /%7Eme")
	runCases(t, r, []lookupCase{
		{method: "GET", path: "/caf%C3%A9/x", status: StatusFound, pattern: "/caf%c3%a9/{w}", params: "w=x"},
		{method: "GET", path: "/~me", status: StatusFound, pattern: "/%7Eme"},
		{method: "GET", path: "/caf%c3%a9/x", status: StatusNotFound}, // Lookup takes canonical paths
	})
	err := r.Add(Route[string]{Method: "GET", Pattern: "/~me"})
	if !errors.Is(err, ErrConflict) {
		t.Errorf("/~me after /%%7Eme: %v, want a conflict", err)
	}
}

func TestConflicts(t *testing.T) {
	tests := []struct {
		existing  []string
		add       string
		duplicate bool
	}{
		{[]string{"GET /users/{id}"}, "GET /users/{name}", false},
		{[]string{"GET /users/{id}"}, "GET /users/{id:str}", false},
		{[]string{"GET /users/{id:int}"}, "GET /users/{n:int}", false},
		{[]string{"GET /f/{a...}"}, "GET /f/{b:path}", false},
		{[]string{"GET /r/{o}/{r}/x"}, "GET /r/{a}/{b}/x", false},
		{[]string{"GET /users/{id}"}, "GET /users/{id}", true},
		{[]string{"GET /a"}, "GET /a", true},
		{[]string{"* /a/{x}"}, "* /a/{y}", false},
	}
	for _, tt := range tests {
		r := mustRouter(t, tt.existing...)
		m, p, _ := strings.Cut(tt.add, " ")
		err := r.Add(Route[string]{Method: m, Pattern: p})
		var ce *ConflictError
		if !errors.As(err, &ce) {
			t.Errorf("add %q after %q: err = %v, want *ConflictError", tt.add, tt.existing, err)
			continue
		}
		_, oldPat, _ := strings.Cut(tt.existing[0], " ")
		if ce.Pattern != p || ce.Existing != oldPat || ce.Method != m || ce.Duplicate != tt.duplicate {
			t.Errorf("add %q: %+v", tt.add, ce)
		}
		if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), oldPat) {
			t.Errorf("add %q: message %q does not name both patterns", tt.add, err)
		}
		want := ErrConflict
		if tt.duplicate {
			want = ErrDuplicate
		}
		if !errors.Is(err, want) {
			t.Errorf("add %q: %v is not %v", tt.add, err, want)
		}
		if len(r.Routes()) != len(tt.existing) {
			t.Errorf("add %q: failed Add changed the table", tt.add)
		}
	}
}

func TestNoConflict(t *testing.T) {
	// Each set registers cleanly: precedence decides every path.
	sets := [][]string{
		{"GET /users/{id}", "GET /users/{id:int}", "GET /users/{id:uuid}", "GET /users/me", "GET /users/{x...}"},
		{"GET /a/{x:int}", "GET /a/{x:uuid}"},
		{"GET /users/{id}", "GET /users/{name}/posts"},
		{"GET /a", "GET /a/", "POST /a", "* /a", "HEAD /a", "OPTIONS /a"},
		{"GET /r/{owner}/{repo}/issues/comments/{id}", "GET /r/{owner}/{repo}/issues/{n}/comments"},
		{"GET /f/{a...}", "GET /f/x/{b...}"},
	}
	for _, s := range sets {
		mustRouter(t, s...)
	}
}

func TestConflictWithinOneAdd(t *testing.T) {
	r := New[int]()
	err := r.Add(Route[int]{"GET", "/ok", 1}, Route[int]{"GET", "/a/{x}", 2}, Route[int]{"GET", "/a/{y}", 3})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Pattern != "/a/{y}" || ce.Existing != "/a/{x}" {
		t.Fatalf("err = %v", err)
	}
	if len(r.Routes()) != 0 {
		t.Fatal("a failed Add registered some routes")
	}
}

func TestOverlappingTypes(t *testing.T) {
	// A hypothetical typed matcher that overlaps int must conflict with it.
	types := map[string]*paramType{
		"int": builtinTypes["int"],
		"hex": {name: "hex", order: 15, match: func(s string) bool {
			for i := 0; i < len(s); i++ {
				if !isHex(s[i]) {
					return false
				}
			}
			return true
		}},
	}
	root := newNode("", "")
	pats := []string{"/a/{x:int}", "/a/{x:hex}"}
	var err error
	for i, s := range pats {
		p, perr := parsePattern(s, types)
		if perr != nil {
			t.Fatal(perr)
		}
		if err = root.insert("GET", p, int32(i), func(i int32) string { return pats[i] }); err != nil {
			break
		}
	}
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Existing != "/a/{x:int}" || ce.Pattern != "/a/{x:hex}" {
		t.Fatalf("err = %v", err)
	}
}

func TestInvalidPatterns(t *testing.T) {
	tests := []struct{ pattern, reason string }{
		{"", "must start with '/'"},
		{"users", "must start with '/'"},
		{"/users/{id", "unclosed '{'"},
		{"/users/{id/x}", "unclosed '{'"},
		{"/users/{{id}}", "unclosed '{'"},
		{"/users/id}", "unexpected '}'"},
		{"/users/{}", "empty parameter name"},
		{"/users/{:int}", "empty parameter name"},
		{"/users/{...}", "empty parameter name"},
		{"/users/{1d}", "invalid parameter name"},
		{"/users/{i-d}", "invalid parameter name"},
		{"/users/{id:float}", `unknown parameter type "float"`},
		{"/users/{id:}", `unknown parameter type ""`},
		{"/files/{p...}/x", "catch-all {p...} must be the last segment"},
		{"/files/{p:path}/x", "catch-all {p...} must be the last segment"},
		{"/a/{x}/b/{x}", `duplicate parameter name "x"`},
		{"/a/{x}/{x...}", `duplicate parameter name "x"`},
		{"/files/{name}.json", "whole path segment"},
		{"/files/x{name}", "whole path segment"},
		{"/a b", "percent-encode"},
		{"/a?b", "percent-encode"},
		{"/caf\xc3\xa9", "percent-encode"},
		{"/a%2", "two hex digits"},
		{"/a%zz", "two hex digits"},
		{"/" + strings.Repeat("{p}/", 0) + manyParams(MaxParams+1), "more than 16 parameters"},
	}
	for _, tt := range tests {
		err := New[int]().Add(Route[int]{Method: "GET", Pattern: tt.pattern})
		var pe *PatternError
		if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("%q: err = %v, want *PatternError", tt.pattern, err)
			continue
		}
		if !strings.Contains(pe.Reason, tt.reason) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.pattern)) {
			t.Errorf("%q: %v, want reason containing %q", tt.pattern, err, tt.reason)
		}
	}
	if err := New[int]().Add(Route[int]{Method: "GET", Pattern: "/" + manyParams(MaxParams)}); err != nil {
		t.Errorf("%d params: %v", MaxParams, err)
	}
}

func manyParams(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte('/')
		}
		fmt.Fprintf(&b, "{p%d}", i)
	}
	return b.String()
}

func TestInvalidMethods(t *testing.T) {
	for _, m := range []string{"", "GE T", "GET\n", "GÉT", "(GET)"} {
		err := New[int]().Add(Route[int]{Method: m, Pattern: "/"})
		if !errors.Is(err, ErrInvalidMethod) {
			t.Errorf("method %q: err = %v", m, err)
		}
	}
	r := New[int]()
	for i := range maxMethods {
		if err := r.Add(Route[int]{Method: fmt.Sprintf("M%d", i), Pattern: "/"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Add(Route[int]{Method: "ONEMORE", Pattern: "/"}); !errors.Is(err, ErrInvalidMethod) {
		t.Fatalf("method %d: err = %v", maxMethods+1, err)
	}
	var ps Params
	if m, st := r.Lookup("GET", "/", &ps); st != StatusMethodNotAllowed || strings.Count(m.Allow, ",") != maxMethods {
		t.Fatalf("%v %q", st, m.Allow)
	}
}

type owner struct {
	app  string
	pool int
}

func TestRemoval(t *testing.T) {
	r := New[owner]()
	a := []Route[owner]{
		{"GET", "/a/{id:int}", owner{"a", 1}},
		{"POST", "/a", owner{"a", 1}},
		{"GET", "/shared/{x}", owner{"a", 1}},
	}
	b := []Route[owner]{
		{"GET", "/b", owner{"b", 2}},
		{"GET", "/a/me", owner{"b", 2}},
	}
	if err := r.Add(a...); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(b...); err != nil {
		t.Fatal(err)
	}
	var ps Params
	check := func(method, path string, want Status, wantApp string) {
		t.Helper()
		m, st := r.Lookup(method, path, &ps)
		if st != want || m.Value.app != wantApp {
			t.Errorf("%s %s: %v %q, want %v %q", method, path, st, m.Value.app, want, wantApp)
		}
	}
	check("GET", "/a/me", StatusFound, "b")
	check("GET", "/a/1", StatusFound, "a")

	// Worker pool "a" goes away: its routes go, all at once.
	if n := r.RemoveFunc(func(rt Route[owner]) bool { return rt.Value.app == "a" }); n != 3 {
		t.Fatalf("removed %d, want 3", n)
	}
	check("GET", "/a/1", StatusNotFound, "")
	check("POST", "/a", StatusNotFound, "")
	check("GET", "/a/me", StatusFound, "b")

	// A removed pattern can be registered again, here by another owner.
	if err := r.Add(Route[owner]{"GET", "/shared/{y}", owner{"c", 3}}); err != nil {
		t.Fatal(err)
	}
	check("GET", "/shared/z", StatusFound, "c")

	if !r.Remove("GET", "/b") || r.Remove("GET", "/b") || r.Remove("POST", "/a/me") {
		t.Error("Remove reported wrongly")
	}
	check("GET", "/b", StatusNotFound, "")

	// Replace swaps an owner's manifest atomically; a conflicting
	// replacement leaves the table alone.
	isC := func(rt Route[owner]) bool { return rt.Value.app == "c" }
	if err := r.Replace(isC, Route[owner]{"GET", "/shared/{y}", owner{"c", 4}}); err != nil {
		t.Fatal(err)
	}
	m, _ := r.Lookup("GET", "/shared/z", &ps)
	if m.Value.pool != 4 {
		t.Errorf("after Replace: %+v", m.Value)
	}
	err := r.Replace(isC, Route[owner]{"GET", "/a/me", owner{"c", 5}})
	if !errors.Is(err, ErrDuplicate) {
		t.Fatalf("Replace: %v", err)
	}
	check("GET", "/shared/z", StatusFound, "c")
	if got := len(r.Routes()); got != 2 {
		t.Errorf("%d routes left, want 2", got)
	}
}

// TestConcurrentLookup runs lookups while the table changes; run with -race.
func TestConcurrentLookup(t *testing.T) {
	r := mustRouter(t, "GET /stable/{id:int}")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ps Params
			for {
				select {
				case <-stop:
					return
				default:
				}
				m, st := r.Lookup("GET", "/stable/7", &ps)
				if st != StatusFound || m.Pattern != "/stable/{id:int}" || ps.At(0).Value != "7" {
					t.Errorf("lookup during update: %v %+v", st, m)
					return
				}
				r.Lookup("GET", "/churn/x", &ps)
				r.Lookup("POST", "/churn/x", &ps) // 405 path, fills the Allow cache
			}
		}()
	}
	for i := range 200 {
		p := fmt.Sprintf("/churn/{v%d}", i%3)
		if err := r.Add(Route[string]{Method: "GET", Pattern: p}); err != nil {
			t.Fatal(err)
		}
		if !r.Remove("GET", p) {
			t.Fatal("remove failed")
		}
	}
	close(stop)
	wg.Wait()
}

func TestParams(t *testing.T) {
	r := mustRouter(t, "GET /a/{x}/{rest...}")
	var ps Params
	ps.n = 5 // stale state must be reset by Lookup
	if _, st := r.Lookup("GET", "/a/one%20two/b/c", &ps); st != StatusFound {
		t.Fatal(st)
	}
	if ps.Len() != 2 || ps.At(0) != (Param{"x", "one%20two"}) || ps.At(1) != (Param{"rest", "b/c"}) {
		t.Fatalf("%+v", ps.Slice())
	}
	if v, ok := ps.Get("rest"); !ok || v != "b/c" {
		t.Fatal("Get rest")
	}
	if _, ok := ps.Get("nope"); ok {
		t.Fatal("Get nope")
	}
	if v, err := Unescape(ps.At(0).Value); err != nil || v != "one two" {
		t.Fatalf("Unescape: %q %v", v, err)
	}
	if v, err := Unescape("a%2Fb+c"); err != nil || v != "a/b+c" {
		t.Fatalf("Unescape: %q %v", v, err)
	}
	if _, err := Unescape("a%zz"); err == nil {
		t.Fatal("Unescape accepted a bad escape")
	}
	if _, st := r.Lookup("GET", "/nope", &ps); st != StatusNotFound || ps.Len() != 0 {
		t.Fatal("params not reset on miss")
	}
	ps.Reset()
	if ps.Len() != 0 {
		t.Fatal("Reset")
	}
}

func TestStatusString(t *testing.T) {
	if StatusMethodNotAllowed.String() != "method not allowed" || Status(9).String() != "router.Status(9)" {
		t.Fatal("Status.String")
	}
}
