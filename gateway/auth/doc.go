// Package auth verifies JWT bearer tokens for the gateway, before a request
// costs a worker anything.
//
// Keys come from a JWK Set: a file (auth_jwks_file) or an http(s) URL
// (auth_jwks_url), re-read every auth_jwks_refresh and, when a token names a
// kid the set lacks, at most once per auth_jwks_cooldown (one fetch at a
// time; concurrent callers wait for it). A failed refresh keeps the keys
// already held (stale-while-error). Keys are only ever chosen by kid from
// that set: the jku, x5u, jwk and x5c header parameters are ignored, and a
// kid is never used as a path or a URL.
//
// Verification is a small JWS compact-serialization verifier over crypto/*
// and github.com/cloudflare/circl; the key material of kty oct, RSA, EC and
// OKP Ed25519 is parsed by github.com/lestrrat-go/jwx/v3/jwk, that of OKP
// Ed448 and AKP (ML-DSA) here. Algorithms: HS256/384/512, RS256/384/512,
// PS256/384/512, ES256/384/512, EdDSA (Ed25519 or Ed448 after the key's crv),
// Ed25519 and Ed448 (RFC 9864) and ML-DSA-44/65/87 (draft-ietf-cose-dilithium,
// key type AKP). A token's alg must be in auth_algorithms (which must be set,
// and may not name none) and fit the key: its kty and crv, its alg when the
// key names a known one, its use (sig) and key_ops (verify). HMAC keys must be
// at least as long as the hash, RSA moduli at least 2048 bits.
//
// A token is refused (an *Error with a fixed Reason word) when it is longer
// than auth_max_token_bytes (not parsed), not three strict base64url parts,
// has a header or claims set with a member name twice, a crit header, b64:
// false, no exp, an exp in the past or an nbf or iat in the future (each with
// auth_leeway), an iss other than auth_issuer, or an aud with none of
// auth_audience.
//
// Verified tokens are cached (auth_cache_size entries) under a seeded fast
// hash of the token, each entry holding the token so that only the same bytes
// hit, until its exp plus auth_leeway, and only while the key set that
// verified it is the current one.
package auth
