package router

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
)

// The route-pattern golden vectors of PROTOCOL.md 7, shared with the Python SDK
// (python-sdk/tests/test_pattern_vectors.py).
const patternVectors = "../workerproto/testdata/patterns.json"

type patternVectorFile struct {
	Format   int `json:"format"`
	Patterns []struct {
		Pattern   string `json:"pattern"`
		Canonical string `json:"canonical"`
		Error     string `json:"error"`
		Python    string `json:"python"`
	} `json:"patterns"`
	Tables []struct {
		Name     string      `json:"name"`
		Routes   [][2]string `json:"routes"`
		Error    string      `json:"error"`
		Requests []struct {
			Method string      `json:"method"`
			Path   string      `json:"path"`
			Status int         `json:"status"`
			Route  []string    `json:"route"`
			Params [][2]string `json:"params"`
			Allow  string      `json:"allow"`
		} `json:"requests"`
	} `json:"tables"`
}

func readPatternVectors(t *testing.T) patternVectorFile {
	t.Helper()
	b, err := os.ReadFile(patternVectors)
	if err != nil {
		t.Fatal(err) // a missing file fails: the vectors are the spec's test
	}
	var v patternVectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.Format != 1 || len(v.Patterns) == 0 || len(v.Tables) == 0 {
		t.Fatalf("%s: format %d, %d patterns, %d tables", patternVectors, v.Format, len(v.Patterns), len(v.Tables))
	}
	return v
}

// canonicalPattern renders a parsed pattern in the canonical form of PROTOCOL.md
// 7.3: static text in canonical path form, {name} for str, {name:type} for a typed
// parameter, {name...} for a catch-all.
func canonicalPattern(p *pattern) string {
	var s string
	for _, tok := range p.tokens {
		switch tok.kind {
		case tokStatic:
			s += tok.text
		case tokCatchAll:
			s += "{" + tok.name + "...}"
		case tokParam:
			if tok.typ == typeStr {
				s += "{" + tok.name + "}"
			} else {
				s += "{" + tok.name + ":" + tok.typ.name + "}"
			}
		}
	}
	return s
}

func TestPatternVectors(t *testing.T) {
	v := readPatternVectors(t)
	for _, pv := range v.Patterns {
		p, err := parsePattern(pv.Pattern, builtinTypes)
		if pv.Error != "" {
			if !errors.Is(err, ErrInvalidPattern) {
				t.Errorf("%q: got %v, want an invalid pattern (%s)", pv.Pattern, err, pv.Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", pv.Pattern, err)
			continue
		}
		if got := canonicalPattern(p); got != pv.Canonical {
			t.Errorf("%q: canonical form %q, want %q", pv.Pattern, got, pv.Canonical)
		}
		// The canonical form is a fixed point.
		if q, err := parsePattern(pv.Canonical, builtinTypes); err != nil || canonicalPattern(q) != pv.Canonical {
			t.Errorf("canonical %q does not parse to itself: %v", pv.Canonical, err)
		}
	}
}

func TestRouteTableVectors(t *testing.T) {
	v := readPatternVectors(t)
	statuses := map[Status]int{StatusFound: 200, StatusNotFound: 404, StatusMethodNotAllowed: 405, StatusOptions: 204}
	requests := 0
	for _, tv := range v.Tables {
		r := New[int]()
		var routes []Route[int]
		for i, rt := range tv.Routes {
			routes = append(routes, Route[int]{Method: rt[0], Pattern: rt[1], Value: i})
		}
		err := r.Add(routes...)
		switch tv.Error {
		case "duplicate":
			if !errors.Is(err, ErrDuplicate) {
				t.Errorf("%s: got %v, want ErrDuplicate", tv.Name, err)
			}
			continue
		case "conflict":
			if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrDuplicate) {
				t.Errorf("%s: got %v, want a conflict", tv.Name, err)
			}
			continue
		case "":
			if err != nil {
				t.Fatalf("%s: %v", tv.Name, err)
			}
		default:
			t.Fatalf("%s: unknown error kind %q", tv.Name, tv.Error)
		}
		for _, rq := range tv.Requests {
			requests++
			path := rq.Path
			if b, ok := AppendCanonicalPath(nil, path); ok {
				path = string(b)
			}
			var ps Params
			m, st := r.Lookup(rq.Method, path, &ps)
			where := tv.Name + ": " + rq.Method + " " + rq.Path
			if statuses[st] != rq.Status {
				t.Errorf("%s: status %d (%v), want %d", where, statuses[st], st, rq.Status)
				continue
			}
			if m.Allow != rq.Allow {
				t.Errorf("%s: Allow %q, want %q", where, m.Allow, rq.Allow)
			}
			if st != StatusFound {
				continue
			}
			got := routes[m.Value]
			if want := rq.Route; len(want) != 2 || got.Method != want[0] || got.Pattern != want[1] {
				t.Errorf("%s: route %s %s, want %v", where, got.Method, got.Pattern, want)
			}
			params := [][2]string{}
			for _, p := range ps.Slice() {
				val, err := Unescape(p.Value)
				if err != nil {
					t.Errorf("%s: param %s=%q: %v", where, p.Name, p.Value, err)
				}
				params = append(params, [2]string{p.Name, val})
			}
			if want := rq.Params; !reflect.DeepEqual(params, append([][2]string{}, want...)) {
				t.Errorf("%s: params %q, want %q", where, params, want)
			}
		}
	}
	if requests == 0 {
		t.Fatal("no request vectors")
	}
}
