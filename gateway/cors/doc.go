// Package cors is the gateway's Cross-Origin Resource Sharing policy: which
// origins may read a route's responses from a browser, and the answer to a
// preflight, which the gateway gives itself so that it never reaches a worker.
// It follows the CORS protocol of the Fetch standard (fetch.spec.whatwg.org,
// 3.2). It touches no socket: the caller (gateway/guard) hands it the request's
// header list and the response's, and writes what it returns.
//
// A Policy is compiled once, from the gateway's settings (New, the cors_* keys
// of Config) or from a route's "cors" option (ForRoute, PROTOCOL.md 1.3), and is
// immutable and safe for concurrent use afterwards.
//
// Origins. An entry of allow_origins is one of:
//
//   - "*": any origin (answered "access-control-allow-origin: *" on every
//     response, no Vary needed). It must be the only entry, and it is refused
//     with allow_credentials, which the Fetch standard forbids with "*".
//   - an exact origin, "https://app.example.com" or "http://127.0.0.1:8080":
//     scheme, "://", host, optional port; no path, not even "/". It is
//     compared without regard to case and answered as configured (lower case).
//   - a wildcard subdomain, "https://*.example.com" (optionally with a port):
//     the same scheme and port (none when the pattern has none) and a host that
//     is one or more DNS labels followed by ".example.com". It never matches
//     the bare "https://example.com", "https://evil-example.com" or
//     "https://example.com.evil.net".
//   - "null": the literal origin a sandboxed document or a file: page sends.
//     Allowing it admits every such document; it is matched by nothing else.
//
// Methods (allow_methods, default GET, HEAD, POST) are compared without regard
// to case and answered in upper case; "*" allows any method (answered "*", or
// the requested method when credentials are allowed, since browsers take "*"
// literally then). A preflight's method must be listed; an actual request's is
// not checked (a simple GET, HEAD or POST is never preflighted, so a policy
// cannot stop a browser from sending one, only from reading the answer).
//
// Headers (allow_headers) are compared without regard to case; a preflight
// may ask for several, in one or several comma-separated
// Access-Control-Request-Headers fields, and all must be allowed. "*" allows
// any header but authorization, which must be listed by name (as the Fetch
// standard has it); it is answered "*" (with the names listed beside it), or,
// with credentials, with the requested names echoed, since browsers take "*"
// literally then. Note that "content-type: application/json" is not a simple
// header: a JSON API lists content-type.
//
// expose_headers lists the response headers a script may read beyond the
// safelisted ones; "*" (any) is refused with credentials, where browsers take
// it literally. max_age (whole seconds, 0 = no Access-Control-Max-Age field)
// lets the browser cache a preflight's answer.
//
// Vary. A preflight's answer always carries "vary: origin,
// access-control-request-method, access-control-request-headers". Any other
// response of a route whose policy is not "*" carries "vary: origin" (unless
// the response already varies on it or on "*"), with or without an Origin in
// the request, so that a cache never serves one origin's answer to another.
//
// A response that already carries access-control-allow-origin (the worker
// answered CORS itself) keeps the worker's fields: Actual adds only Vary.
//
// Allocation. The fields returned share read-only byte slices owned by the
// Policy or the package: callers serialize them and never write into them.
// Actual allocates nothing when the request has no Origin, when the origin is
// refused, or when it matches "*" or an exact entry (the configured bytes are
// answered); a wildcard match copies the request's origin (one allocation),
// so no answer ever borrows the request's buffers.
package cors
