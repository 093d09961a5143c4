package audit

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecordsJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(Config{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 6, 0, 0, 0, time.FixedZone("x", 3600))
	l.Record(Entry{Time: at, Decision: "deny", Reason: "expired", Status: 401, App: "api", Route: "/admin", Method: "GET", Path: "/admin", Client: "192.0.2.1:5000", RequestID: "r1"})
	l.Record(Entry{Decision: "allow", Reason: "ok", Subject: "alice \"quoted\"\n", Route: "/admin"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, e)
	}
	if len(got) != 2 {
		t.Fatalf("%d lines, want 2", len(got))
	}
	if got[0].Decision != "deny" || got[0].Reason != "expired" || got[0].Status != 401 || !got[0].Time.Equal(at) || got[0].Time.Location() != time.UTC {
		t.Errorf("first line: %+v", got[0])
	}
	if got[1].Subject != "alice \"quoted\"\n" || got[1].Time.IsZero() {
		t.Errorf("second line: %+v", got[1])
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

func TestFlushedWithoutClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(Config{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Record(Entry{Decision: "deny", Reason: "missing"})
	// The flusher writes within FlushInterval; poll well past it.
	for i := 0; i < 100; i++ {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), `"reason":"missing"`) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("line not written within 5s")
}

func TestOpenErrorsAndNil(t *testing.T) {
	if l, err := Open(Config{}, nil); l != nil || err != nil {
		t.Fatal(l, err)
	}
	var l *Log
	l.Record(Entry{}) // a nil log records nothing
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{Path: filepath.Join(t.TempDir(), "no", "such", "dir", "a.log")}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "audit_log: ") {
		t.Fatalf("got %v, want an error naming audit_log", err)
	}
}

// The hand-written encoder gives what encoding/json gives the Entry.
func TestAppendEntryMatchesEncodingJSON(t *testing.T) {
	for _, e := range []Entry{
		{Time: time.Unix(1, 5).UTC(), Decision: "allow", Reason: "ok", Route: "/a/{id}", Path: "/a/%2F"},
		{Time: time.Unix(1893456000, 0).UTC(), Decision: "deny", Reason: "expired", Status: 401, Subject: "ünï \"q\" \\ \n\r\t\x01\x7f \u2028 \u2029", Path: "/bad\xff\xfe", Client: "[::1]:1"},
	} {
		want, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEntry(nil, &e); string(got) != string(want)+"\n" {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}
