package auth

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// wycheproofVersion pins the Wycheproof vectors (github.com/c2sp/wycheproof,
// fetched through the Go module proxy into the module cache; not copied
// into this repository).
const wycheproofVersion = "v0.0.0-20260902155932-3fa63dd0344a"

var (
	wycheproofOnce sync.Once
	wycheproofDir  string
	wycheproofErr  string
)

// wycheproofFile returns the path of a vector file, downloading the module
// with the go command when the module cache lacks it. The test is skipped
// only when the download fails (no proxy reachable).
func wycheproofFile(t *testing.T, name string) string {
	t.Helper()
	wycheproofOnce.Do(func() {
		goCmd := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, err := os.Stat(goCmd); err != nil {
			goCmd = "go"
		}
		cmd := exec.Command(goCmd, "mod", "download", "-json", "github.com/c2sp/wycheproof@"+wycheproofVersion)
		cmd.Dir = os.TempDir() // outside this module: go.mod and go.sum stay as they are
		out, err := cmd.Output()
		var info struct{ Dir, Error string }
		if jerr := json.Unmarshal(out, &info); err != nil || jerr != nil || info.Dir == "" {
			wycheproofErr = "go mod download github.com/c2sp/wycheproof@" + wycheproofVersion + " failed (module proxy unreachable?): " +
				strings.TrimSpace(info.Error) + " " + errString(err)
			return
		}
		wycheproofDir = filepath.Join(info.Dir, "testvectors_v1")
	})
	if wycheproofDir == "" {
		t.Skip(wycheproofErr)
	}
	return filepath.Join(wycheproofDir, name)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return err.Error() + ": " + string(ee.Stderr)
	}
	return err.Error()
}

func loadJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// jwsVerifier is a Verifier over one fixed key set that accepts every
// algorithm and never refreshes.
func jwsVerifier(set *keySet) *Verifier {
	v := &Verifier{allowed: algorithms, now: func() time.Time { return fixedClock }, lastAttempt: fixedClock,
		cfg: Config{JWKSCooldown: time.Hour}}
	v.keys.Store(set)
	return v
}

