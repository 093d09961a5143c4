package clientip

import (
	"errors"
	"net/netip"
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

func TestNew(t *testing.T) {
	r, err := New(Config{})
	if r != nil || err != nil {
		t.Fatalf("New(empty) = %v, %v; want nil, nil", r, err)
	}
	r, err = New(Config{TrustedProxies: []string{"10.0.0.0/8", " 192.0.2.7 ", "2001:db8::/32", "::1", "10.1.2.3/16", "::ffff:172.16.0.0/108"}})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"10.200.0.1": true, "11.0.0.1": false, "192.0.2.7": true, "192.0.2.8": false,
		"2001:db8:1::5": true, "2001:db9::1": false, "::1": true, "::2": false,
		"::ffff:10.0.0.1": true, "172.16.3.4": true, "172.32.0.1": false,
	} {
		if got := r.Trusts(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Trusts(%s) = %v, want %v", ip, got, want)
		}
	}
	for _, tt := range []struct{ entry, want string }{
		{"10.0.0.0/33", `trusted_proxies: "10.0.0.0/33" is not a CIDR`},
		{"localhost", `trusted_proxies: "localhost" is not an IP address or CIDR`},
		{"fe80::1%eth0", `trusted_proxies: "fe80::1%eth0" is not an IP address or CIDR`},
		{"  ", "trusted_proxies: empty entry"},
		{"10.0.0.1-10.0.0.9", `"10.0.0.1-10.0.0.9" is not an IP address`},
	} {
		_, err := New(Config{TrustedProxies: []string{"10.0.0.0/8", tt.entry}})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q) = %v, want %q", tt.entry, err, tt.want)
		}
	}
}

