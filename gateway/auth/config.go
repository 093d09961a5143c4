package auth

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is the gateway's bearer-token configuration. The zero value turns
// authentication off; setting auth_jwks_file or auth_jwks_url turns it on and
// then auth_algorithms is required.
type Config struct {
	JWKSFile      string        `config:"auth_jwks_file" help:"JWK Set (JSON) file of the keys that verify bearer tokens; exclusive with auth_jwks_url"`
	JWKSURL       string        `config:"auth_jwks_url" help:"http(s) URL of the JWK Set that verifies bearer tokens, cached; exclusive with auth_jwks_file"`
	JWKSCooldown  time.Duration `config:"auth_jwks_cooldown" help:"least time between two JWKS refreshes caused by tokens with an unknown kid; default 1m"`
	JWKSRefresh   time.Duration `config:"auth_jwks_refresh" help:"period of the JWKS refresh (the file is re-read, the URL fetched); default 1h"`
	Issuer        string        `config:"auth_issuer" help:"the iss every token must carry; empty = iss not checked"`
	Audience      []string      `config:"auth_audience" help:"a token's aud must contain one of these; empty = aud not checked"`
	Algorithms    []string      `config:"auth_algorithms" help:"JWS algorithms accepted (required with a key source), e.g. ES256,EdDSA; none is never accepted"`
	Leeway        time.Duration `config:"auth_leeway" help:"clock skew allowed for exp, nbf and iat; default 0, at most 5m"`
	RolesClaim    string        `config:"auth_roles_claim" help:"dotted path of the claim holding the roles (a string or a list); default roles"`
	ScopesClaim   string        `config:"auth_scopes_claim" help:"dotted path of the claim holding the scopes (space-separated string or list); default scope"`
	CacheSize     int           `config:"auth_cache_size" help:"verified tokens kept (each up to auth_max_token_bytes) to skip re-verifying; default 10000, -1 = no cache"`
	MaxTokenBytes int           `config:"auth_max_token_bytes" help:"longest bearer token accepted, in bytes; longer ones are refused unparsed; default 8192"`
}

// Defaults of the settings whose zero value means "the default".
const (
	DefaultJWKSCooldown  = time.Minute
	DefaultJWKSRefresh   = time.Hour
	DefaultRolesClaim    = "roles"
	DefaultScopesClaim   = "scope"
	DefaultCacheSize     = 10000
	DefaultMaxTokenBytes = 8192
	// MaxLeeway is the largest auth_leeway New accepts.
	MaxLeeway = 5 * time.Minute
)

// Enabled reports whether a key source is set, that is whether the gateway
// verifies bearer tokens at all.
func (c Config) Enabled() bool { return c.JWKSFile != "" || c.JWKSURL != "" }

// WithDefaults returns c with every zero setting replaced by its default.
func (c Config) WithDefaults() Config {
	if c.JWKSCooldown == 0 {
		c.JWKSCooldown = DefaultJWKSCooldown
	}
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = DefaultJWKSRefresh
	}
	if c.RolesClaim == "" {
		c.RolesClaim = DefaultRolesClaim
	}
	if c.ScopesClaim == "" {
		c.ScopesClaim = DefaultScopesClaim
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	return c
}

// Validate checks c (after WithDefaults) and returns an error naming the key
// at fault. New calls it.
func (c Config) Validate() error {
	if c.JWKSFile != "" && c.JWKSURL != "" {
		return fmt.Errorf("auth_jwks_file and auth_jwks_url: set one, not both")
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("auth_jwks_url %q: must be an http or https URL", c.JWKSURL)
		}
	}
	for _, a := range c.Algorithms {
		if strings.EqualFold(a, "none") {
			return fmt.Errorf("auth_algorithms: %q is not allowed", a)
		}
		if _, ok := algorithms[a]; !ok {
			return fmt.Errorf("auth_algorithms: unknown algorithm %q (known: %s)", a, strings.Join(KnownAlgorithms(), ", "))
		}
	}
	if c.Enabled() && len(c.Algorithms) == 0 {
		return fmt.Errorf("auth_algorithms: required when auth_jwks_file or auth_jwks_url is set (e.g. ES256,EdDSA)")
	}
	if c.JWKSCooldown < 0 {
		return fmt.Errorf("auth_jwks_cooldown %v: must not be negative", c.JWKSCooldown)
	}
	if c.JWKSRefresh < 0 {
		return fmt.Errorf("auth_jwks_refresh %v: must not be negative", c.JWKSRefresh)
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		return fmt.Errorf("auth_leeway %v: must be between 0 and %v", c.Leeway, MaxLeeway)
	}
	for _, p := range []struct{ key, path string }{{"auth_roles_claim", c.RolesClaim}, {"auth_scopes_claim", c.ScopesClaim}} {
		for _, part := range strings.Split(p.path, ".") {
			if part == "" {
				return fmt.Errorf("%s %q: empty segment in the dotted path", p.key, p.path)
			}
		}
	}
	if c.CacheSize < -1 {
		return fmt.Errorf("auth_cache_size %d: must be positive, or -1 for no cache", c.CacheSize)
	}
	if c.MaxTokenBytes < 0 || c.MaxTokenBytes > 1<<20 {
		return fmt.Errorf("auth_max_token_bytes %d: must be between 1 and 1048576", c.MaxTokenBytes)
	}
	return nil
}

// KnownAlgorithms lists the algorithms auth_algorithms may name, sorted.
func KnownAlgorithms() []string {
	return []string{"ES256", "ES384", "ES512", "Ed25519", "Ed448", "EdDSA", "HS256", "HS384", "HS512",
		"ML-DSA-44", "ML-DSA-65", "ML-DSA-87", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512"}
}
