package dispatch

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

func hello(app string, routes ...string) workerproto.Hello {
	h := workerproto.Hello{Version: 1, App: app}
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		h.Routes = append(h.Routes, workerproto.Route{Method: method, Path: path, Kind: "http",
			Options: map[string]any{"timeout_ms": int64(1500)}})
	}
	return h
}

func TestRegisterBuildsTheRouteTable(t *testing.T) {
	d, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.register(hello("shop", "GET /items/{id:int}", "POST /items")); err != nil {
		t.Fatal(err)
	}
	var ps router.Params
	m, st := d.Lookup("GET", "/items/7", &ps)
	if st != router.StatusFound || m.Value.App != "shop" || m.Value.Timeout != 1500*time.Millisecond {
		t.Fatalf("lookup: %v %+v", st, m.Value)
	}
	if v, _ := ps.Get("id"); v != "7" {
		t.Errorf("param id = %q", v)
	}
	// The table itself (Lookup answers misses with the unavailable route while the
	// app has no live worker: TestMissWithoutWorkersIs503).
	if _, st := d.routes.Lookup("DELETE", "/items", &ps); st != router.StatusMethodNotAllowed {
		t.Errorf("DELETE /items: %v, want 405", st)
	}
	// Another worker of the app with the same manifest joins the same pool.
	a1 := d.apps["shop"]
	a2, err := d.register(hello("shop", "POST /items", "GET /items/{id:int}"))
	if err != nil || a2 != a1 {
		t.Errorf("same manifest in another order: %v, same app %v", err, a2 == a1)
	}
}

func TestRegisterRefusesConflicts(t *testing.T) {
	d, _ := New(Config{}, nil)
	if _, err := d.register(hello("a", "GET /users/{id}")); err != nil {
		t.Fatal(err)
	}
	// Another app's route that the router cannot tell apart.
	_, err := d.register(hello("b", "GET /users/{name}"))
	var perr *workerproto.Error
	if err == nil || !errors.As(err, &perr) || perr.Code != workerproto.CodeConflict ||
		!strings.Contains(err.Error(), "/users/{name}") || !strings.Contains(err.Error(), "/users/{id}") {
		t.Errorf("conflicting app: %v, want a conflict naming both patterns", err)
	}
	// App b was not half-registered: its routes are absent.
	var ps router.Params
	if m, _ := d.Lookup("GET", "/users/x", &ps); m.Value == nil || m.Value.App != "a" {
		t.Errorf("route table changed by a refused manifest: %+v", m.Value)
	}
	// A live app cannot change its manifest under its running workers.
	d.apps["a"].sessions = []*Session{{}}
	if _, err := d.register(hello("a", "GET /users/{id}", "GET /extra")); err == nil || !strings.Contains(err.Error(), "different route manifest") {
		t.Errorf("manifest change of a live app: %v", err)
	}
	// Once its workers are gone it can.
	d.apps["a"].sessions = nil
	if _, err := d.register(hello("a", "GET /extra")); err != nil {
		t.Errorf("manifest change of an app with no live worker: %v", err)
	}
	if _, st := d.routes.Lookup("GET", "/users/x", &ps); st != router.StatusNotFound {
		t.Errorf("old route of the replaced manifest still answers: %v", st)
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{MaxInflight: -1}, "max_inflight"},
		{Config{QueueSize: -1}, "queue_size"},
		{Config{QueueTimeout: -time.Second}, "queue_timeout"},
		{Config{Retries: -1}, "retries"},
	} {
		if err := tc.c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want it to name %s", tc.c, err, tc.want)
		}
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

// A ws route's "http" option (PROTOCOL.md 1.3) is compiled onto the route as
// AlsoHTTP, with its other options; a ws route without it, and an http route,
// have it false.
func TestRegisterWebSocketRouteAlsoHTTP(t *testing.T) {
	d, _ := New(Config{}, nil)
	h := workerproto.Hello{Version: 1, App: "live", Routes: []workerproto.Route{
		{Method: "GET", Path: "/live", Kind: "ws", Options: map[string]any{"http": true, "timeout_ms": int64(700), "resumable": true}},
		{Method: "POST", Path: "/live", Kind: "http"},
		{Method: "GET", Path: "/chat", Kind: "ws", Options: map[string]any{}},
		{Method: "GET", Path: "/plain", Kind: "http"},
	}}
	if _, err := d.register(h); err != nil {
		t.Fatal(err)
	}
	var ps router.Params
	for _, tc := range []struct {
		method, path string
		kind         Kind
		alsoHTTP     bool
	}{
		{"GET", "/live", KindWebSocket, true},
		{"HEAD", "/live", KindWebSocket, true}, // HEAD is GET's
		{"POST", "/live", KindHTTP, false},
		{"GET", "/chat", KindWebSocket, false},
		{"GET", "/plain", KindHTTP, false},
	} {
		m, st := d.routes.Lookup(tc.method, tc.path, &ps)
		if st != router.StatusFound || m.Value.Kind != tc.kind || m.Value.AlsoHTTP != tc.alsoHTTP {
			t.Errorf("%s %s: %v %+v, want kind %d AlsoHTTP %v", tc.method, tc.path, st, m.Value, tc.kind, tc.alsoHTTP)
		}
	}
	if m, _ := d.routes.Lookup("GET", "/live", &ps); m.Value.Timeout != 700*time.Millisecond || !m.Value.Resumable {
		t.Errorf("the route's other options: %+v", m.Value)
	}
}
