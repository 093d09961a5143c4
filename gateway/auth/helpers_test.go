package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signer is a private key of one algorithm with its public JWK.
type signer struct {
	alg  string
	jwk  map[string]any // public JWK, kid included
	sign func(input []byte) []byte
}

func hashOf(alg string) crypto.Hash {
	switch alg[len(alg)-3:] {
	case "384":
		return crypto.SHA384
	case "512":
		return crypto.SHA512
	}
	return crypto.SHA256
}

// newSigner makes a fresh key for alg (ES* and RS* keys are cached per test
// binary: generating RSA keys is slow).
func newSigner(t testing.TB, alg, kid string) *signer {
	t.Helper()
	s := &signer{alg: alg, jwk: map[string]any{"kid": kid}}
	switch alg {
	case "HS256", "HS384", "HS512":
		k := make([]byte, hashOf(alg).Size())
		rand.Read(k)
		s.jwk["kty"], s.jwk["k"] = "oct", b64(k)
		s.sign = func(in []byte) []byte { m := hmac.New(hashOf(alg).New, k); m.Write(in); return m.Sum(nil) }
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		k := rsaKey(t)
		s.jwk["kty"], s.jwk["n"], s.jwk["e"] = "RSA", b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
		h := hashOf(alg)
		s.sign = func(in []byte) []byte {
			d := digest(h, in)
			var sig []byte
			var err error
			if alg[0] == 'R' {
				sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, d)
			} else {
				sig, err = rsa.SignPSS(rand.Reader, k, h, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			}
			if err != nil {
				panic(err)
			}
			return sig
		}
	case "ES256", "ES384", "ES512":
		curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		k, _ := ecdsa.GenerateKey(curve, rand.Reader)
		size := (curve.Params().BitSize + 7) / 8
		pub, _ := k.PublicKey.Bytes() // 0x04 || X || Y
		s.jwk["kty"], s.jwk["crv"] = "EC", curve.Params().Name
		s.jwk["x"], s.jwk["y"] = b64(pub[1:1+size]), b64(pub[1+size:])
		s.sign = func(in []byte) []byte {
			r, ss, err := ecdsa.Sign(rand.Reader, k, digest(hashOf(alg), in))
			if err != nil {
				panic(err)
			}
			out := make([]byte, 2*size)
			r.FillBytes(out[:size])
			ss.FillBytes(out[size:])
			return out
		}
	case "EdDSA", "Ed25519":
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		s.jwk["kty"], s.jwk["crv"], s.jwk["x"] = "OKP", "Ed25519", b64(pub)
		s.sign = func(in []byte) []byte { return ed25519.Sign(priv, in) }
	case "EdDSA-448", "Ed448":
		pub, priv, _ := ed448.GenerateKey(rand.Reader)
		s.jwk["kty"], s.jwk["crv"], s.jwk["x"] = "OKP", "Ed448", b64(pub)
		s.sign = func(in []byte) []byte { return ed448.Sign(priv, in, "") }
		if alg == "EdDSA-448" {
			s.alg = "EdDSA"
		}
	case "ML-DSA-44":
		pub, priv, _ := mldsa44.GenerateKey(rand.Reader)
		s.jwk["kty"], s.jwk["alg"], s.jwk["pub"] = "AKP", alg, b64(pub.Bytes())
		s.sign = func(in []byte) []byte {
			sig := make([]byte, mldsa44.SignatureSize)
			if err := mldsa44.SignTo(priv, in, nil, true, sig); err != nil {
				panic(err)
			}
			return sig
		}
	case "ML-DSA-65":
		pub, priv, _ := mldsa65.GenerateKey(rand.Reader)
		s.jwk["kty"], s.jwk["alg"], s.jwk["pub"] = "AKP", alg, b64(pub.Bytes())
		s.sign = func(in []byte) []byte {
			sig := make([]byte, mldsa65.SignatureSize)
			if err := mldsa65.SignTo(priv, in, nil, true, sig); err != nil {
				panic(err)
			}
			return sig
		}
	case "ML-DSA-87":
		pub, priv, _ := mldsa87.GenerateKey(rand.Reader)
		s.jwk["kty"], s.jwk["alg"], s.jwk["pub"] = "AKP", alg, b64(pub.Bytes())
		s.sign = func(in []byte) []byte {
			sig := make([]byte, mldsa87.SignatureSize)
			if err := mldsa87.SignTo(priv, in, nil, true, sig); err != nil {
				panic(err)
			}
			return sig
		}
	default:
		t.Fatalf("newSigner: no algorithm %q", alg)
	}
	return s
}

var testRSA *rsa.PrivateKey

func rsaKey(t testing.TB) *rsa.PrivateKey {
	if testRSA == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		testRSA = k
	}
	return testRSA
}

// mintRaw signs a token from a raw header and raw claims JSON.
func (s *signer) mintRaw(header, claims string) string {
	in := b64([]byte(header)) + "." + b64([]byte(claims))
	return in + "." + b64(s.sign([]byte(in)))
}

// mint signs claims with a header {alg, kid} plus extra header members.
func (s *signer) mint(claims map[string]any, extra map[string]any) string {
	h := map[string]any{"alg": s.alg, "kid": s.jwk["kid"]}
	for k, v := range extra {
		h[k] = v
	}
	hj, _ := json.Marshal(h)
	cj, _ := json.Marshal(claims)
	return s.mintRaw(string(hj), string(cj))
}

func jwks(keys ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

func writeJWKS(t testing.TB, keys ...map[string]any) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, jwks(keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fixedClock is the time every test verifier sees.
var fixedClock = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// newTestVerifier builds a Verifier over a JWKS file of the given signers'
// keys, with its clock set to *now.
func newTestVerifier(t testing.TB, cfg Config, now *time.Time, keys ...map[string]any) *Verifier {
	t.Helper()
	cfg.JWKSFile = writeJWKS(t, keys...)
	v, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	v.now = func() time.Time { return *now }
	return v
}

func claimsAt(now time.Time, extra map[string]any) map[string]any {
	c := map[string]any{"sub": "alice", "exp": now.Add(time.Hour).Unix(), "iat": now.Add(-time.Minute).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
