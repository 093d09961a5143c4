package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func reasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if err == nil {
		return ""
	}
	return "not *Error: " + err.Error()
}

// Every algorithm verifies a token it signed, through a JWKS file, with both
// the JWK's alg absent and present.
func TestVerifyEveryAlgorithm(t *testing.T) {
	now := fixedClock
	for _, alg := range []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", "EdDSA", "EdDSA-448", "Ed25519", "Ed448", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87"} {
		t.Run(alg, func(t *testing.T) {
			s := newSigner(t, alg, "k1")
			v := newTestVerifier(t, Config{Algorithms: []string{s.alg}}, &now, s.jwk)
			id, err := v.Verify([]byte(s.mint(claimsAt(now, nil), nil)))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.Subject != "alice" || !id.Expires.Equal(now.Add(time.Hour).Truncate(time.Second)) {
				t.Fatalf("identity %+v", id)
			}
			// Not in auth_algorithms: refused even though the key fits.
			other := "ES256"
			if s.alg == "ES256" {
				other = "HS256"
			}
			v2 := newTestVerifier(t, Config{Algorithms: []string{other}}, &now, s.jwk)
			if _, err := v2.Verify([]byte(s.mint(claimsAt(now, nil), nil))); reasonOf(err) != ReasonBadAlg {
				t.Fatalf("alg outside auth_algorithms: %v, want bad_alg", err)
			}
		})
	}
}

