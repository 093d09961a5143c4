package secheaders

import (
	"strings"
	"testing"

	"github.com/covetpy/covetpy/workerproto"
)

func hdrs(kv ...string) []workerproto.Header {
	var hs []workerproto.Header
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, workerproto.Header{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return hs
}

func fields(hs []workerproto.Header) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(string(h.Name) + ": " + string(h.Value) + "\n")
	}
	return b.String()
}

func mustNew(t *testing.T, cfg Config) *Set {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return s
}

const defaultsPlain = "x-content-type-options: nosniff\nx-frame-options: DENY\nreferrer-policy: strict-origin-when-cross-origin\n"
const defaultsTLS = "strict-transport-security: max-age=63072000; includeSubDomains\n" + defaultsPlain

func TestDefaults(t *testing.T) {
	s := mustNew(t, Config{Enabled: true})
	if got := fields(s.Append(nil, false)); got != defaultsPlain {
		t.Errorf("plain:\n%s\nwant:\n%s", got, defaultsPlain)
	}
	if got := fields(s.Append(nil, true)); got != defaultsTLS {
		t.Errorf("tls:\n%s\nwant:\n%s", got, defaultsTLS)
	}
	if !s.Enabled() {
		t.Error("Enabled() false")
	}
	// Off by default.
	off := mustNew(t, Config{})
	if got := off.Append(nil, true); len(got) != 0 || off.Enabled() {
		t.Errorf("default config adds %q", fields(got))
	}
	var nilSet *Set
	if got := nilSet.Append(nil, true); len(got) != 0 || nilSet.Enabled() {
		t.Errorf("nil set adds %q", fields(got))
	}
}

func TestConfigValues(t *testing.T) {
	s := mustNew(t, Config{Enabled: true, HSTS: "max-age=300", FrameOptions: "sameorigin", ReferrerPolicy: "no-referrer, strict-origin"})
	want := "strict-transport-security: max-age=300\nx-content-type-options: nosniff\nx-frame-options: sameorigin\nreferrer-policy: no-referrer, strict-origin\n"
	if got := fields(s.Append(nil, true)); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	s = mustNew(t, Config{Enabled: true, HSTS: "off", FrameOptions: "OFF", ReferrerPolicy: "off"})
	if got := fields(s.Append(nil, true)); got != "x-content-type-options: nosniff\n" {
		t.Errorf("all off but nosniff: %q", got)
	}
}

