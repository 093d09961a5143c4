package auth

// Reasons a token is refused: fixed words, used as the metric label and in
// the audit log; never anything taken from the token.
const (
	ReasonMalformed     = "malformed"      // not three base64url parts, bad JSON, a claim of the wrong type
	ReasonTooLarge      = "too_large"      // longer than auth_max_token_bytes; not parsed
	ReasonBadAlg        = "bad_alg"        // alg none, not in auth_algorithms, or not the key's algorithm
	ReasonUnknownKid    = "unknown_kid"    // no key with the token's kid, even after a JWKS refresh
	ReasonNoKeys        = "no_keys"        // no key set loaded yet (auth_jwks_url not reached)
	ReasonBadSignature  = "bad_signature"  // the signature does not verify
	ReasonExpired       = "expired"        // exp is past (with auth_leeway)
	ReasonMissingExp    = "missing_exp"    // no exp claim: every token must expire
	ReasonNotYetValid   = "not_yet_valid"  // nbf or iat in the future (with auth_leeway)
	ReasonBadIssuer     = "bad_issuer"     // iss is not auth_issuer
	ReasonBadAudience   = "bad_audience"   // aud holds none of auth_audience
	ReasonCrit          = "crit"           // a crit header names an extension this verifier does not implement
	ReasonB64           = "b64"            // b64: false (RFC 7797 unencoded payload) is not accepted
	ReasonDuplicateKeys = "duplicate_keys" // a member name twice in the header or the claims
)

// Error is why Verify refused a token: Reason is one of the Reason words
// above, Detail a short human explanation (which may quote the header's alg
// or kid, never the token).
type Error struct {
	Reason string
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "auth: " + e.Reason
	}
	return "auth: " + e.Reason + ": " + e.Detail
}

func fail(reason, detail string) *Error { return &Error{Reason: reason, Detail: detail} }
