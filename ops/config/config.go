// Package config maps one typed configuration struct onto a YAML file, environment
// variables and command-line flags, so that each setting is declared once: as a
// field of the struct, with its default set by the caller and its documentation in
// a tag. Later sources override earlier ones: defaults, then the file, then the
// environment, then flags.
//
// A field takes part when it has a `config:"name"` tag; name is snake_case and is
// the key in the file (one flat mapping), the flag (--name with '_' as '-') and the
// environment variable (PREFIX + NAME in upper case). A `help:"..."` tag is the
// flag's usage text. A struct field without a tag is walked into, so nested config
// structs of other packages contribute their tagged fields under the same flat
// namespace; a field tagged `config:"-"` is skipped. Supported field types: string,
// bool, int, int64, uint64, float64, time.Duration (Go syntax: "250ms", "1m"), any
// type implementing encoding.TextUnmarshaler (printed with TextMarshaler), and
// []string: a YAML sequence or a comma-separated string in the file, a
// comma-separated string in the environment, and a flag that may be repeated (its
// values, each possibly comma-separated, replace those of the file and the
// environment).
//
// Errors name the source and the setting: "covet.yaml:3: max_inflight: cannot
// parse "lots" as an integer", "unknown key "max_inflite"", "--timeout: ...",
// "COVET_TIMEOUT: ...".
package config

import (
	"encoding"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Field is one setting of a configuration struct.
type Field struct {
	Name string // snake_case key
	Help string
	v    reflect.Value // settable
}

// Flag is the command-line spelling of the field.
func (f Field) Flag() string { return strings.ReplaceAll(f.Name, "_", "-") }

// Env is the environment variable of the field for prefix (e.g. "COVET_").
func (f Field) Env(prefix string) string { return prefix + strings.ToUpper(f.Name) }

// Fields lists the settings of *dst (a pointer to a struct) in declaration order.
// Two fields with the same name are a programming error and panic.
func Fields(dst any) []Field {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic("config: Fields wants a pointer to a struct")
	}
	var out []Field
	walk(v.Elem(), &out)
	seen := map[string]bool{}
	for _, f := range out {
		if seen[f.Name] {
			panic("config: two fields are named " + f.Name)
		}
		seen[f.Name] = true
	}
	return out
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func walk(v reflect.Value, out *[]Field) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag, ok := sf.Tag.Lookup("config")
		if tag == "-" {
			continue
		}
		fv := v.Field(i)
		if !ok {
			if sf.Type.Kind() == reflect.Struct {
				walk(fv, out)
			}
			continue
		}
		if !settable(fv) {
			panic(fmt.Sprintf("config: field %s (%s) has an unsupported type %s", sf.Name, tag, sf.Type))
		}
		*out = append(*out, Field{Name: tag, Help: sf.Tag.Get("help"), v: fv})
	}
}

func settable(v reflect.Value) bool {
	if reflect.PointerTo(v.Type()).Implements(textUnmarshaler) {
		return true
	}
	switch v.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint64, reflect.Float64:
		return true
	case reflect.Slice:
		return v.Type().Elem().Kind() == reflect.String
	}
	return false
}

// isList reports whether v is a []string setting (not one that parses
// itself, as a TextUnmarshaler).
func isList(v reflect.Value) bool {
	return v.Kind() == reflect.Slice && !reflect.PointerTo(v.Type()).Implements(textUnmarshaler)
}

// splitList splits a comma-separated list, dropping blanks around items and
// empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func (f Field) setList(items []string) {
	f.v.Set(reflect.ValueOf(items).Convert(f.v.Type()))
}

// Set parses s into the field.
func (f Field) Set(s string) error {
	v := f.v
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.Slice:
		f.setList(splitList(s))
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("cannot parse %q as true or false", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("cannot parse %q as a duration (like 250ms, 10s, 1m)", s)
			}
			v.SetInt(int64(d))
			return nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(n) {
			return fmt.Errorf("cannot parse %q as an integer", s)
		}
		v.SetInt(n)
	case reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("cannot parse %q as a non-negative integer", s)
		}
		v.SetUint(n)
	case reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("cannot parse %q as a number", s)
		}
		v.SetFloat(x)
	}
	return nil
}

// String renders the field's current value in the syntax Set accepts.
func (f Field) String() string {
	v := f.v
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	if v.Type() == reflect.TypeFor[time.Duration]() {
		return time.Duration(v.Int()).String()
	}
	if isList(v) {
		return strings.Join(v.Convert(reflect.TypeFor[[]string]()).Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}

// LoadFile applies a YAML file: one flat mapping of setting names to scalars.
func LoadFile(dst any, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return LoadYAML(dst, path, b)
}

// LoadYAML applies YAML text b (named name in errors).
func LoadYAML(dst any, name string, b []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config: %s: %w", name, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("config: %s:%d: want a mapping of setting: value", name, m.Line)
	}
	fields := byName(dst)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("config: %s:%d: unknown key %q%s", name, k.Line, k.Value, suggest(k.Value, fields))
		}
		if v.Kind == yaml.SequenceNode && isList(f.v) {
			var items []string
			for _, it := range v.Content {
				if it.Kind != yaml.ScalarNode {
					return fmt.Errorf("config: %s:%d: %s: want a list of strings", name, it.Line, k.Value)
				}
				items = append(items, it.Value)
			}
			f.setList(items)
			continue
		}
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("config: %s:%d: %s: want a single value", name, v.Line, k.Value)
		}
		if err := f.Set(v.Value); err != nil {
			return fmt.Errorf("config: %s:%d: %s: %w", name, v.Line, k.Value, err)
		}
	}
	return nil
}