// TestWycheproofJWS runs json_web_signature_test.json through the JWS layer
// (signature and header checks; the payloads are not JWT claims sets).
//
// One known disagreement, asserted rather than skipped: the vectors of RFC
// 7520 4.2 (PS384) carry a key whose "alg" is PS256, an annotation the RFC's
// key (Figure 3) does not have. This verifier enforces a JWK's alg when it
// names a known algorithm (RFC 7517 4.4), so it refuses them with bad_alg;
// the test checks that and that the same key without the alg member verifies
// them.
//
// Four vectors of the "base64" group contradict the rest of the file, and
// the test asserts this verifier's (strict) answer for them instead:
// 367 and 370 ("invalidBase64Padding...") are byte for byte vector 357,
// labelled valid there and invalid here; 372 and 373 ("InvalidCharacter
// Inserted...") put a '?' into the header or payload and are labelled valid,
// against the group's other '?' vectors (361, 362) and RFC 7515 2, which
// allows no character outside the base64url alphabet.
func TestWycheproofJWS(t *testing.T) {
	var doc struct {
		TestGroups []struct {
			Comment string          `json:"comment"`
			Public  json.RawMessage `json:"public"`
			Private json.RawMessage `json:"private"`
			Tests   []struct {
				TcID    int    `json:"tcId"`
				Comment string `json:"comment"`
				JWS     string `json:"jws"`
				Result  string `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	loadJSON(t, wycheproofFile(t, "json_web_signature_test.json"), &doc)
	total, deviations, contradictions := 0, 0, 0
	for _, g := range doc.TestGroups {
		keyJSON := g.Public
		if keyJSON == nil {
			keyJSON = g.Private
		}
		set, _, err := parseJWKS([]byte(`{"keys":[` + string(keyJSON) + `]}`))
		for _, tc := range g.Tests {
			total++
			valid := tc.Result == "valid"
			if err != nil {
				if valid {
					t.Errorf("tcId %d (%s, %s): key refused: %v", tc.TcID, g.Comment, tc.Comment, err)
				}
				continue
			}
			_, _, verr := jwsVerifier(set).verifyJWS([]byte(tc.JWS))
			if want, listed := wycheproofContradictions[tc.TcID]; listed {
				if got := verr == nil; got != want {
					t.Errorf("tcId %d (%s): verified=%v, want %v", tc.TcID, tc.Comment, got, want)
				}
				contradictions++
				continue
			}
			if valid && verr != nil && verr.Reason == ReasonBadAlg && set.all[0].alg != "" {
				if _, known := algorithms[set.all[0].alg]; known {
					// The key's alg differs from the token's: check it is only that.
					var m map[string]any
					_ = json.Unmarshal(keyJSON, &m)
					delete(m, "alg")
					k2, _ := json.Marshal(m)
					set2, _, err2 := parseJWKS([]byte(`{"keys":[` + string(k2) + `]}`))
					if err2 != nil {
						t.Fatal(err2)
					}
					if _, _, e := jwsVerifier(set2).verifyJWS([]byte(tc.JWS)); e != nil {
						t.Errorf("tcId %d (%s): refused even without the key's alg: %v", tc.TcID, g.Comment, e)
					}
					deviations++
					t.Logf("tcId %d (%s, %s): key alg %s, token alg differs: refused (bad_alg) by design", tc.TcID, g.Comment, tc.Comment, set.all[0].alg)
					continue
				}
			}
			if valid != (verr == nil) {
				t.Errorf("tcId %d (%s, %s): want %s, got %v", tc.TcID, g.Comment, tc.Comment, tc.Result, verr)
			}
		}
	}
	t.Logf("%d vectors: %d refused by the key-alg rule, %d self-contradictory ones answered strictly", total, deviations, contradictions)
	if contradictions != len(wycheproofContradictions) {
		t.Errorf("met %d of the %d listed contradictory vectors", contradictions, len(wycheproofContradictions))
	}
	if total < 400 {
		t.Fatalf("only %d vectors", total)
	}
	if deviations > 2 {
		t.Fatalf("%d vectors refused for the key's alg; expected the two RFC 7520 4.2 ones", deviations)
	}
}

// wycheproofContradictions: tcId -> whether this verifier accepts it (see
// TestWycheproofJWS).
var wycheproofContradictions = map[int]bool{367: true, 370: true, 372: false, 373: false}

// TestWycheproofEd448 runs ed448_test.json through the Ed448 and EdDSA
// algorithms, the key parsed from the group's JWK.
func TestWycheproofEd448(t *testing.T) {
	var doc struct {
		TestGroups []struct {
			PublicKeyJwk json.RawMessage `json:"publicKeyJwk"`
			Tests        []struct {
				TcID   int    `json:"tcId"`
				Msg    string `json:"msg"`
				Sig    string `json:"sig"`
				Result string `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	loadJSON(t, wycheproofFile(t, "ed448_test.json"), &doc)
	n := 0
	for _, g := range doc.TestGroups {
		k, err := parseJWK(g.PublicKeyJwk)
		for _, tc := range g.Tests {
			n++
			valid := tc.Result == "valid"
			if err != nil {
				if valid {
					t.Errorf("tcId %d: key refused: %v", tc.TcID, err)
				}
				continue
			}
			msg, _ := hex.DecodeString(tc.Msg)
			sig, _ := hex.DecodeString(tc.Sig)
			for _, alg := range []string{"Ed448", "EdDSA"} {
				a := algorithms[alg]
				if got := keyFits(a, k) && a.verify(k, msg, sig); got != valid {
					t.Errorf("tcId %d via %s: verified=%v, want %s", tc.TcID, alg, got, tc.Result)
				}
			}
		}
	}
	if n != 87 {
		t.Logf("%d vectors", n)
	}
}

// TestWycheproofMLDSA runs the ML-DSA verify vectors through the AKP keys and
// the ML-DSA algorithms (empty context, as JOSE signs); the vectors with a
// non-empty context go through the same key with that context.
func TestWycheproofMLDSA(t *testing.T) {
	for _, set := range []struct{ alg, file string }{
		{"ML-DSA-44", "mldsa_44_verify_test.json"}, {"ML-DSA-65", "mldsa_65_verify_test.json"}, {"ML-DSA-87", "mldsa_87_verify_test.json"},
	} {
		t.Run(set.alg, func(t *testing.T) {
			var doc struct {
				TestGroups []struct {
					PublicKey string `json:"publicKey"`
					Tests     []struct {
						TcID   int     `json:"tcId"`
						Msg    string  `json:"msg"`
						Ctx    *string `json:"ctx"`
						Sig    string  `json:"sig"`
						Result string  `json:"result"`
					} `json:"tests"`
				} `json:"testGroups"`
			}
			loadJSON(t, wycheproofFile(t, set.file), &doc)
			n := 0
			for _, g := range doc.TestGroups {
				pub, _ := hex.DecodeString(g.PublicKey)
				jwk := `{"kty":"AKP","alg":"` + set.alg + `","pub":"` + b64(pub) + `"}`
				k, err := parseJWK([]byte(jwk))
				for _, tc := range g.Tests {
					n++
					valid := tc.Result == "valid"
					if err != nil {
						if valid {
							t.Errorf("tcId %d: key refused: %v", tc.TcID, err)
						}
						continue
					}
					msg, _ := hex.DecodeString(tc.Msg)
					sig, _ := hex.DecodeString(tc.Sig)
					var ctx []byte
					if tc.Ctx != nil {
						ctx, _ = hex.DecodeString(*tc.Ctx)
					}
					if got := k.verifyMLDSA(msg, ctx, sig); got != valid {
						t.Errorf("tcId %d: verified=%v, want %s", tc.TcID, got, tc.Result)
					}
					if len(ctx) == 0 {
						a := algorithms[set.alg]
						if got := keyFits(a, k) && a.verify(k, msg, sig); got != valid {
							t.Errorf("tcId %d via alg %s: verified=%v, want %s", tc.TcID, set.alg, got, tc.Result)
						}
					}
				}
			}
			if n < 150 {
				t.Fatalf("only %d vectors", n)
			}
		})
	}
}
