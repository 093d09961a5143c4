package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// b64url decodes base64url without padding, refusing padding, characters
// outside the alphabet, white space and non-zero trailing bits (RFC 7515 2,
// Appendix C), so one signature has exactly one spelling.
var b64url = base64.RawURLEncoding.Strict()

// header is what the verifier reads of a JOSE header. jku, x5u, jwk and x5c
// are never read: keys come only from the configured JWKS.
type header struct {
	alg    string
	kid    string
	hasKid bool
}

// compact is a JWS in compact serialization, split and decoded.
type compact struct {
	header  header
	payload []byte
	sig     []byte
	input   []byte // the signing input: ASCII(header64 '.' payload64), borrowed from the token
}

// parseCompact splits and decodes a JWS compact serialization and checks its
// header: alg among allowed (never none), no crit, no b64: false, no
// duplicate member names. It does not verify the signature.
func parseCompact(token []byte, allowed map[string]*algorithm) (*compact, *Error) {
	first := bytes.IndexByte(token, '.')
	if first < 0 {
		return nil, fail(ReasonMalformed, "not a JWS compact serialization (no '.')")
	}
	rest := token[first+1:]
	second := bytes.IndexByte(rest, '.')
	if second < 0 || bytes.IndexByte(rest[second+1:], '.') >= 0 {
		return nil, fail(ReasonMalformed, "a JWS compact serialization has exactly three parts")
	}
	h64, p64, s64 := token[:first], rest[:second], rest[second+1:]
	if len(h64) == 0 {
		return nil, fail(ReasonMalformed, "empty header")
	}
	c := &compact{input: token[:first+1+second]}
	hdr, err := decode64(h64)
	if err != nil {
		return nil, fail(ReasonMalformed, "header: "+err.Error())
	}
	if err := checkHeader(hdr, &c.header, allowed); err != nil {
		return nil, err
	}
	if c.payload, err = decode64(p64); err != nil {
		return nil, fail(ReasonMalformed, "payload: "+err.Error())
	}
	if c.sig, err = decode64(s64); err != nil {
		return nil, fail(ReasonMalformed, "signature: "+err.Error())
	}
	if len(c.sig) == 0 {
		return nil, fail(ReasonBadSignature, "empty signature")
	}
	return c, nil
}

func decode64(s []byte) ([]byte, error) {
	out := make([]byte, b64url.DecodedLen(len(s)))
	n, err := b64url.Decode(out, s)
	if err != nil {
		return nil, errors.New("bad base64url")
	}
	return out[:n], nil
}

func checkHeader(raw []byte, h *header, allowed map[string]*algorithm) *Error {
	if err := checkDuplicates(raw); err != nil {
		if errors.Is(err, errDuplicate) {
			return fail(ReasonDuplicateKeys, "header: "+err.Error())
		}
		return fail(ReasonMalformed, "header: bad JSON")
	}
	// A map, not a struct: encoding/json matches struct fields without regard
	// to case, and "ALG" must not pass for "alg".
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return fail(ReasonMalformed, "header: not a JSON object")
	}
	algRaw, ok := m["alg"]
	if !ok {
		return fail(ReasonMalformed, "header: no alg")
	}
	if err := json.Unmarshal(algRaw, &h.alg); err != nil {
		return fail(ReasonMalformed, "header: alg is not a string")
	}
	if strings.EqualFold(h.alg, "none") {
		return fail(ReasonBadAlg, "alg none is never accepted")
	}
	if _, ok := allowed[h.alg]; !ok {
		return fail(ReasonBadAlg, fmt.Sprintf("alg %q is not in auth_algorithms", clip(h.alg)))
	}
	if kid, ok := m["kid"]; ok {
		if err := json.Unmarshal(kid, &h.kid); err != nil {
			return fail(ReasonMalformed, "header: kid is not a string")
		}
		h.hasKid = true
	}
	if b, ok := m["b64"]; ok {
		var b64 bool
		if err := json.Unmarshal(b, &b64); err != nil {
			return fail(ReasonMalformed, "header: b64 is not a boolean")
		}
		if !b64 {
			return fail(ReasonB64, "b64: false (unencoded payload) is not accepted")
		}
	}
	if _, ok := m["crit"]; ok {
		// RFC 7515 4.1.11: a recipient that does not understand a listed
		// extension must reject the JWS; this verifier implements none.
		return fail(ReasonCrit, "crit names extensions this gateway does not implement")
	}
	return nil
}

// clip shortens a header value quoted in an error's Detail.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
