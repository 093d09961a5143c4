// Package router maps an HTTP method and raw request path to a registered
// route, with typed path parameters, and decides 404, 405 and automatic
// HEAD/OPTIONS answers. It is a leaf package: it imports nothing else from
// this repository. The gateway builds it from the workers' route manifests.
//
// # Patterns
//
// workerproto/PROTOCOL.md section 7 specifies the syntax, matching and conflicts
// below for the gateway and the SDKs alike; its golden vectors
// (workerproto/testdata/patterns.json) are checked here (vectors_test.go) and by
// the Python SDK.
//
// A pattern starts with '/' and is a sequence of segments separated by '/':
//
//	/users/me              static text, matched byte for byte
//	/users/{id}            a parameter: one non-empty segment (no '/')
//	/users/{id:str}        the same; str is the default type
//	/users/{id:int}        an optional '-' then decimal digits that fit an int64
//	/users/{id:uuid}       8-4-4-4-12 hex digits, either case
//	/static/{path...}      a catch-all: the rest of the path, '/' included
//	/static/{path:path}    the same (Starlette's spelling)
//
// A parameter is always a whole segment ("/files/{name}.json" is refused).
// Names match [A-Za-z_][A-Za-z0-9_]* and are unique within a pattern; at most
// [MaxParams] parameters per pattern. A catch-all must be the last segment
// and may match the empty string: "/static/{path...}" matches "/static/"
// (path="") and "/static/a/b" (path="a/b"), but not "/static". Static text
// may hold RFC 3986 path characters and %XX escapes; any other byte (space,
// '?', '#', non-ASCII) is refused with a hint to percent-encode it.
//
// Patterns with unclosed or stray braces, empty or invalid or duplicate
// names, unknown types, a catch-all that is not last, or no leading '/' are
// refused with a *PatternError that says what is wrong and where.
//
// # Matching
//
// Matching runs on the raw path as received, put in canonical form by
// [AppendCanonicalPath] (RFC 3986 section 6.2.2: escapes in upper-case hex,
// escaped unreserved characters decoded; static pattern text is held in the
// same form, so "/caf%c3%a9" and "/us%65rs" match the routes /caf%C3%A9 and
// /users): still percent-encoded otherwise, without the query, not cleaned of
// "." or ".." or "//" (that is the gateway's job, before lookup),
// case-sensitive. A trailing slash is significant: "/a" and
// "/a/" are distinct routes and neither matches the other's path, and no
// redirect is implied. Parameter values are substrings of the path, still
// encoded; [Unescape] decodes one ("a%2Fb" becomes "a/b", so an encoded
// slash never splits segments). Typed matchers see the encoded bytes too.
//
// Each method has its own radix tree. At every position the candidates are
// tried in this order of precedence, most specific first:
//
//	static text > typed parameter (int, uuid) > str parameter > catch-all
//
// and the search backtracks: if a more specific branch fails further along
// the path, the next one at the same position is tried. So with /users/me,
// /users/{id:int} and /users/{name}, the path /users/me picks the first,
// /users/42 the second and /users/bob the third; and with /files/{id:int}/raw
// and /files/{rest...}, /files/42/other falls back to the catch-all.
// Precedence is decided segment by segment from the left: the first segment
// where two candidate routes differ settles it, even if a later segment of
// the winner is less specific.
//
// A route on the request's method wins. Otherwise, for HEAD, a GET route
// answers (Match.AutoHead). Otherwise a route registered on [MethodAny]
// answers. Otherwise, if any method matches the path, an OPTIONS request
// gets [StatusOptions] (answer 204) and any other method gets
// [StatusMethodNotAllowed] (answer 405); both carry the Allow header value:
// the methods matching the path, plus HEAD when GET is among them, plus
// OPTIONS, sorted and joined with ", ". Otherwise [StatusNotFound].
//
// # Conflicts
//
// Two routes on the same method conflict when precedence cannot choose
// between them:
//
//   - they have the same shape: the same static text and, position by
//     position, parameters of the same type (names do not count), or both a
//     catch-all at the same position. "/users/{id}" and "/users/{name}"
//     conflict; "/users/{id}" and "/users/{id:int}" do not (int is tried
//     first); "/users/{id}" and "/users/{name}/posts" do not (different
//     static text).
//   - they have typed parameters of different types at the same position
//     whose types can match the same segment. int and uuid are disjoint and
//     coexist: "/a/{x:int}" and "/a/{x:uuid}" are both allowed.
//
// A conflict is refused with a *ConflictError that names both patterns; the
// same (method, pattern) twice is a *ConflictError with Duplicate set
// (errors.Is(err, ErrDuplicate)). Routes on different methods, including
// MethodAny, never conflict.
//
// # Concurrency
//
// A [Router] is an atomic pointer to an immutable snapshot: the route list
// and one radix tree per method. [Router.Lookup] loads the pointer once and
// reads only that snapshot, without locks, so any number of goroutines may
// look up while routes change. [Router.Add], [Router.Remove],
// [Router.RemoveFunc] and [Router.Replace] take a mutex, build a whole new
// snapshot and publish it with one atomic store: each change is atomic (all
// of its routes or none) and a lookup sees the table wholly before or wholly
// after it. Rebuilding costs time linear in the total size of the patterns
// (about a millisecond for the 339-route GitHub set in the benchmarks), which
// suits a route table that changes when workers come and go, not per
// request. A failed change (conflict, bad pattern) leaves the table as it was.
//
// A lookup visits each tree node at most once (backtracking never re-enters
// a subtree), so its worst case is bounded by the size of the table, not by
// the path a client sends.
//
// # Allocation
//
// Lookup allocates nothing for found routes, static or parametrised: the
// caller passes a [Params], a fixed array of [MaxParams] (name, value) pairs
// it owns, typically on its stack. A 405 or automatic OPTIONS allocates only
// the first time a snapshot renders a given Allow string.
package router
