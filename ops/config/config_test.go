package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return errors.New("want low or high")
	}
	return nil
}

func (l level) MarshalText() ([]byte, error) { return []byte([]string{"none", "low", "high"}[l]), nil }

type inner struct {
	Limit   int64         `config:"limit" help:"a limit"`
	Timeout time.Duration `config:"timeout" help:"a deadline"`
	Hidden  int
}

type testConfig struct {
	Listen  string  `config:"listen" help:"address"`
	Workers int     `config:"workers"`
	Debug   bool    `config:"debug"`
	Ratio   float64 `config:"ratio"`
	Level   level   `config:"level"`
	Skip    string  `config:"-"`
	Inner   inner
}

func defaults() *testConfig {
	return &testConfig{Listen: "127.0.0.1:8000", Workers: 1, Inner: inner{Timeout: time.Second}}
}

func TestFieldsFlattenNestedStructs(t *testing.T) {
	var names []string
	for _, f := range Fields(defaults()) {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "listen,workers,debug,ratio,level,limit,timeout" {
		t.Errorf("fields %s", got)
	}
}

func TestPrecedenceFileEnvFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("workers: 3\nlisten: 0.0.0.0:80\ntimeout: 5s\nlevel: low\n"), 0o600)
	c := defaults()
	rest, err := Load(c, "x", "T_", []string{"T_WORKERS=4", "OTHER=1", "T_DEBUG=true"},
		[]string{"--config", file, "--listen", ":9", "--ratio=0.5", "arg"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := testConfig{Listen: ":9", Workers: 4, Debug: true, Ratio: 0.5, Level: 1, Inner: inner{Timeout: 5 * time.Second}}
	if *c != want {
		t.Errorf("got %+v, want %+v", *c, want)
	}
	if len(rest) != 1 || rest[0] != "arg" {
		t.Errorf("rest %q", rest)
	}
}

func TestConfigFromEnvironmentVariable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("workers: 7\n"), 0o600)
	c := defaults()
	if _, err := Load(c, "x", "T_", []string{"T_CONFIG=" + file}, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	if c.Workers != 7 {
		t.Errorf("workers %d, want 7 from T_CONFIG's file", c.Workers)
	}
}

func TestErrorsNameTheSetting(t *testing.T) {
	for _, tc := range []struct {
		file, env string
		args      []string
		want      string
	}{
		{file: "workers: lots\n", want: "c.yaml:1: workers: cannot parse \"lots\" as an integer"},
		{file: "listen: x\nworkres: 2\n", want: "c.yaml:2: unknown key \"workres\" (did you mean \"workers\"?)"},
		{file: "timeout: 10\n", want: "timeout: cannot parse \"10\" as a duration"},
		{file: "level: medium\n", want: "level: want low or high"},
		{file: "inner:\n  limit: 3\n", want: "unknown key \"inner\""},
		{file: "listen: [a, b]\n", want: "listen: want a single value"},
		{file: "- a\n", want: "want a mapping"},
		{file: "a: [\n", want: "c.yaml"},
		{env: "T_DEBUG=maybe", want: "T_DEBUG: cannot parse \"maybe\" as true or false"},
		{args: []string{"--limit", "x"}, want: "invalid value \"x\" for flag -limit: cannot parse \"x\" as an integer"},
		{args: []string{"--nope"}, want: "flag provided but not defined: -nope"},
		{args: []string{"--config"}, want: "--config needs a file name"},
	} {
		dir := t.TempDir()
		var args []string
		if tc.file != "" {
			f := filepath.Join(dir, "c.yaml")
			os.WriteFile(f, []byte(tc.file), 0o600)
			args = append(args, "--config", f)
		}
		args = append(args, tc.args...)
		var env []string
		if tc.env != "" {
			env = []string{tc.env}
		}
		_, err := Load(defaults(), "x", "T_", env, args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("file %q env %q args %q: error %v, want it to contain %q", tc.file, tc.env, tc.args, err, tc.want)
		}
	}
	if _, err := Load(defaults(), "x", "T_", nil, []string{"--config", "/nonexistent/c.yaml"}, io.Discard); err == nil {
		t.Error("a missing config file was accepted")
	}
}

func TestPrintRoundTrips(t *testing.T) {
	c := defaults()
	c.Listen, c.Level, c.Inner.Limit, c.Debug = "a b: c", 2, 9, true
	var buf bytes.Buffer
	if err := Print(&buf, c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "# a deadline\ntimeout: 1s\n") {
		t.Errorf("print output lacks the help comment and duration:\n%s", buf.String())
	}
	back := &testConfig{}
	if err := LoadYAML(back, "printed", buf.Bytes()); err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, buf.String())
	}
	if *back != *c {
		t.Errorf("round trip: got %+v, want %+v", *back, *c)
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	var buf bytes.Buffer
	_, err := Load(defaults(), "x", "T_", nil, []string{"-h"}, &buf)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err %v, want ErrHelp", err)
	}
	for _, f := range []string{"-listen", "-workers", "-debug", "-limit", "-timeout", "-config"} {
		if !strings.Contains(buf.String(), f) {
			t.Errorf("help lacks %s:\n%s", f, buf.String())
		}
	}
}

type listConfig struct {
	Certs []string `config:"certs" help:"files"`
	Name  string   `config:"name"`
}

func TestStringLists(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("certs: [a.pem, \"b,c.pem\"]\nname: x\n"), 0o600)
	var c listConfig
	if err := LoadFile(&c, file); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Certs, "|") != "a.pem|b,c.pem" {
		t.Errorf("YAML sequence: %q", c.Certs)
	}
	if err := LoadYAML(&c, "s", []byte("certs: one.pem, two.pem\n")); err != nil || strings.Join(c.Certs, "|") != "one.pem|two.pem" {
		t.Errorf("comma string in the file: %q %v", c.Certs, err)
	}
	if err := LoadEnv(&c, "T_", []string{"T_CERTS=e1.pem,e2.pem"}); err != nil || strings.Join(c.Certs, "|") != "e1.pem|e2.pem" {
		t.Errorf("environment: %q %v", c.Certs, err)
	}
	// The first flag replaces the environment's list, later ones add to it.
	rest, err := Load(&c, "x", "T_", []string{"T_CERTS=e.pem"}, []string{"--certs", "f1.pem", "--certs=f2.pem,f3.pem"}, io.Discard)
	if err != nil || len(rest) != 0 || strings.Join(c.Certs, "|") != "f1.pem|f2.pem|f3.pem" {
		t.Errorf("flags: %q %v", c.Certs, err)
	}
	if err := LoadYAML(&c, "s", []byte("name: [a]\n")); err == nil {
		t.Error("a list for a string setting was accepted")
	}
	var buf bytes.Buffer
	if err := Print(&buf, &c); err != nil {
		t.Fatal(err)
	}
	var back listConfig
	if err := LoadYAML(&back, "printed", buf.Bytes()); err != nil || strings.Join(back.Certs, "|") != "f1.pem|f2.pem|f3.pem" {
		t.Errorf("print round trip: %q %v\n%s", back.Certs, err, buf.String())
	}
}