func TestClient(t *testing.T) {
	r, err := New(Config{TrustedProxies: []string{"10.0.0.0/8", "2001:db8:ffff::/48"}})
	if err != nil {
		t.Fatal(err)
	}
	const proxy = "10.0.0.1:40000"
	tests := []struct {
		name, peer string
		headers    []workerproto.Header
		want       string
	}{
		{"untrusted peer, headers ignored", "192.0.2.1:5000", hdrs("x-forwarded-for", "203.0.113.9", "forwarded", "for=203.0.113.9"), "192.0.2.1:5000"},
		{"trusted peer, no header", proxy, nil, proxy},
		{"trusted peer, other headers", proxy, hdrs("host", "x", "x-real-ip", "1.2.3.4"), proxy},
		{"bad peer", "not an address", hdrs("x-forwarded-for", "203.0.113.9"), "not an address"},

		// X-Forwarded-For.
		{"xff one", proxy, hdrs("x-forwarded-for", "203.0.113.9"), "203.0.113.9:0"},
		{"xff spoofed left part", proxy, hdrs("x-forwarded-for", "1.1.1.1, 203.0.113.9"), "203.0.113.9:0"},
		{"xff trusted hops skipped", proxy, hdrs("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.9.9.9,10.8.8.8"), "203.0.113.9:0"},
		{"xff all trusted: leftmost", proxy, hdrs("x-forwarded-for", "10.3.3.3, 10.2.2.2"), "10.3.3.3:0"},
		{"xff several fields in order", proxy, hdrs("x-forwarded-for", "1.1.1.1, 203.0.113.9", "x-forwarded-for", "10.5.5.5"), "203.0.113.9:0"},
		{"xff later field is nearer", proxy, hdrs("x-forwarded-for", "10.5.5.5", "x-forwarded-for", "203.0.113.9"), "203.0.113.9:0"},
		{"xff ipv6", proxy, hdrs("x-forwarded-for", "2001:db8::7"), "[2001:db8::7]:0"},
		{"xff ipv6 bracketed port", proxy, hdrs("x-forwarded-for", "[2001:db8::7]:8443"), "[2001:db8::7]:8443"},
		{"xff ipv4 port", proxy, hdrs("x-forwarded-for", "203.0.113.9:1234"), "203.0.113.9:1234"},
		{"xff mapped", proxy, hdrs("x-forwarded-for", "::ffff:203.0.113.9"), "203.0.113.9:0"},
		{"xff trusted ipv6 proxy hop", proxy, hdrs("x-forwarded-for", "203.0.113.9, 2001:db8:ffff::1"), "203.0.113.9:0"},
		{"xff unknown: last trusted", proxy, hdrs("x-forwarded-for", "203.0.113.9, unknown, 10.7.7.7"), "10.7.7.7:0"},
		{"xff unknown right away: peer", proxy, hdrs("x-forwarded-for", "203.0.113.9, unknown"), proxy},
		{"xff junk", proxy, hdrs("x-forwarded-for", "203.0.113.9, evil"), proxy},
		{"xff empty item", proxy, hdrs("x-forwarded-for", "203.0.113.9,,10.1.1.1"), proxy},
		{"xff empty", proxy, hdrs("x-forwarded-for", ""), proxy},
		{"xff zone", proxy, hdrs("x-forwarded-for", "fe80::1%eth0"), proxy},
		{"xff bad port", proxy, hdrs("x-forwarded-for", "203.0.113.9:99999"), proxy},
		{"xff ipv4 in brackets", proxy, hdrs("x-forwarded-for", "[203.0.113.9]:80"), proxy},
		{"trusted ipv6 peer", "[2001:db8:ffff::2]:443", hdrs("x-forwarded-for", "203.0.113.9"), "203.0.113.9:0"},
		{"mapped trusted peer", "[::ffff:10.0.0.1]:443", hdrs("x-forwarded-for", "203.0.113.9"), "203.0.113.9:0"},

		// Forwarded (RFC 7239 examples and more).
		{"fwd simple", proxy, hdrs("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43"), "192.0.2.60:0"},
		{"fwd quoted ipv6 port", proxy, hdrs("forwarded", `For="[2001:db8:cafe::17]:4711"`), "[2001:db8:cafe::17]:4711"},
		{"fwd list", proxy, hdrs("forwarded", "for=192.0.2.43, for=198.51.100.17"), "198.51.100.17:0"},
		{"fwd list trusted skipped", proxy, hdrs("forwarded", "for=192.0.2.43, for=10.6.6.6;by=10.0.0.1"), "192.0.2.43:0"},
		{"fwd ipv4 port quoted", proxy, hdrs("forwarded", `for="192.0.2.43:8080"`), "192.0.2.43:8080"},
		{"fwd obfuscated port", proxy, hdrs("forwarded", `for="192.0.2.43:_p1"`), "192.0.2.43:0"},
		{"fwd unknown: peer", proxy, hdrs("forwarded", "for=192.0.2.43, for=unknown"), proxy},
		{"fwd obfuscated: last trusted", proxy, hdrs("forwarded", "for=192.0.2.43, for=_hidden, for=10.4.4.4"), "10.4.4.4:0"},
		{"fwd obfuscated quoted with port", proxy, hdrs("forwarded", `for="_gazonk:_p"`), proxy},
		{"fwd element without for", proxy, hdrs("forwarded", "for=192.0.2.43, proto=https;by=10.0.0.1"), proxy},
		{"fwd several fields", proxy, hdrs("forwarded", "for=1.1.1.1", "forwarded", "for=192.0.2.43"), "192.0.2.43:0"},
		{"fwd OWS", proxy, hdrs("forwarded", "  for=192.0.2.43 ;proto=http ,  for=10.1.1.1  "), "192.0.2.43:0"},
		{"fwd precedence over xff", proxy, hdrs("x-forwarded-for", "198.51.100.1", "forwarded", "for=192.0.2.43"), "192.0.2.43:0"},
		{"fwd junk ignores xff too", proxy, hdrs("x-forwarded-for", "198.51.100.1", "forwarded", "for=[::1]"), proxy},
		{"fwd unquoted ipv6", proxy, hdrs("forwarded", "for=2001:db8::1"), proxy},
		{"fwd ipv6 unbracketed quoted", proxy, hdrs("forwarded", `for="2001:db8::1"`), proxy},
		{"fwd unterminated quote", proxy, hdrs("forwarded", `for="192.0.2.43`), proxy},
		{"fwd quoted-pair", proxy, hdrs("forwarded", `for="192.0.2.\43"`), proxy},
		{"fwd duplicate for", proxy, hdrs("forwarded", "for=192.0.2.43;for=192.0.2.44"), proxy},
		{"fwd missing value", proxy, hdrs("forwarded", "for="), proxy},
		{"fwd no pair", proxy, hdrs("forwarded", "192.0.2.43"), proxy},
		{"fwd trailing comma", proxy, hdrs("forwarded", "for=192.0.2.43,"), proxy},
		{"fwd bad obfuscated", proxy, hdrs("forwarded", `for="_a b"`), proxy},
		{"fwd unknown with port", proxy, hdrs("forwarded", `for="unknown:80"`), proxy},
		{"fwd empty", proxy, hdrs("forwarded", ""), proxy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Client(tt.peer, tt.headers); got != tt.want {
				t.Fatalf("Client(%s, %q) = %s, want %s", tt.peer, tt.headers, got, tt.want)
			}
		})
	}
}

