package ratelimit

import (
	"testing"
	"time"
)

func TestParseLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Limit
		str  string
	}{
		{"5/minute", Limit{5, time.Minute}, "5/minute"},
		{"5/m", Limit{5, time.Minute}, "5/minute"},
		{"100/second", Limit{100, time.Second}, "100/second"},
		{"100/s", Limit{100, time.Second}, "100/second"},
		{"1000/hour", Limit{1000, time.Hour}, "1000/hour"},
		{"10/day", Limit{10, 24 * time.Hour}, "10/day"},
		{"10/d", Limit{10, 24 * time.Hour}, "10/day"},
		{"1000000/s", Limit{1000000, time.Second}, "1000000/second"},
		{"none", Limit{}, "none"},
	} {
		got, err := ParseLimit(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseLimit(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
		if got.String() != c.str {
			t.Errorf("ParseLimit(%q).String() = %q, want %q", c.in, got.String(), c.str)
		}
		if back, err := ParseLimit(got.String()); err != nil || back != got {
			t.Errorf("ParseLimit(%q) = %v, %v; want %v", got.String(), back, err, got)
		}
	}
	if s := (Limit{3, 10 * time.Second}).String(); s != "3/10s" {
		t.Errorf("String of 3 per 10s = %q", s)
	}
}

func TestParseLimitErrors(t *testing.T) {
	for in, want := range map[string]string{
		"5/fortnight":              `"5/fortnight": unit must be second, minute, hour or day (or s, m, h, d)`,
		"5/Minute":                 `"5/Minute": unit must be second, minute, hour or day (or s, m, h, d)`,
		"5/":                       `"5/": unit must be second, minute, hour or day (or s, m, h, d)`,
		"5":                        `"5": want N/unit, e.g. 5/minute, or none`,
		"":                         `"": want N/unit, e.g. 5/minute, or none`,
		"None":                     `"None": want N/unit, e.g. 5/minute, or none`,
		"/minute":                  `"/minute": count must be a positive integer`,
		"-5/minute":                `"-5/minute": count must be a positive integer`,
		"+5/minute":                `"+5/minute": count must be a positive integer`,
		" 5/minute":                `" 5/minute": count must be a positive integer`,
		"5.5/minute":               `"5.5/minute": count must be a positive integer`,
		"0/minute":                 `"0/minute": count must be at least 1 ("none" for no limit)`,
		"1000001/second":           `"1000001/second": at most 1000000 per second`,
		"99999999999999999999/day": `"99999999999999999999/day": at most 1000000 per second`,
	} {
		_, err := ParseLimit(in)
		if err == nil || err.Error() != want {
			t.Errorf("ParseLimit(%q) error = %v, want %s", in, err, want)
		}
	}
}

func TestParseKey(t *testing.T) {
	for in, want := range map[string]Key{
		"ip":               {Kind: KeyIP},
		"subject":          {Kind: KeySubject},
		"header:X-API-Key": {Kind: KeyHeader, Header: "x-api-key"},
		"header:x-tenant":  {Kind: KeyHeader, Header: "x-tenant"},
	} {
		got, err := ParseKey(in)
		if err != nil || got != want {
			t.Errorf("ParseKey(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := ParseKey(got.String()); err != nil || back != got {
			t.Errorf("ParseKey(%q) = %v, %v; want %v", got.String(), back, err, got)
		}
	}
	for in, want := range map[string]string{
		"":                 `"": must be ip, subject or header:<Name>`,
		"IP":               `"IP": must be ip, subject or header:<Name>`,
		"cookie":           `"cookie": must be ip, subject or header:<Name>`,
		"header:":          `"header:": header name is empty`,
		"header:X API Key": `"header:X API Key": ' ' is not allowed in a header name`,
		"header:x:y":       `"header:x:y": ':' is not allowed in a header name`,
	} {
		_, err := ParseKey(in)
		if err == nil || err.Error() != want {
			t.Errorf("ParseKey(%q) error = %v, want %s", in, err, want)
		}
	}
}