func TestWorkerWins(t *testing.T) {
	s := mustNew(t, Config{Enabled: true})
	resp := hdrs("content-type", "text/html", "x-frame-options", "SAMEORIGIN", "strict-transport-security", "max-age=1")
	want := "content-type: text/html\nx-frame-options: SAMEORIGIN\nstrict-transport-security: max-age=1\n" +
		"x-content-type-options: nosniff\nreferrer-policy: strict-origin-when-cross-origin\n"
	if got := fields(s.Append(resp, true)); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestForRoute(t *testing.T) {
	def := mustNew(t, Config{Enabled: true})
	if r, err := def.ForRoute(nil); r != def || err != nil {
		t.Errorf("absent: %v %v", r, err)
	}
	r, err := def.ForRoute(false)
	if err != nil || len(r.Append(nil, true)) != 0 {
		t.Errorf("false: %v %v", r, err)
	}
	// Override one, remove one, add one, HSTS overridden but still TLS only.
	r, err = def.ForRoute(map[string]any{
		"X-Frame-Options":           "SAMEORIGIN",
		"referrer-policy":           "",
		"content-security-policy":   "default-src 'self'",
		"strict-transport-security": "max-age=60; preload",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "x-content-type-options: nosniff\nx-frame-options: SAMEORIGIN\ncontent-security-policy: default-src 'self'\n"
	if got := fields(r.Append(nil, false)); got != want {
		t.Errorf("plain:\n%s\nwant:\n%s", got, want)
	}
	if got := fields(r.Append(nil, true)); got != "strict-transport-security: max-age=60; preload\n"+want {
		t.Errorf("tls:\n%s", got)
	}
	// The default set is unchanged.
	if got := fields(def.Append(nil, true)); got != defaultsTLS {
		t.Errorf("default changed:\n%s", got)
	}
	// A route turns headers on where the gateway's default is off, from the
	// configured values.
	off := mustNew(t, Config{FrameOptions: "SAMEORIGIN"})
	r, err = off.ForRoute(map[string]any{"referrer-policy": "no-referrer"})
	if err != nil {
		t.Fatal(err)
	}
	want = "x-content-type-options: nosniff\nx-frame-options: SAMEORIGIN\nreferrer-policy: no-referrer\n"
	if got := fields(r.Append(nil, false)); got != want {
		t.Errorf("route on, default off:\n%s\nwant:\n%s", got, want)
	}
	var nilSet *Set
	if r, err := nilSet.ForRoute(map[string]any{"x-frame-options": "DENY"}); err != nil || fields(r.Append(nil, false)) != "x-frame-options: DENY\n" {
		t.Errorf("nil set with a map: %v", err)
	}

	bad := []struct {
		opt  any
		want string
	}{
		{true, "security_headers: true is not a set"},
		{"DENY", "security_headers is str, want false or a map"},
		{map[string]any{"x-frame-options": 1}, "security_headers.x-frame-options is int, want str"},
		{map[string]any{"x-frame-options": "ALLOW-FROM https://a.example"}, `security_headers.x-frame-options: "ALLOW-FROM https://a.example": want DENY or SAMEORIGIN`},
		{map[string]any{"referrer-policy": "never"}, `security_headers.referrer-policy: "never": unknown policy "never"`},
		{map[string]any{"strict-transport-security": "includeSubDomains"}, "no max-age directive"},
		{map[string]any{"strict-transport-security": "max-age=1y"}, "max-age wants a number of seconds"},
		{map[string]any{"strict-transport-security": "max-age=1; max-age=2"}, "directive max-age twice"},
		{map[string]any{"x-content-type-options": "sniff"}, "want nosniff"},
		{map[string]any{"x-custom": "a\r\nset-cookie: x=1"}, "control character 0x0d"},
		{map[string]any{"x-custom": " a"}, "leading or trailing whitespace"},
		{map[string]any{"bad name": "x"}, "security_headers.bad name: not a header name"},
		{map[string]any{"Content-Length": "0"}, "security_headers.Content-Length: a framing field"},
	}
	for _, c := range bad {
		_, err := def.ForRoute(c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ForRoute(%#v) = %v, want an error containing %q", c.opt, err, c.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{HSTS: "max-age=abc"}, `security_hsts: "max-age=abc": max-age wants a number of seconds`},
		{Config{FrameOptions: "DENNY"}, `security_frame_options: "DENNY": want DENY or SAMEORIGIN`},
		{Config{ReferrerPolicy: "origin,bogus"}, `security_referrer_policy: "origin,bogus": unknown policy "bogus"`},
		{Config{HSTS: "max-age=1\x00"}, `security_hsts: "max-age=1\x00": control character 0x00`},
	}
	for _, c := range cases {
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
}

func TestAppendAllocs(t *testing.T) {
	s := mustNew(t, Config{Enabled: true})
	resp := hdrs("content-type", "text/plain", "content-length", "5")
	buf := make([]workerproto.Header, 0, 16)
	n := testing.AllocsPerRun(100, func() { buf = s.Append(append(buf[:0], resp...), true) })
	if n != 0 {
		t.Errorf("%v allocations per Append", n)
	}
}

func BenchmarkAppend(b *testing.B) {
	s, _ := New(Config{Enabled: true})
	resp := hdrs("content-type", "text/plain", "content-length", "5", "date", "x")
	buf := make([]workerproto.Header, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		buf = s.Append(append(buf[:0], resp...), true)
	}
}
