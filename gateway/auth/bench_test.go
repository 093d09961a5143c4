package auth

import (
	"testing"
	"time"
)

// BenchmarkVerify measures Verify per algorithm: uncached (auth_cache_size
// -1: parse, signature, claims every time) and cached (the same token again:
// SHA-256 of the token and a map lookup).
//
//	go test -run '^$' -bench Verify -benchmem ./gateway/auth
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{"HS256", "ES256", "EdDSA", "ML-DSA-44"} {
		s := newSigner(b, alg, "bench-key")
		now := time.Now()
		claims := map[string]any{"sub": "user-1234", "iss": "https://issuer.example", "aud": "api",
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "roles": []string{"admin", "ops"}, "scope": "reports:read reports:write"}
		tok := []byte(s.mint(claims, nil))
		for _, mode := range []struct {
			name string
			size int
		}{{"uncached", -1}, {"cached", 0}} {
			b.Run(alg+"/"+mode.name, func(b *testing.B) {
				v := newTestVerifier(b, Config{Algorithms: []string{s.alg}, Issuer: "https://issuer.example", Audience: []string{"api"}, CacheSize: mode.size}, &now, s.jwk)
				v.now = time.Now
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(tok)))
				b.ResetTimer()
				for b.Loop() {
					if _, err := v.Verify(tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// The cached path allocates nothing.
func TestCachedVerifyAllocs(t *testing.T) {
	now := fixedClock
	s := newSigner(t, "ES256", "k")
	v := newTestVerifier(t, Config{Algorithms: []string{"ES256"}}, &now, s.jwk)
	tok := []byte(s.mint(claimsAt(now, nil), nil))
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { v.Verify(tok) }); n != 0 {
		t.Fatalf("cached Verify allocates %v times", n)
	}
}
