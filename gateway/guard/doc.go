// Package guard is the gateway's middleware chain: what the gateway decides
// about a request after routing and before a worker sees it, so that a request
// refused here costs no Python worker anything.
//
// A Chain wraps the dispatcher as the front ends' Backend. At registration,
// CompileRoute (dispatch.Config.CompileRoute) turns a route's security options
// (PROTOCOL.md 1.3) into its Policy, once, refusing a manifest whose values are
// bad. Per request, Serve runs, in order:
//
//  1. the client address: behind trusted_proxies, X-Forwarded-For or Forwarded
//     (gateway/clientip) replaces the socket peer in REQ_HEAD's client;
//  2. the per-IP request rate (ip_request_rate): 429;
//  3. CORS preflight (gateway/cors): answered 204 here, never forwarded;
//  4. bearer authentication and the route's roles and scopes (gateway/auth):
//     401 or 403, every decision in the audit log (gateway/audit);
//  5. the route's rate limit (gateway/ratelimit): 429, or 503 when the shared
//     store is down and rate_limit_redis_failure is closed;
//  6. the response: CORS fields, security headers (gateway/secheaders), the
//     RateLimit fields and compression (gateway/compress) are added by wrapping
//     the front end's ResponseWriter, only when there is something to add.
//
// A path_policy covering the request's path (Config.PathPolicies, the
// longest prefix first) replaces the route's policy for steps 3 to 6.
//
// ServeWebSocket runs steps 1, 2, 4 and 5 before the session is handed on. The
// gateway's static routes are served by the front ends from disk, outside the
// chain; StaticFields gives them its CORS fields and security headers.
//
// The chain answers by writing through the ResponseWriter it was given, as a
// worker's answer would be written, so every front end (HTTP/1.1, HTTP/2,
// HTTP/3) gets the same answers without code of its own.
package guard
