package ratelimit

import (
	"testing"
	"time"

	"github.com/covetpy/covetpy/workerproto"
)

func TestAppendHeaders(t *testing.T) {
	min5 := Limit{5, time.Minute}
	for _, c := range []struct {
		name string
		d    Decision
		want []string // name: value
	}{
		{"none", Decision{Allowed: true}, nil},
		{"allowed", Decision{Allowed: true, Limit: min5, Remaining: 4, Reset: 12 * time.Second},
			[]string{`ratelimit-policy: "5/minute";q=5;w=60`, `ratelimit: "5/minute";r=4;t=12`}},
		{"allowed, reset rounded up", Decision{Allowed: true, Limit: Limit{100, time.Second}, Remaining: 99, Reset: 10 * time.Millisecond},
			[]string{`ratelimit-policy: "100/second";q=100;w=1`, `ratelimit: "100/second";r=99;t=1`}},
		{"refused", Decision{Limit: min5, Reset: 60 * time.Second, RetryAfter: 11500 * time.Millisecond},
			[]string{`ratelimit-policy: "5/minute";q=5;w=60`, `ratelimit: "5/minute";r=0;t=60`, `retry-after: 12`}},
		{"refused, retry-after at least 1", Decision{Limit: Limit{100, time.Second}, Reset: time.Second, RetryAfter: time.Millisecond},
			[]string{`ratelimit-policy: "100/second";q=100;w=1`, `ratelimit: "100/second";r=0;t=1`, `retry-after: 1`}},
		{"store unknown, admitted", Decision{Allowed: true, Limit: min5, Unknown: true},
			[]string{`ratelimit-policy: "5/minute";q=5;w=60`}},
		{"store unknown, refused", Decision{Limit: min5, Unknown: true, RetryAfter: time.Second},
			[]string{`ratelimit-policy: "5/minute";q=5;w=60`, `retry-after: 1`}},
		{"day", Decision{Allowed: true, Limit: Limit{10, 24 * time.Hour}, Remaining: 9, Reset: 8640 * time.Second},
			[]string{`ratelimit-policy: "10/day";q=10;w=86400`, `ratelimit: "10/day";r=9;t=8640`}},
	} {
		pre := []workerproto.Header{{Name: []byte("x-kept"), Value: []byte("1")}}
		got := c.d.AppendHeaders(pre)
		if len(got) != 1+len(c.want) || string(got[0].Name) != "x-kept" {
			t.Errorf("%s: %d headers %q, want x-kept and %q", c.name, len(got), got, c.want)
			continue
		}
		for i, w := range c.want {
			if s := string(got[i+1].Name) + ": " + string(got[i+1].Value); s != w {
				t.Errorf("%s: header %d = %s, want %s", c.name, i, s, w)
			}
		}
	}
}
