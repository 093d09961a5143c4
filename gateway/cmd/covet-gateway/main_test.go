package main

import (
	"io"
	"slices"
	"strings"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "python -m covet worker app:app", want: []string{"python", "-m", "covet", "worker", "app:app"}},
		{in: "  a\t b  ", want: []string{"a", "b"}},
		{in: `'/opt/my python/bin/python' -c 'print("x y")'`, want: []string{"/opt/my python/bin/python", "-c", `print("x y")`}},
		{in: `"a \"b\" c" d\ e`, want: []string{`a "b" c`, "d e"}},
		{in: `''`, want: []string{""}},
		{in: "", want: nil},
		{in: "'open", err: "unterminated single quote"},
		{in: `"open`, err: "unterminated double quote"},
		{in: `x\`, err: "trailing backslash"},
	} {
		got, err := splitCommand(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("splitCommand(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitCommand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseFlagsErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--workers", "2"}, "--worker-cmd is required"},
		{[]string{"--workers", "-1"}, "--workers"},
		{[]string{"--worker-cmd", "x", "--app", "bad name"}, "--app"},
		{[]string{"--worker-cmd", "x", "--log-format", "xml"}, "--log-format"},
		{[]string{"--worker-cmd", "x", "--log-level", "loud"}, "--log-level"},
		{[]string{"--worker-cmd", "'x"}, "--worker-cmd"},
		{[]string{"--worker-cmd", "x", "--max-inflight", "-3"}, "max_inflight"},
		{[]string{"--worker-cmd", "x", "stray"}, "unexpected argument"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) error = %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
	cfg, err := parseFlags([]string{"--workers", "3", "--worker-cmd", "python -m covet worker app:app", "--app", "shop"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workers != 3 || cfg.App != "shop" || len(cfg.WorkerCmd) != 5 || cfg.Listen != "127.0.0.1:8000" {
		t.Errorf("unexpected config %+v", cfg)
	}
}
