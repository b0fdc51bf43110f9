package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/BurntSushi/toml"
)

// The file is decoded into plain maps and read key by key against the
// schema, rather than into a struct. That way a type error in one key does
// not hide the others, and an unknown key inside a [[peers]] entry is named
// with its index (toml.MetaData.Undecoded drops array indices).

// decodeTOML parses the TOML syntax of data.
func decodeTOML(name string, data []byte) (map[string]any, error) {
	var doc map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, &FieldError{File: name, Line: perr.Position.Line, Reason: perr.Message}
		}
		return nil, &FieldError{File: name, Reason: err.Error()}
	}
	return doc, nil
}

// reader collects every problem found in one file.
type reader struct {
	file string
	errs []error
}

func (r *reader) fail(key, format string, args ...any) {
	r.errs = append(r.errs, &FieldError{File: r.file, Key: key, Reason: fmt.Sprintf(format, args...)})
}

func (r *reader) root(m map[string]any) *table {
	return &table{r: r, m: m, used: map[string]bool{}}
}

// table is one TOML table being read; path is "" for the top level, else
// e.g. "raft" or "peers[2]".
type table struct {
	r    *reader
	path string
	m    map[string]any
	used map[string]bool
}

func (t *table) key(name string) string {
	if t.path == "" {
		return name
	}
	return t.path + "." + name
}

func (t *table) has(name string) bool {
	_, ok := t.m[name]
	return ok
}

func (t *table) get(name string) (any, bool) {
	t.used[name] = true
	v, ok := t.m[name]
	return v, ok
}

// require reports a missing key; it returns whether the key is present.
func (t *table) require(name string) bool {
	if t.has(name) {
		return true
	}
	t.r.fail(t.key(name), "required")
	return false
}

// finish reports every key of the table that no reader asked for.
func (t *table) finish() {
	for _, k := range slices.Sorted(maps.Keys(t.m)) {
		if !t.used[k] {
			t.r.fail(t.key(k), "unknown key")
		}
	}
}

// integer reads an integer in [lo, hi]; def when absent. ok is false when
// the key is present but unusable (the problem is already reported).
func (t *table) integer(name string, def, lo, hi int64) (n int64, ok bool) {
	v, found := t.get(name)
	if !found {
		return def, true
	}
	n, isInt := v.(int64)
	if !isInt {
		t.r.fail(t.key(name), "want an integer, got %s", describe(v))
		return def, false
	}
	if n < lo || n > hi {
		t.r.fail(t.key(name), "%d is out of range %d-%d", n, lo, hi)
		return def, false
	}
	return n, true
}

// maxMillis bounds every *_ms key: an hour is already far beyond any sane
// timing, and the bound keeps durations from overflowing.
const maxMillis = int64(time.Hour / time.Millisecond)

// millis reads a duration in milliseconds, at least lo; def when absent.
func (t *table) millis(name string, def time.Duration, lo int64) (time.Duration, bool) {
	n, ok := t.integer(name, int64(def/time.Millisecond), lo, maxMillis)
	return time.Duration(n) * time.Millisecond, ok
}

func (t *table) boolean(name string) (b, ok bool) {
	v, found := t.get(name)
	if !found {
		return false, true
	}
	b, isBool := v.(bool)
	if !isBool {
		t.r.fail(t.key(name), "want a boolean, got %s", describe(v))
		return false, false
	}
	return b, true
}

func (t *table) str(name string) (s string, ok bool) {
	v, found := t.get(name)
	if !found {
		return "", true
	}
	s, isStr := v.(string)
	if !isStr {
		t.r.fail(t.key(name), "want a string, got %s", describe(v))
		return "", false
	}
	return s, true
}

// strs reads an array of strings.
func (t *table) strs(name string) (ss []string, ok bool) {
	v, found := t.get(name)
	if !found {
		return nil, true
	}
	arr, isArr := v.([]any)
	if !isArr {
		t.r.fail(t.key(name), "want an array of strings, got %s", describe(v))
		return nil, false
	}
	ok = true
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			t.r.fail(fmt.Sprintf("%s[%d]", t.key(name), i), "want a string, got %s", describe(e))
			ok = false
			continue
		}
		ss = append(ss, s)
	}
	return ss, ok
}

// sub reads a nested table; an absent one reads as empty, a wrong type as
// nil.
func (t *table) sub(name string) *table {
	v, found := t.get(name)
	if !found {
		v = map[string]any{}
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		t.r.fail(t.key(name), "want a table, got %s", describe(v))
		return nil
	}
	return &table{r: t.r, path: t.key(name), m: m, used: map[string]bool{}}
}

// tables reads an array of tables ([[name]] or an inline array of inline
// tables). Entries that are not tables are reported and come back nil, so
// indices stay those of the file.
func (t *table) tables(name string) ([]*table, bool) {
	v, found := t.get(name)
	if !found {
		return nil, true
	}
	var elems []any
	switch a := v.(type) {
	case []map[string]any:
		for _, m := range a {
			elems = append(elems, m)
		}
	case []any:
		elems = a
	default:
		t.r.fail(t.key(name), "want an array of tables, got %s", describe(v))
		return nil, false
	}
	out := make([]*table, len(elems))
	ok := true
	for i, e := range elems {
		path := fmt.Sprintf("%s[%d]", t.key(name), i)
		m, isMap := e.(map[string]any)
		if !isMap {
			t.r.fail(path, "want a table, got %s", describe(e))
			ok = false
			continue
		}
		out[i] = &table{r: t.r, path: path, m: m, used: map[string]bool{}}
	}
	return out, ok
}

// describe names the TOML type of a decoded value for error messages.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case time.Time:
		return "datetime"
	case []any, []map[string]any:
		return "array"
	case map[string]any:
		return "table"
	default:
		return fmt.Sprintf("%T", v)
	}
}
