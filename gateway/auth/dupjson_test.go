package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// refCheckDuplicates is a slow reference for checkDuplicates built on
// encoding/json's tokenizer.
func refCheckDuplicates(data []byte) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := refWalk(d); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

func refWalk(d *json.Decoder) error {
	t, err := d.Token()
	if err != nil {
		return err
	}
	delim, ok := t.(json.Delim)
	if !ok {
		return nil
	}
	switch delim {
	case '{':
		seen := map[string]bool{}
		for d.More() {
			t, err := d.Token()
			if err != nil {
				return err
			}
			name, _ := t.(string)
			if seen[name] {
				return errDuplicate
			}
			seen[name] = true
			if err := refWalk(d); err != nil {
				return err
			}
		}
	case '[':
		for d.More() {
			if err := refWalk(d); err != nil {
				return err
			}
		}
	}
	_, err = d.Token()
	return err
}

var dupCases = map[string]bool{ // document -> accepted
	`{"a":1,"b":{"a":2}}`:                             true,
	`{"a":1,"a":1}`:                                   false,
	`{"a":[{"b":1,"b":2}]}`:                           false,
	`{"alg":"x","\u0061lg":"y"}`:                      false,
	`{"a\/b":1,"a/b":2}`:                              false,
	`{"\ud800":1,"\udfff":2}`:                         false, // both decode to U+FFFD, as encoding/json sees them
	"{\"\xff\":1,\"\xfe\":2}":                         false,
	`{"a":1} {"b":2}`:                                 false,
	`{"a":1`:                                          false,
	`[` + strings.Repeat(`[`, 100):                    false,
	strings.Repeat(`[`, 65) + strings.Repeat(`]`, 65): false,
	strings.Repeat(`[`, 60) + strings.Repeat(`]`, 60): true,
	`"x"`: true,
	` {"a" : [1, -2.5e+3, 0, true, false, null, "s\n\u00e9"] } `: true,
	`{"a":01}`:               false,
	`{"a":1.}`:               false,
	`{"a":.5}`:               false,
	`{"a":-}`:                false,
	`{"a":"\x"}`:             false,
	`{"a":"` + "\x01" + `"}`: false,
	`{"a":tru}`:              false,
	`{"a":1,}`:               false,
	`[1,]`:                   false,
	`{,}`:                    false,
	`{"a" 1}`:                false,
	``:                       false,
	`{}`:                     true,
	`[]`:                     true,
}

func TestCheckDuplicates(t *testing.T) {
	for doc, want := range dupCases {
		if got := checkDuplicates([]byte(doc)) == nil; got != want {
			t.Errorf("checkDuplicates(%q) ok=%v, want %v", doc, got, want)
		}
	}
	// A large object switches from the linear search to a map.
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < 40; i++ {
		b.WriteString(`"k` + strings.Repeat("x", i) + `":1,`)
	}
	big := b.String()
	if err := checkDuplicates([]byte(big + `"end":1}`)); err != nil {
		t.Fatalf("40 distinct names: %v", err)
	}
	if err := checkDuplicates([]byte(big + `"kxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx":2}`)); !errors.Is(err, errDuplicate) {
		t.Fatalf("a repeat after 40 names: %v", err)
	}
	plain := []byte(`{"sub":"a","exp":1,"roles":["x"],"aud":"api","nested":{"a":[1.5e3,null]}}`)
	if n := testing.AllocsPerRun(100, func() { _ = checkDuplicates(plain) }); n != 0 {
		t.Fatalf("checkDuplicates allocates %v times on a plain claims set", n)
	}
}

// FuzzCheckDuplicates compares checkDuplicates with encoding/json: it
// accepts exactly the valid documents without a repeated name.
func FuzzCheckDuplicates(f *testing.F) {
	for doc := range dupCases {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{")) > 50 {
			return // the depth limits differ by design
		}
		got := checkDuplicates(data)
		valid := json.Valid(data)
		if got == nil && !valid {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if !valid {
			return
		}
		ref := refCheckDuplicates(data)
		if (got == nil) != (ref == nil) || errors.Is(got, errDuplicate) != errors.Is(ref, errDuplicate) {
			t.Fatalf("%q: checkDuplicates %v, reference %v", data, got, ref)
		}
	})
}
