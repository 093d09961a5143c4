package main

import (
	"io"
	"strings"
	"testing"
)

// TestStaticSetting: static mounts come from flags and the environment, and a
// bad entry stops start-up with an error that names the setting and the entry.
func TestStaticSetting(t *testing.T) {
	dir := t.TempDir()
	cfg, _, err := parseFlags([]string{"--workers", "0", "--static", "/a=" + dir, "--static", "/b=" + dir, "--static-index"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Server.Static) != 2 || cfg.Server.Static[1] != "/b="+dir || !cfg.Server.StaticIndex {
		t.Fatalf("static = %q, index %v", cfg.Server.Static, cfg.Server.StaticIndex)
	}
	cfg, _, err = parseFlags([]string{"--workers", "0"}, []string{"COVET_STATIC=/env=" + dir}, io.Discard)
	if err != nil || len(cfg.Server.Static) != 1 || cfg.Server.Static[0] != "/env="+dir {
		t.Fatalf("from the environment: %v %q", err, cfg.Server.Static)
	}
	for _, bad := range []string{"/a=" + dir + "/missing", "a=" + dir, "/a"} {
		_, _, err := parseFlags([]string{"--workers", "0", "--static", bad}, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `static: entry "`+bad+`"`) {
			t.Errorf("--static %s: %v", bad, err)
		}
	}
}