// LoadEnv applies environment variables PREFIX+NAME from environ (KEY=VALUE).
// Unknown variables are ignored.
func LoadEnv(dst any, prefix string, environ []string) error {
	for _, f := range Fields(dst) {
		key := f.Env(prefix) + "="
		for _, kv := range environ {
			if strings.HasPrefix(kv, key) {
				if err := f.Set(kv[len(key):]); err != nil {
					return fmt.Errorf("config: %s: %w", f.Env(prefix), err)
				}
			}
		}
	}
	return nil
}

// FlagSet returns a flag set with one flag per field, writing straight into dst.
// Parse it after LoadFile and LoadEnv so that flags win.
func FlagSet(dst any, name string, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	for _, f := range Fields(dst) {
		if f.v.Kind() == reflect.Bool {
			fs.Var(boolValue{value{f}}, f.Flag(), f.Help)
			continue
		}
		if isList(f.v) {
			fs.Var(&listValue{f: f}, f.Flag(), f.Help+" (repeatable)")
			continue
		}
		fs.Var(value{f}, f.Flag(), f.Help)
	}
	return fs
}

type value struct{ f Field }

func (v value) String() string {
	if !v.f.v.IsValid() {
		return ""
	}
	return v.f.String()
}

func (v value) Set(s string) error { return v.f.Set(s) }

// listValue is a repeatable flag: its first use replaces the list, later
// ones add to it.
type listValue struct {
	f    Field
	used bool
}

func (v *listValue) String() string {
	if !v.f.v.IsValid() {
		return ""
	}
	return v.f.String()
}

func (v *listValue) Set(s string) error {
	items := splitList(s)
	if v.used {
		items = append(v.f.v.Convert(reflect.TypeFor[[]string]()).Interface().([]string), items...)
	}
	v.used = true
	v.f.setList(items)
	return nil
}

type boolValue struct{ value }

func (boolValue) IsBoolFlag() bool { return true }

func (v boolValue) String() string { return v.value.String() }

// Print writes the effective configuration as YAML (one line per setting, with its
// help as a comment), in the syntax LoadYAML reads.
func Print(w io.Writer, src any) error {
	for _, f := range Fields(src) {
		var v any = f.String()
		if isList(f.v) {
			seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
			for _, item := range f.v.Convert(reflect.TypeFor[[]string]()).Interface().([]string) {
				seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: item})
			}
			v = seq
		}
		switch f.v.Kind() { // numbers and booleans unquoted, as a person writes them
		case reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint64, reflect.Float64:
			if _, ok := f.v.Interface().(encoding.TextMarshaler); !ok && f.v.Type() != reflect.TypeFor[time.Duration]() {
				v = f.v.Interface()
			}
		}
		val, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		if f.Help != "" {
			if _, err := fmt.Fprintf(w, "# %s\n", f.Help); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(w, "%s: %s", f.Name, val); err != nil {
			return err
		}
	}
	return nil
}

func byName(dst any) map[string]Field {
	m := map[string]Field{}
	for _, f := range Fields(dst) {
		m[f.Name] = f
	}
	return m
}

// suggest returns ` (did you mean "x"?)` for the closest known key, if close.
func suggest(key string, fields map[string]Field) string {
	best, bestD := "", 3
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if d := distance(key, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ErrHelp is returned by Load when -h or --help was asked for.
var ErrHelp = flag.ErrHelp

// Load applies, in order, the file named by the --config flag (or, without it, the
// environment variable PREFIX+"CONFIG"), the environment and the flags in args.
// extra may define flags that are not settings (say, --print-config). It returns
// the remaining arguments.
func Load(dst any, name, prefix string, environ, args []string, output io.Writer, extra ...func(*flag.FlagSet)) ([]string, error) {
	path := ""
	if i := slices.IndexFunc(environ, func(kv string) bool { return strings.HasPrefix(kv, prefix+"CONFIG=") }); i >= 0 {
		path = environ[i][len(prefix+"CONFIG="):]
	}
	// Find --config first: the file sits below the environment and the flags.
	for i, a := range args {
		switch {
		case a == "--config" || a == "-config":
			if i+1 >= len(args) {
				return nil, errors.New("config: --config needs a file name")
			}
			path = args[i+1]
		case strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "-config="):
			path = a[strings.IndexByte(a, '=')+1:]
		}
	}
	if path != "" {
		if err := LoadFile(dst, path); err != nil {
			return nil, err
		}
	}
	if err := LoadEnv(dst, prefix, environ); err != nil {
		return nil, err
	}
	fs := FlagSet(dst, name, output)
	fs.String("config", path, "YAML `file` of settings (flags and environment override it)")
	for _, f := range extra {
		f(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}
