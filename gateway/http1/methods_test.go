package http1

import (
	"strings"
	"testing"

	"github.com/covetpy/covetpy/ops/metrics"
)

// ops/metrics is a leaf and may not import this package, so it keeps its own list
// of the methods its method label keeps. KnownMethod and that list must name the
// same set: a method the parser knows but the label folds into OTHER (or the
// reverse) would make the metrics disagree with the access log.
func TestKnownMethodMatchesMetricsMethods(t *testing.T) {
	for _, m := range metrics.Methods {
		if name, ok := KnownMethod(m); !ok || name != m {
			t.Errorf("metrics.Methods has %q, KnownMethod gives (%q, %v)", m, name, ok)
		}
	}
	// Every method of the IANA HTTP method registry, and near misses: KnownMethod
	// and metrics.MethodLabel agree on each.
	candidates := []string{
		"ACL", "BASELINE-CONTROL", "BIND", "CHECKIN", "CHECKOUT", "CONNECT", "COPY",
		"DELETE", "GET", "HEAD", "LABEL", "LINK", "LOCK", "MERGE", "MKACTIVITY",
		"MKCALENDAR", "MKCOL", "MKREDIRECTREF", "MKWORKSPACE", "MOVE", "OPTIONS",
		"ORDERPATCH", "PATCH", "POST", "PRI", "PROPFIND", "PROPPATCH", "PUT", "QUERY",
		"REBIND", "REPORT", "SEARCH", "TRACE", "UNBIND", "UNCHECKOUT", "UNLINK",
		"UNLOCK", "UPDATE", "UPDATEREDIRECTREF", "VERSION-CONTROL", "*", "", "OTHER",
	}
	for _, c := range candidates {
		for _, m := range []string{c, strings.ToLower(c), c + " "} {
			want := "OTHER"
			if name, ok := KnownMethod(m); ok {
				want = name
			}
			if got := metrics.MethodLabel(m); got != want {
				t.Errorf("method %q: metrics.MethodLabel = %q, KnownMethod says %q", m, got, want)
			}
		}
	}
}
