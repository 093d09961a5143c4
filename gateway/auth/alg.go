package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	_ "crypto/sha256" // SHA-256 for HS256, RS256, PS256, ES256
	_ "crypto/sha512" // SHA-384 and SHA-512
	"crypto/subtle"
	"math/big"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// minRSABits is the smallest RSA modulus a key may have (RFC 7518 3.3: 2048 or
// larger MUST be used).
const minRSABits = 2048

// algorithm is one JWS "alg" this package verifies: which keys it may use and
// how it checks a signature. The table below is the whole list; a token whose
// alg is not in it, or not in auth_algorithms, is refused with reason bad_alg.
type algorithm struct {
	name string
	// fits reports whether k may verify this algorithm: kty, crv, the key's own
	// alg (when it names one this package knows) and its size.
	fits func(k *key) bool
	// verify checks sig over the JWS signing input with a key that fits.
	verify func(k *key, input, sig []byte) bool
}

var algorithms = map[string]*algorithm{}

func register(a *algorithm) { algorithms[a.name] = a }

func init() {
	for _, h := range []struct {
		bits int
		hash crypto.Hash
	}{{256, crypto.SHA256}, {384, crypto.SHA384}, {512, crypto.SHA512}} {
		h := h
		suffix := itoa(h.bits)
		register(&algorithm{
			name: "HS" + suffix,
			// RFC 7518 3.2: a key of the same size as the hash output or larger.
			fits: func(k *key) bool { return k.kty == "oct" && len(k.secret) >= h.hash.Size() },
			verify: func(k *key, input, sig []byte) bool {
				m := hmac.New(h.hash.New, k.secret)
				m.Write(input)
				var buf [64]byte
				return subtle.ConstantTimeCompare(m.Sum(buf[:0]), sig) == 1
			},
		})
		register(&algorithm{
			name: "RS" + suffix,
			fits: func(k *key) bool { return k.kty == "RSA" && k.rsa.N.BitLen() >= minRSABits },
			verify: func(k *key, input, sig []byte) bool {
				return rsa.VerifyPKCS1v15(k.rsa, h.hash, digest(h.hash, input), sig) == nil
			},
		})
		register(&algorithm{
			name: "PS" + suffix,
			fits: func(k *key) bool { return k.kty == "RSA" && k.rsa.N.BitLen() >= minRSABits },
			verify: func(k *key, input, sig []byte) bool {
				// RFC 7518 3.5: the salt is as long as the hash output.
				opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h.hash}
				return rsa.VerifyPSS(k.rsa, h.hash, digest(h.hash, input), sig, opts) == nil
			},
		})
	}
	for _, e := range []struct {
		name  string
		crv   string
		curve elliptic.Curve
		hash  crypto.Hash
	}{{"ES256", "P-256", elliptic.P256(), crypto.SHA256}, {"ES384", "P-384", elliptic.P384(), crypto.SHA384}, {"ES512", "P-521", elliptic.P521(), crypto.SHA512}} {
		e := e
		size := (e.curve.Params().BitSize + 7) / 8
		register(&algorithm{
			name: e.name,
			fits: func(k *key) bool { return k.kty == "EC" && k.crv == e.crv },
			verify: func(k *key, input, sig []byte) bool {
				// RFC 7518 3.4: R and S as fixed-size big-endian integers, nothing else.
				if len(sig) != 2*size {
					return false
				}
				r := new(big.Int).SetBytes(sig[:size])
				s := new(big.Int).SetBytes(sig[size:])
				return ecdsa.Verify(k.ec, digest(e.hash, input), r, s)
			},
		})
	}
	verifyEd25519 := func(k *key, input, sig []byte) bool {
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed25519, input, sig)
	}
	verifyEd448 := func(k *key, input, sig []byte) bool {
		return len(sig) == ed448.SignatureSize && ed448.Verify(k.ed448, input, sig, "")
	}
	// RFC 8037: alg EdDSA, the curve named by the key's crv.
	register(&algorithm{
		name: "EdDSA",
		fits: func(k *key) bool { return k.kty == "OKP" && (k.crv == "Ed25519" || k.crv == "Ed448") },
		verify: func(k *key, input, sig []byte) bool {
			if k.crv == "Ed25519" {
				return verifyEd25519(k, input, sig)
			}
			return verifyEd448(k, input, sig)
		},
	})
	// RFC 9864: fully specified algorithms.
	register(&algorithm{name: "Ed25519", fits: func(k *key) bool { return k.kty == "OKP" && k.crv == "Ed25519" }, verify: verifyEd25519})
	register(&algorithm{name: "Ed448", fits: func(k *key) bool { return k.kty == "OKP" && k.crv == "Ed448" }, verify: verifyEd448})
	// draft-ietf-cose-dilithium: key type AKP whose alg names the parameter set;
	// JOSE signs with the empty context.
	for _, name := range []string{"ML-DSA-44", "ML-DSA-65", "ML-DSA-87"} {
		register(&algorithm{name: name, fits: akpFits(name), verify: func(k *key, input, sig []byte) bool {
			return k.verifyMLDSA(input, nil, sig)
		}})
	}
}

func akpFits(alg string) func(k *key) bool {
	return func(k *key) bool { return k.kty == "AKP" && k.alg == alg }
}

func digest(h crypto.Hash, input []byte) []byte {
	d := h.New()
	d.Write(input)
	return d.Sum(nil)
}

func itoa(n int) string {
	switch n {
	case 256:
		return "256"
	case 384:
		return "384"
	}
	return "512"
}

// keyFits reports whether k may verify a token of algorithm a: the algorithm's
// own rule, the key's "use" (sig when present), its "key_ops" (verify when
// present) and its "alg" when that names an algorithm this package knows.
func keyFits(a *algorithm, k *key) bool {
	if k.use != "" && k.use != "sig" {
		return false
	}
	if k.keyOps != nil && !k.canVerify {
		return false
	}
	if k.alg != "" && k.alg != a.name {
		if _, known := algorithms[k.alg]; known {
			return false
		}
	}
	return a.fits(k)
}

// verifyMLDSA verifies an ML-DSA signature (FIPS 204, pure, with context
// ctx) with the AKP key's parameter set.
func (k *key) verifyMLDSA(msg, ctx, sig []byte) bool {
	switch {
	case k.mldsa44 != nil:
		return mldsa44.Verify(k.mldsa44, msg, ctx, sig)
	case k.mldsa65 != nil:
		return mldsa65.Verify(k.mldsa65, msg, ctx, sig)
	case k.mldsa87 != nil:
		return mldsa87.Verify(k.mldsa87, msg, ctx, sig)
	}
	return false
}