func TestNilResolver(t *testing.T) {
	var r *Resolver
	if got := r.Client("10.0.0.1:1", hdrs("x-forwarded-for", "203.0.113.9")); got != "10.0.0.1:1" {
		t.Fatalf("nil Resolver: %s", got)
	}
	if r.Trusts(netip.MustParseAddr("10.0.0.1")) {
		t.Fatal("nil Resolver trusts")
	}
}

// Untrusted peers (the common case without proxies) cost no allocation.
func TestClientAllocs(t *testing.T) {
	r, _ := New(Config{TrustedProxies: []string{"10.0.0.0/8"}})
	h := hdrs("host", "example.com", "x-forwarded-for", "203.0.113.9")
	for _, peer := range []string{"192.0.2.1:5000", "[2001:db8::1]:443"} {
		if a := testing.AllocsPerRun(100, func() { r.Client(peer, h) }); a != 0 {
			t.Errorf("Client(%s) allocates %v times", peer, a)
		}
	}
	var none *Resolver
	if a := testing.AllocsPerRun(100, func() { none.Client("192.0.2.1:5000", h) }); a != 0 {
		t.Errorf("nil Resolver allocates %v times", a)
	}
}

func FuzzClient(f *testing.F) {
	r, _ := New(Config{TrustedProxies: []string{"10.0.0.0/8", "::1"}})
	for _, s := range []string{"for=192.0.2.60;proto=http", `For="[2001:db8:cafe::17]:4711", for=unknown`, "1.1.1.1, 10.0.0.3", `for="_x:_y"`} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, fwd, xff string) {
		got := r.Client("10.0.0.1:80", hdrs("forwarded", fwd, "x-forwarded-for", xff))
		if _, err := netip.ParseAddrPort(got); err != nil {
			t.Fatalf("Client = %q, not ip:port", got)
		}
		got = r.Client("10.0.0.1:80", hdrs("x-forwarded-for", xff))
		if _, err := netip.ParseAddrPort(got); err != nil {
			t.Fatalf("Client = %q, not ip:port", got)
		}
	})
}

func BenchmarkClient(b *testing.B) {
	r, _ := New(Config{TrustedProxies: []string{"10.0.0.0/8"}})
	h := hdrs("host", "example.com", "x-forwarded-for", "203.0.113.9, 10.1.1.1")
	b.Run("untrusted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Client("192.0.2.1:5000", h)
		}
	})
	b.Run("trusted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Client("10.0.0.1:5000", h)
		}
	})
}
