package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// key is one public (or, for kty oct, shared) verification key of the JWKS.
// Immutable once parsed; key sets are replaced whole, never edited.
type key struct {
	kid, kty, crv, alg, use string
	keyOps                  []string
	canVerify               bool // keyOps contains "verify"

	secret  []byte // oct
	rsa     *rsa.PublicKey
	ec      *ecdsa.PublicKey
	ed25519 ed25519.PublicKey
	ed448   ed448.PublicKey
	mldsa44 *mldsa44.PublicKey
	mldsa65 *mldsa65.PublicKey
	mldsa87 *mldsa87.PublicKey
}

// keySet is a parsed JWKS: its keys by kid, and all of them in order.
type keySet struct {
	byKid map[string][]*key
	all   []*key
	gen   uint64 // bumped on every replacement; cached identities carry it
}

// jwkMembers are the members of a JWK this package reads itself; the key
// material of kty oct, RSA, EC and OKP Ed25519 is parsed by jwx.
type jwkMembers struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Alg    string   `json:"alg"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Pub    string   `json:"pub"`
}

// parseJWKS parses a JWK Set (RFC 7517 5). Keys this package cannot use (an
// unknown kty, bad material) are skipped and reported in skipped; a set with
// no usable key, duplicate JSON members or malformed JSON is an error.
func parseJWKS(data []byte) (set *keySet, skipped []error, err error) {
	if err := checkDuplicates(data); err != nil {
		return nil, nil, fmt.Errorf("JWKS: %w", err)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("JWKS: %w", err)
	}
	set = &keySet{byKid: map[string][]*key{}}
	for i, raw := range doc.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("JWKS key %d: %w", i, err))
			continue
		}
		set.all = append(set.all, k)
		set.byKid[k.kid] = append(set.byKid[k.kid], k)
	}
	if len(set.all) == 0 {
		return nil, skipped, errors.New("JWKS: no usable key")
	}
	return set, skipped, nil
}

// parseJWK parses one JWK. Private members (d, p, q, ...) are ignored: only the
// public key is kept, so a key set holding private keys still verifies.
func parseJWK(raw []byte) (*key, error) {
	var m jwkMembers
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	k := &key{kid: m.Kid, kty: m.Kty, crv: m.Crv, alg: m.Alg, use: m.Use, keyOps: m.KeyOps}
	for _, op := range m.KeyOps {
		if op == "verify" {
			k.canVerify = true
		}
	}
	switch m.Kty {
	case "oct", "RSA", "EC":
		pub, err := materialViaJWX(raw, m.Kty)
		if err != nil {
			return nil, err
		}
		switch p := pub.(type) {
		case []byte:
			if len(p) == 0 {
				return nil, errors.New("kty oct: empty k")
			}
			k.secret = p
		case *rsa.PublicKey:
			k.rsa = p
		case *ecdsa.PublicKey:
			if _, err := p.ECDH(); err != nil { // the point is on the curve
				return nil, fmt.Errorf("kty EC: %w", err)
			}
			k.ec = p
			k.crv = p.Curve.Params().Name
		default:
			return nil, fmt.Errorf("kty %s: unexpected key %T", m.Kty, pub)
		}
	case "OKP":
		switch m.Crv {
		case "Ed25519":
			pub, err := materialViaJWX(raw, m.Kty)
			if err != nil {
				return nil, err
			}
			p, ok := pub.(ed25519.PublicKey)
			if !ok {
				return nil, fmt.Errorf("kty OKP: unexpected key %T", pub)
			}
			k.ed25519 = p
		case "Ed448":
			x, err := base64.RawURLEncoding.Strict().DecodeString(m.X)
			if err != nil || len(x) != ed448.PublicKeySize {
				return nil, fmt.Errorf("kty OKP crv Ed448: x must be %d bytes of base64url", ed448.PublicKeySize)
			}
			k.ed448 = ed448.PublicKey(x)
		default:
			return nil, fmt.Errorf("kty OKP: crv %q is not Ed25519 or Ed448", m.Crv)
		}
	case "AKP":
		pub, err := base64.RawURLEncoding.Strict().DecodeString(m.Pub)
		if err != nil {
			return nil, fmt.Errorf("kty AKP: pub: %w", err)
		}
		switch m.Alg {
		case "ML-DSA-44":
			k.mldsa44 = new(mldsa44.PublicKey)
			err = k.mldsa44.UnmarshalBinary(pub)
		case "ML-DSA-65":
			k.mldsa65 = new(mldsa65.PublicKey)
			err = k.mldsa65.UnmarshalBinary(pub)
		case "ML-DSA-87":
			k.mldsa87 = new(mldsa87.PublicKey)
			err = k.mldsa87.UnmarshalBinary(pub)
		default:
			return nil, fmt.Errorf("kty AKP: alg %q is not ML-DSA-44, ML-DSA-65 or ML-DSA-87", m.Alg)
		}
		if err != nil {
			return nil, fmt.Errorf("kty AKP %s: pub: %w", m.Alg, err)
		}
	default:
		return nil, fmt.Errorf("kty %q is not supported", m.Kty)
	}
	return k, nil
}

// materialMembers are the members jwx sees: the key type and its public
// material. The rest (alg, use, key_ops, kid, private members) is read here,
// so an unregistered alg value ("ES521" in a published key set) does not
// stop the key from parsing, and a private key yields its public half.
var materialMembers = map[string][]string{
	"oct": {"k"},
	"RSA": {"n", "e"},
	"EC":  {"crv", "x", "y"},
	"OKP": {"crv", "x"},
}

func materialViaJWX(raw []byte, kty string) (any, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, err
	}
	only := map[string]json.RawMessage{"kty": all["kty"]}
	for _, name := range materialMembers[kty] {
		v, ok := all[name]
		if !ok {
			return nil, fmt.Errorf("kty %s: member %q missing", kty, name)
		}
		only[name] = v
	}
	buf, err := json.Marshal(only)
	if err != nil {
		return nil, err
	}
	parsed, err := jwk.ParseKey(buf)
	if err != nil {
		return nil, fmt.Errorf("kty %s: %w", kty, err)
	}
	var pub any
	if err := jwk.Export(parsed, &pub); err != nil {
		return nil, fmt.Errorf("kty %s: %w", kty, err)
	}
	return pub, nil
}