// The attack matrix: each hostile token is refused with its reason.
func TestAttackMatrix(t *testing.T) {
	now := fixedClock
	rs := newSigner(t, "RS256", "rsa")
	ec := newSigner(t, "ES256", "ec")
	hs := newSigner(t, "HS256", "hs")
	attacker := newSigner(t, "ES256", "ec") // same kid as the real key, another key
	stranger := newSigner(t, "ES256", "attacker")
	cfg := Config{Algorithms: []string{"RS256", "ES256", "HS256"}, Issuer: "https://issuer.test", Audience: []string{"api"}}
	v := newTestVerifier(t, cfg, &now, rs.jwk, ec.jwk, hs.jwk)
	good := claimsAt(now, map[string]any{"iss": "https://issuer.test", "aud": "api"})
	if _, err := v.Verify([]byte(ec.mint(good, nil))); err != nil {
		t.Fatalf("the good token: %v", err)
	}
	claimsJSON, _ := json.Marshal(good)
	payload := b64(claimsJSON)

	// HS256 keyed with the RSA public key, as an attacker who knows the
	// public key would sign it: with the JWK JSON and with the raw modulus.
	rsaPubJSON, _ := json.Marshal(rs.jwk)
	hsWithRSA := func(hmacKey []byte, kid string) string {
		f := &signer{alg: "HS256", jwk: map[string]any{"kid": kid}}
		f.sign = newHMAC(hmacKey)
		h := `{"alg":"HS256","kid":"` + kid + `"}`
		if kid == "" {
			h = `{"alg":"HS256"}`
		}
		return f.mintRaw(h, string(claimsJSON))
	}
	rsaN, _ := b64url.DecodeString(rs.jwk["n"].(string))

	// "???>>>" encodes to "Pz8_Pj4-" in base64url, "Pz8/Pj4+" in standard base64.
	stdHeader := base64.RawStdEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"ec","x":"???>>>"}`))
	if !strings.ContainsAny(stdHeader, "+/") {
		t.Fatalf("header %s has no + or /", stdHeader)
	}
	type tc struct {
		name, token, reason string
	}
	cases := []tc{}
	for _, none := range []string{"none", "None", "NONE", "nOnE"} {
		h := b64([]byte(`{"alg":"` + none + `","kid":"ec"}`))
		cases = append(cases,
			tc{"alg " + none + " empty signature", h + "." + payload + ".", ReasonBadAlg},
			tc{"alg " + none + " with a signature", h + "." + payload + "." + b64([]byte("sig")), ReasonBadAlg})
	}
	cases = append(cases,
		tc{"HS256 with the RSA public JWK as secret, kid of the RSA key", hsWithRSA(rsaPubJSON, "rsa"), ReasonBadAlg},
		tc{"HS256 with the RSA modulus as secret, kid of the RSA key", hsWithRSA(rsaN, "rsa"), ReasonBadAlg},
		tc{"HS256 with the RSA public JWK as secret, no kid", hsWithRSA(rsaPubJSON, ""), ReasonBadSignature},
		tc{"kid path traversal", ec.mint(good, map[string]any{"kid": "../../etc/passwd"}), ReasonUnknownKid},
		tc{"kid absolute path", ec.mint(good, map[string]any{"kid": "/dev/null"}), ReasonUnknownKid},
		tc{"kid SQL injection", ec.mint(good, map[string]any{"kid": "x' OR '1'='1"}), ReasonUnknownKid},
		tc{"kid shell injection", ec.mint(good, map[string]any{"kid": "$(touch /tmp/pwned); `id`"}), ReasonUnknownKid},
		tc{"jku to an attacker key set, attacker kid", stranger.mint(good, map[string]any{"jku": "http://127.0.0.1:1/jwks.json"}), ReasonUnknownKid},
		tc{"jku to an attacker key set, real kid", attacker.mint(good, map[string]any{"jku": "http://127.0.0.1:1/jwks.json"}), ReasonBadSignature},
		tc{"x5u to an attacker certificate", attacker.mint(good, map[string]any{"x5u": "http://127.0.0.1:1/cert.pem"}), ReasonBadSignature},
		tc{"jwk header with the attacker's key", attacker.mint(good, map[string]any{"jwk": attacker.jwk}), ReasonBadSignature},
		tc{"jwk header, no kid", attacker.mintRaw(mustJSON(map[string]any{"alg": "ES256", "jwk": attacker.jwk}), string(claimsJSON)), ReasonBadSignature},
		tc{"x5c header", attacker.mint(good, map[string]any{"x5c": []string{"MIIB"}}), ReasonBadSignature},
		tc{"expired", ec.mint(claimsAt(now, map[string]any{"iss": "https://issuer.test", "aud": "api", "exp": now.Add(-time.Second).Unix()}), nil), ReasonExpired},
		// Claims are checked before the signature (which costs far more):
		// an expired token is refused as expired whatever its signature.
		tc{"expired with a bad signature", flipLast(ec.mint(claimsAt(now, map[string]any{"iss": "https://issuer.test", "aud": "api", "exp": now.Add(-time.Second).Unix()}), nil)), ReasonExpired},
		tc{"exp now", ec.mint(claimsAt(now, map[string]any{"iss": "https://issuer.test", "aud": "api", "exp": now.Unix()}), nil), ReasonExpired},
		tc{"no exp", ec.mint(claimsAt(now, map[string]any{"iss": "https://issuer.test", "aud": "api", "exp": nil}), nil), ReasonMissingExp},
		tc{"not yet valid (nbf)", ec.mint(claimsAt(now, map[string]any{"iss": "https://issuer.test", "aud": "api", "nbf": now.Add(time.Minute).Unix()}), nil), ReasonNotYetValid},
		tc{"issued in the future (iat)", ec.mint(claimsAt(now, map[string]any{"iss": "https://issuer.test", "aud": "api", "iat": now.Add(time.Minute).Unix()}), nil), ReasonNotYetValid},
		tc{"wrong aud", ec.mint(claimsAt(now, map[string]any{"iss": "https://issuer.test", "aud": "other"}), nil), ReasonBadAudience},
		tc{"wrong aud list", ec.mint(claimsAt(now, map[string]any{"iss": "https://issuer.test", "aud": []string{"a", "b"}}), nil), ReasonBadAudience},
		tc{"no aud", ec.mint(claimsAt(now, map[string]any{"iss": "https://issuer.test"}), nil), ReasonBadAudience},
		tc{"wrong iss", ec.mint(claimsAt(now, map[string]any{"iss": "https://evil.test", "aud": "api"}), nil), ReasonBadIssuer},
		tc{"no iss", ec.mint(claimsAt(now, map[string]any{"aud": "api"}), nil), ReasonBadIssuer},
		tc{"unknown crit", ec.mint(good, map[string]any{"crit": []string{"x-bank"}, "x-bank": 1}), ReasonCrit},
		tc{"crit naming exp", ec.mint(good, map[string]any{"crit": []string{"exp"}, "exp": 1}), ReasonCrit},
		tc{"b64 false", ec.mint(good, map[string]any{"b64": false, "crit": []string{"b64"}}), ReasonB64},
		tc{"b64 false without crit", ec.mint(good, map[string]any{"b64": false}), ReasonB64},
		tc{"header with padding", b64([]byte(`{"alg":"ES256","kid":"ec"}`)) + "==." + payload + "." + b64([]byte("sig")), ReasonMalformed},
		tc{"header in standard base64", stdHeader + "." + payload + "." + b64([]byte("sig")), ReasonMalformed},
		tc{"payload not base64", strings.Replace(ec.mint(good, nil), ".", ".!", 1), ReasonMalformed},
		tc{"signature not base64", ec.mint(good, nil) + "*", ReasonMalformed},
		tc{"header not JSON", b64([]byte("alg=ES256")) + "." + payload + "." + b64([]byte("sig")), ReasonMalformed},
		tc{"header a JSON array", b64([]byte(`["alg","ES256"]`)) + "." + payload + "." + b64([]byte("sig")), ReasonMalformed},
		tc{"two parts", b64([]byte(`{"alg":"ES256"}`)) + "." + payload, ReasonMalformed},
		tc{"four parts", ec.mint(good, nil) + ".e30", ReasonMalformed},
		tc{"claims not JSON", ec.mintRaw(`{"alg":"ES256","kid":"ec"}`, `not json`), ReasonMalformed},
		tc{"claims a JSON string", ec.mintRaw(`{"alg":"ES256","kid":"ec"}`, `"hello"`), ReasonMalformed},
		tc{"exp a string", ec.mint(claimsAt(now, map[string]any{"iss": "https://issuer.test", "aud": "api", "exp": "tomorrow"}), nil), ReasonMalformed},
		tc{"duplicate alg in header", ec.mintRaw(`{"alg":"none","kid":"ec","alg":"ES256"}`, string(claimsJSON)), ReasonDuplicateKeys},
		tc{"duplicate kid in header", ec.mintRaw(`{"alg":"ES256","kid":"attacker","kid":"ec"}`, string(claimsJSON)), ReasonDuplicateKeys},
		tc{"duplicate escaped name in header", ec.mintRaw(`{"alg":"ES256","kid":"ec","\u0061lg":"ES256"}`, string(claimsJSON)), ReasonDuplicateKeys},
		tc{"upper-case ALG is not alg", ec.mintRaw(`{"ALG":"ES256","kid":"ec"}`, string(claimsJSON)), ReasonMalformed},
		tc{"duplicate sub in claims", ec.mintRaw(`{"alg":"ES256","kid":"ec"}`,
			strings.Replace(string(claimsJSON), `"sub":"alice"`, `"sub":"alice","sub":"root"`, 1)), ReasonDuplicateKeys},
		tc{"duplicate nested member in claims", ec.mintRaw(`{"alg":"ES256","kid":"ec"}`,
			strings.Replace(string(claimsJSON), `"sub":"alice"`, `"sub":"alice","realm":{"roles":[],"roles":["admin"]}`, 1)), ReasonDuplicateKeys},
		tc{"modified signature", flipLast(ec.mint(good, nil)), ReasonBadSignature},
		// Claims that would pass, in another token's signature: the
		// signature check refuses them.
		tc{"modified payload", swapPayload(ec.mint(good, nil), b64([]byte(strings.Replace(string(claimsJSON), `"sub":"alice"`, `"sub":"root"`, 1)))), ReasonBadSignature},
		tc{"modified payload, claims refused first", swapPayload(ec.mint(good, nil), b64([]byte(`{"sub":"root","exp":9999999999}`))), ReasonBadIssuer},
		tc{"empty signature", strings.TrimRight(ec.mint(good, nil), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), ReasonBadSignature},
		tc{"a 1 MB token", "eyJhbGciOiJFUzI1NiJ9." + strings.Repeat("A", 1<<20) + ".AAAA", ReasonTooLarge},
		tc{"alg not a string", ec.mintRaw(`{"alg":256,"kid":"ec"}`, string(claimsJSON)), ReasonMalformed},
		tc{"alg unknown", ec.mintRaw(`{"alg":"ES256K","kid":"ec"}`, string(claimsJSON)), ReasonBadAlg},
		tc{"alg with trailing space", ec.mintRaw(`{"alg":"ES256 ","kid":"ec"}`, string(claimsJSON)), ReasonBadAlg},
		tc{"ES256 signed, claims HS256 with the EC key's kid", ec.mintRaw(`{"alg":"HS256","kid":"ec"}`, string(claimsJSON)), ReasonBadAlg},
		tc{"RS256 with the EC kid", rs.mintRaw(`{"alg":"RS256","kid":"ec"}`, string(claimsJSON)), ReasonBadAlg},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := v.Verify([]byte(c.token))
			if got := reasonOf(err); got != c.reason {
				t.Fatalf("reason %q (%v), want %q", got, err, c.reason)
			}
			if id != nil {
				t.Fatal("an identity with an error")
			}
		})
	}
}

func newHMAC(secret []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func flipLast(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	sig, _ := b64url.DecodeString(tok[i+1:])
	sig[len(sig)/2] ^= 1
	return tok[:i+1] + b64(sig)
}

func swapPayload(tok, payload string) string {
	p := strings.Split(tok, ".")
	return p[0] + "." + payload + "." + p[2]
}

func TestRolesAndScopes(t *testing.T) {
	now := fixedClock
	s := newSigner(t, "EdDSA", "k")
	cases := []struct {
		name                string
		cfg                 Config
		claims              map[string]any
		wantRoles, wantScop []string
	}{
		{"defaults: roles list, scope string", Config{}, map[string]any{"roles": []string{"admin", "ops"}, "scope": "reports:read  reports:write"},
			[]string{"admin", "ops"}, []string{"reports:read", "reports:write"}},
		{"single role string", Config{}, map[string]any{"roles": "admin"}, []string{"admin"}, nil},
		{"dotted path", Config{RolesClaim: "realm_access.roles"}, map[string]any{"realm_access": map[string]any{"roles": []string{"admin"}}},
			[]string{"admin"}, nil},
		{"dotted path missing", Config{RolesClaim: "realm_access.roles"}, map[string]any{"realm_access": "x"}, nil, nil},
		{"scopes as a list", Config{ScopesClaim: "scp"}, map[string]any{"scp": []any{"a", "b", 3}}, nil, []string{"a", "b"}},
		{"claim name with a dot", Config{RolesClaim: "https://example.com/roles"}, map[string]any{"https://example.com/roles": []string{"admin"}},
			[]string{"admin"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Algorithms = []string{"EdDSA"}
			v := newTestVerifier(t, c.cfg, &now, s.jwk)
			id, err := v.Verify([]byte(s.mint(claimsAt(now, c.claims), nil)))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(id.Roles, c.wantRoles) || !slices.Equal(id.Scopes, c.wantScop) {
				t.Fatalf("roles %q scopes %q, want %q %q", id.Roles, id.Scopes, c.wantRoles, c.wantScop)
			}
		})
	}
}

// Claims is exactly the signed JSON, and iss/aud pass in their accepted forms.
func TestClaimsAndAudience(t *testing.T) {
	now := fixedClock
	s := newSigner(t, "ES256", "k")
	v := newTestVerifier(t, Config{Algorithms: []string{"ES256"}, Issuer: "iss", Audience: []string{"a1", "a2"}}, &now, s.jwk)
	raw := `{"sub":"bob","iss":"iss","aud":["x","a2"],"exp":` + itoa64(now.Add(time.Minute).Unix()) + `.5,"extra":{"k":[1,2]}}`
	id, err := v.Verify([]byte(s.mintRaw(`{"alg":"ES256","kid":"k"}`, raw)))
	if err != nil {
		t.Fatal(err)
	}
	if string(id.Claims) != raw || id.Subject != "bob" {
		t.Fatalf("claims %s subject %q", id.Claims, id.Subject)
	}
	if _, err := v.Verify([]byte(s.mintRaw(`{"alg":"ES256","kid":"k"}`, strings.Replace(raw, `"sub":"bob"`, `"sub":7`, 1)))); reasonOf(err) != ReasonMalformed {
		t.Fatalf("numeric sub: %v", err)
	}
}

func itoa64(n int64) string { return strings.TrimSpace(mustJSON(n)) }

// auth_leeway admits an expired token within the leeway, and nothing later.
func TestLeeway(t *testing.T) {
	now := fixedClock
	s := newSigner(t, "HS256", "k")
	v := newTestVerifier(t, Config{Algorithms: []string{"HS256"}, Leeway: 30 * time.Second, CacheSize: -1}, &now, s.jwk)
	tok := []byte(s.mint(claimsAt(now, map[string]any{"exp": now.Add(-20 * time.Second).Unix(), "nbf": now.Add(20 * time.Second).Unix()}), nil))
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	now = now.Add(11 * time.Second)
	if _, err := v.Verify(tok); reasonOf(err) != ReasonExpired {
		t.Fatalf("past exp+leeway: %v", err)
	}
}

func TestCache(t *testing.T) {
	now := fixedClock
	s := newSigner(t, "ES256", "k")
	v := newTestVerifier(t, Config{Algorithms: []string{"ES256"}, CacheSize: 32}, &now, s.jwk)
	tok := []byte(s.mint(claimsAt(now, map[string]any{"exp": now.Add(time.Minute).Unix()}), nil))
	a, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	b, err := v.Verify(tok)
	if err != nil || a != b {
		t.Fatalf("second Verify: %v, same identity %v", err, a == b)
	}
	// Never used at or past exp (+ leeway 0).
	now = now.Add(time.Minute)
	if _, err := v.Verify(tok); reasonOf(err) != ReasonExpired {
		t.Fatalf("cached token past exp: %v", err)
	}
	now = fixedClock
	// Bounded: many tokens, at most CacheSize rounded up to the shards.
	for i := 0; i < 500; i++ {
		if _, err := v.Verify([]byte(s.mint(claimsAt(now, map[string]any{"jti": i}), nil))); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.cache.len(); n > 32+cacheShards || n < 16 {
		t.Fatalf("cache holds %d entries for auth_cache_size 32", n)
	}
	// A failed verification is not cached, and a mangled copy of a cached
	// token is not served from the cache.
	if _, err := v.Verify(append(tok[:len(tok):len(tok)], 'A')); err == nil {
		t.Fatal("a mangled token verified")
	}
	off := newTestVerifier(t, Config{Algorithms: []string{"ES256"}, CacheSize: -1}, &now, s.jwk)
	if off.cache != nil {
		t.Fatal("auth_cache_size -1 still caches")
	}
}

func TestConfigValidate(t *testing.T) {
	file := writeJWKS(t, newSigner(t, "HS256", "k").jwk)
	cases := []struct {
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{Config{}, ""},
		{Config{JWKSFile: file, Algorithms: []string{"HS256"}}, ""},
		{Config{JWKSFile: file}, "auth_algorithms: required"},
		{Config{JWKSFile: file, Algorithms: []string{"HS256", "none"}}, `auth_algorithms: "none" is not allowed`},
		{Config{JWKSFile: file, Algorithms: []string{"NoNe"}}, `auth_algorithms: "NoNe" is not allowed`},
		{Config{Algorithms: []string{"NONE"}}, `auth_algorithms: "NONE" is not allowed`},
		{Config{JWKSFile: file, Algorithms: []string{"hs256"}}, `auth_algorithms: unknown algorithm "hs256"`},
		{Config{JWKSFile: file, JWKSURL: "https://x/jwks", Algorithms: []string{"HS256"}}, "set one, not both"},
		{Config{JWKSURL: "file:///etc/passwd", Algorithms: []string{"HS256"}}, "auth_jwks_url"},
		{Config{JWKSFile: file, Algorithms: []string{"HS256"}, Leeway: 6 * time.Minute}, "auth_leeway 6m0s"},
		{Config{JWKSFile: file, Algorithms: []string{"HS256"}, Leeway: -time.Second}, "auth_leeway"},
		{Config{JWKSFile: file, Algorithms: []string{"HS256"}, RolesClaim: "a..b"}, "auth_roles_claim"},
		{Config{JWKSFile: file, Algorithms: []string{"HS256"}, CacheSize: -2}, "auth_cache_size"},
		{Config{JWKSFile: file, Algorithms: []string{"HS256"}, MaxTokenBytes: 2 << 20}, "auth_max_token_bytes"},
		{Config{JWKSFile: file + ".missing", Algorithms: []string{"HS256"}}, "auth_jwks_file"},
	}
	for _, c := range cases {
		v, err := New(c.cfg, nil, nil)
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.cfg, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
		if (v == nil) != (err != nil || !c.cfg.Enabled()) {
			t.Errorf("%+v: verifier %v with error %v", c.cfg, v, err)
		}
		v.Close()
	}
	d := Config{}.WithDefaults()
	if d.JWKSCooldown != time.Minute || d.JWKSRefresh != time.Hour || d.RolesClaim != "roles" || d.ScopesClaim != "scope" ||
		d.CacheSize != 10000 || d.MaxTokenBytes != 8192 || d.Leeway != 0 {
		t.Fatalf("defaults %+v", d)
	}
}

func TestJWKSFileRefused(t *testing.T) {
	for _, doc := range []string{`{"keys":[]}`, `{"keys":[{"kty":"oct","k":"AA"}],"keys":[]}`, `not json`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"XYZ"}]}`} {
		if set, _, err := parseJWKS([]byte(doc)); err == nil {
			t.Errorf("%s: parsed (%d keys)", doc, len(set.all))
		}
	}
	// Unusable keys are skipped, usable ones kept.
	set, skipped, err := parseJWKS([]byte(`{"keys":[{"kty":"XYZ"},{"kty":"oct","k":"AAAA","kid":"a"},{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	if err != nil || len(set.all) != 1 || len(skipped) != 2 {
		t.Fatalf("set %v skipped %v err %v", set, skipped, err)
	}
}

func TestBearerToken(t *testing.T) {
	cases := []struct {
		in, tok string
		ok      bool
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", true},
		{"bearer abc", "abc", true},
		{"BEARER   a-b_c~d+e/f==", "a-b_c~d+e/f==", true},
		{"Bearer abc ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearerabc", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearer a b", "", false},
		{"Bearer a=b", "", false},
		{"Bearer =abc", "", false},
		{"Bearer ab\x00c", "", false},
		{"Bearer\tabc", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		tok, ok := BearerToken([]byte(c.in))
		if ok != c.ok || string(tok) != c.tok {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", c.in, tok, ok, c.tok, c.ok)
		}
	}
}

func FuzzVerify(f *testing.F) {
	now := fixedClock
	s := newSigner(f, "HS256", "k")
	v := newTestVerifier(f, Config{Algorithms: []string{"HS256"}, CacheSize: -1}, &now, s.jwk)
	f.Add(s.mint(claimsAt(now, nil), nil))
	f.Add(s.mintRaw(`{"alg":"HS256","kid":"k","kid":"k"}`, `{"exp":1}`))
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := v.Verify([]byte(tok))
		if (id == nil) == (err == nil) {
			t.Fatalf("identity %v and error %v", id, err)
		}
		if err != nil && reasonOf(err) == "" {
			t.Fatalf("error without a reason: %v", err)
		}
	})
}

// A cache hit is a byte-for-byte match: another token under the same key (a
// hash collision) is a miss, never the other token's identity.
func TestTokenCacheMatchesTheToken(t *testing.T) {
	c := newTokenCache(16)
	id := &Identity{Subject: "alice"}
	c.put(7, []byte("token-a"), id, 1, 100)
	if got := c.get(7, []byte("token-a"), 1, 50); got != id {
		t.Fatalf("hit: %v", got)
	}
	if got := c.get(7, []byte("token-b"), 1, 50); got != nil {
		t.Fatalf("a colliding token got %v", got)
	}
	if got := c.get(7, []byte("token-a"), 2, 50); got != nil {
		t.Fatal("an entry of an older key set was used")
	}
	c.put(7, []byte("token-a"), id, 1, 100)
	if got := c.get(7, []byte("token-a"), 1, 100); got != nil {
		t.Fatal("an entry was used at its until")
	}
}
