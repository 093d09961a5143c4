package compress

import (
	"bytes"
	"testing"
)

// FuzzNegotiate: any Accept-Encoding value (a client's bytes) is parsed
// without a panic; the coding chosen is one offered, and one the value names
// (or "*" covers).
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "gzip", "br;q=1.0, gzip;q=0.8, *;q=0.1", "gzip;q=0, *", "identity;q=0",
		"zstd\t;\tq=0.9, gzip;q=0.9", "gzip;q=1.5", ",,;;==", "*;q=0.000, x-gzip;Q=1"} {
		f.Add([]byte(s))
	}
	offer := []coding{codingZstd, codingGzip, codingBr}
	f.Fuzz(func(t *testing.T, ae []byte) {
		k, ok := negotiate(ae, offer)
		if !ok {
			return
		}
		if k >= numCodings {
			t.Fatalf("coding %d", k)
		}
		lower := bytes.ToLower(ae)
		name := []byte(k.String())
		if !bytes.Contains(lower, name) && !bytes.Contains(lower, []byte("*")) {
			t.Fatalf("%q: chose %s, which it does not name", ae, k)
		}
	})
}
