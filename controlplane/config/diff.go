package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
)

// Change is a key whose value differs between two configurations.
type Change struct {
	Key      string // dotted TOML key, e.g. "log.level"
	Old, New string // the values, as the file writes them ("(hidden)" for secrets)
}

// String formats the change as "key: old -> new".
func (c Change) String() string { return c.Key + ": " + c.Old + " -> " + c.New }

// Under says whether the change is of key, or of a key in the table key.
func (c Change) Under(key string) bool {
	return c.Key == key || strings.HasPrefix(c.Key, key+".")
}

// secretKeys are never shown in a Change.
var secretKeys = map[string]bool{"join_token": true}

// Diff lists the keys whose values differ between old and cur, in the
// order of Config's fields.
func Diff(old, cur Config) []Change {
	var out []Change
	var walk func(prefix string, a, b reflect.Value)
	walk = func(prefix string, a, b reflect.Value) {
		t := a.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			av, bv := a.Field(i), b.Field(i)
			if f.Type.Kind() == reflect.Struct && f.Type != durationType && f.Type != diskFloorType {
				walk(key, av, bv)
				continue
			}
			if reflect.DeepEqual(av.Interface(), bv.Interface()) {
				continue
			}
			c := Change{Key: key, Old: formatValue(av), New: formatValue(bv)}
			if secretKeys[key] {
				c.Old, c.New = "(hidden)", "(hidden)"
			}
			out = append(out, c)
		}
	}
	walk("", reflect.ValueOf(old), reflect.ValueOf(cur))
	return out
}

func formatValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case Duration:
		return x.Duration.String()
	case DiskFloor:
		b, _ := x.MarshalText()
		return string(b)
	case string:
		return fmt.Sprintf("%q", x)
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	default:
		return fmt.Sprint(x)
	}
}

// CopyKey sets the value of a dotted key, or of a table and all its keys,
// in dst to its value in src. An unknown key copies nothing.
func CopyKey(dst *Config, src Config, key string) {
	d, v := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
	for _, part := range strings.Split(key, ".") {
		i := fieldByTag(d.Type(), part)
		if i < 0 {
			return
		}
		d, v = d.Field(i), v.Field(i)
	}
	d.Set(v)
}

// fieldByTag is the index of the field of struct t whose toml name is
// name, or -1.
func fieldByTag(t reflect.Type, name string) int {
	if t.Kind() != reflect.Struct {
		return -1
	}
	for i := 0; i < t.NumField(); i++ {
		if n, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); n == name {
			return i
		}
	}
	return -1
}

// InFile turns the problems of Validate (err) into a *FileError of the
// config file path, each with the line where the file sets its key (none
// when a flag or a default set it). Other errors pass through.
func InFile(path string, err error) error {
	var ps Problems
	if err == nil || path == "" || !errors.As(err, &ps) {
		return err
	}
	data, rerr := os.ReadFile(path)
	if rerr != nil {
		return err
	}
	keys := scanKeys(data)
	out := make(Problems, len(ps))
	for i, p := range ps {
		if at, ok := keys[p.Key]; ok {
			p.Line = at.line
		}
		out[i] = p
	}
	return &FileError{Path: path, Problems: out}
}
