package guard

import (
	"context"
	"errors"
	"strings"

	"github.com/covetpy/covetpy/gateway/audit"
	"github.com/covetpy/covetpy/gateway/auth"
	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/ratelimit"
	"github.com/covetpy/covetpy/workerproto"
)

// Audit reasons of the chain's own (the verifier's auth.Error reasons are the
// others).
const (
	reasonOK                = "ok"
	reasonMissing           = "missing"            // no Authorization field on a route with auth
	reasonNotBearer         = "not_bearer"         // an Authorization field of another scheme
	reasonInsufficientScope = "insufficient_scope" // valid, lacking a role or scope
)

// authenticate verifies the request's bearer token and checks the route's
// roles and scopes. It returns the verified identity (nil for none); done
// reports that it answered the request itself (401 or 403), err being the
// answer's write error.
//
// A route with auth needs a valid token. On a route without auth, a valid
// token still reaches the worker, and an invalid one is ignored (the request
// goes on without an identity); both are audited.
func (c *Chain) authenticate(rt *dispatch.Route, h *workerproto.RequestHead, p *policy, w dispatch.ResponseWriter) (id *auth.Identity, done bool, err error) {
	if c.verifier == nil { // no key source (then no route has auth): tokens are not ours
		return nil, false, nil
	}
	v := header(h.Headers, "authorization")
	if v == nil && !p.auth {
		return nil, false, nil
	}
	reason := reasonMissing
	if v != nil {
		tok, ok := auth.BearerToken(v)
		switch {
		case !ok:
			reason = reasonNotBearer
			if !p.auth {
				return nil, false, nil // Basic and friends on a public route: the app's business
			}
		default:
			var verr error
			id, verr = c.verifier.Verify(tok)
			if verr != nil {
				reason = "invalid"
				var ae *auth.Error
				if errors.As(verr, &ae) {
					reason = ae.Reason
				}
				id = nil
			}
		}
	}
	if id == nil {
		if !p.auth {
			c.decide(rt, h, "", "deny", reason, 0)
			return nil, false, nil
		}
		c.decide(rt, h, "", "deny", reason, 401)
		hs := []workerproto.Header{{Name: nameWWWAuthenticate, Value: []byte(`Bearer error="invalid_token", error_description="` + describe(reason) + `"`)}}
		return nil, true, c.answer(h, p, w, 401, hs)
	}
	if missing := lacking(id, p); missing != "" {
		c.decide(rt, h, id.Subject, "deny", reasonInsufficientScope, 403)
		hs := []workerproto.Header{{Name: nameWWWAuthenticate, Value: []byte(`Bearer error="insufficient_scope", error_description="` + missing + `"`)}}
		if len(p.scopes) > 0 {
			hs[0].Value = append(hs[0].Value, `, scope="`+strings.Join(p.scopes, " ")+`"`...)
		}
		return nil, true, c.answer(h, p, w, 403, hs)
	}
	c.decide(rt, h, id.Subject, "allow", reasonOK, 0)
	return id, false, nil
}

// lacking names the first role or scope the route needs and id lacks, or "".
func lacking(id *auth.Identity, p *policy) string {
	for _, r := range p.roles {
		if !contains(id.Roles, r) {
			return "missing role " + quoteSafe(r)
		}
	}
	for _, s := range p.scopes {
		if !contains(id.Scopes, s) {
			return "missing scope " + quoteSafe(s)
		}
	}
	return ""
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// quoteSafe drops what cannot appear in a quoted-string of a header value
// (RFC 6750's error_description is limited to %x20-21 / %x23-5B / %x5D-7E).
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// describe is the error_description of a 401 for an audit reason.
func describe(reason string) string {
	switch reason {
	case reasonMissing:
		return "no bearer token"
	case reasonNotBearer:
		return "the Authorization field is not a Bearer credential"
	case "expired":
		return "the token has expired"
	case "not_yet_valid":
		return "the token is not valid yet"
	}
	return "the token is not valid (" + quoteSafe(reason) + ")"
}

// decide audits one decision and counts it.
func (c *Chain) decide(rt *dispatch.Route, h *workerproto.RequestHead, subject, decision, reason string, status int) {
	c.metrics.AuthDecision(decision, reason)
	c.audit.Record(audit.Entry{
		Decision: decision, Reason: reason, Status: status,
		App: rt.App, Route: rt.Pattern, Method: h.Method, Path: h.Path,
		Subject: subject, Client: h.Client, RequestID: h.RequestID,
	})
}

// rateLimit applies the route's limit; done reports that it answered (429, or
// 503 when the shared store failed and the gateway is set to fail closed).
func (c *Chain) rateLimit(ctx context.Context, rt *dispatch.Route, h *workerproto.RequestHead, p *policy, id *auth.Identity, w dispatch.ResponseWriter) (d ratelimit.Decision, done bool, err error) {
	d, lerr := c.limiter.Allow(ctx, c.rateKey(h, p, id), p.limit)
	switch {
	case lerr != nil:
		c.log.Debug("rate limit store failed; refusing (rate_limit_redis_failure closed)", "err", lerr)
		return d, true, c.answer(h, p, w, 503, []workerproto.Header{{Name: nameRetryAfter, Value: []byte("1")}})
	case !d.Allowed:
		c.metrics.RateLimited(rt.App)
		return d, true, c.answer(h, p, w, 429, d.AppendHeaders(nil))
	}
	return d, false, nil
}

// rateKey is the bucket of this request: the route's, then what the route
// counts by. A subject or header key falls back to the client address when
// the request has none, so that leaving it out earns no separate budget.
func (c *Chain) rateKey(h *workerproto.RequestHead, p *policy, id *auth.Identity) string {
	switch p.limitKey.Kind {
	case ratelimit.KeySubject:
		if id != nil && id.Subject != "" {
			return p.bucket + "s:" + id.Subject
		}
	case ratelimit.KeyHeader:
		if v := header(h.Headers, p.limitKey.Header); len(v) > 0 {
			return p.bucket + "h:" + string(v)
		}
	}
	return p.bucket + "ip:" + hostOf(h.Client)
}
