package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// errDuplicate reports a JSON object with the same member name twice. Go's
// encoding/json keeps the last one; another JOSE implementation may keep the
// first, so a token whose header or claims repeat a name is refused (RFC 7515
// 5.2 step 4 allows rejecting them, RFC 7519 7.2 step 9 likewise).
var errDuplicate = errors.New("duplicate member name")

// checkDuplicates walks one JSON value and fails on a repeated member name in
// any object, on malformed JSON, and on anything after the value.
func checkDuplicates(data []byte) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := walkValue(d, 0); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// maxDepth bounds nesting so a hostile document cannot recurse deeply.
const maxDepth = 64

func walkValue(d *json.Decoder, depth int) error {
	if depth > maxDepth {
		return errors.New("JSON nested too deeply")
	}
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
		seen := map[string]struct{}{}
		for d.More() {
			t, err := d.Token()
			if err != nil {
				return err
			}
			name, _ := t.(string)
			if _, dup := seen[name]; dup {
				return fmt.Errorf("%w %q", errDuplicate, name)
			}
			seen[name] = struct{}{}
			if err := walkValue(d, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for d.More() {
			if err := walkValue(d, depth+1); err != nil {
				return err
			}
		}
	}
	_, err = d.Token() // the closing delimiter
	return err
}
