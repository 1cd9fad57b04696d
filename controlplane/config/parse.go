package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Load reads a TOML file over Default(). Unknown keys are errors. It returns
// a *FileError on any problem; see Parse for what the Config holds then.
func Load(path string) (Config, error) {
	return load(path, true)
}

// LoadUnvalidated is Load without Validate: for a caller that applies flags
// over the file and validates the result itself.
func LoadUnvalidated(path string) (Config, error) {
	return load(path, false)
}

func load(path string, validate bool) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		if errors.Is(err, fs.ErrNotExist) {
			msg = "it does not exist; check the path or create the file"
		}
		return Config{}, &FileError{Path: path, Problems: Problems{{Msg: "cannot read the config file: " + msg}}}
	}
	return parse(path, data, validate)
}

// Parse is Load on bytes; name is used in messages (the file path).
//
// It reports syntax errors, unknown keys and values of the wrong type with
// their lines, then runs Validate and attaches to each of its problems the
// line where the key is set (0 when the value is a default). Every error is a
// *FileError with at least one Problem.
//
// When the file decodes cleanly but fails Validate, the decoded Config is
// returned along with the error; otherwise an error comes with the zero
// Config.
func Parse(name string, data []byte) (Config, error) {
	return parse(name, data, true)
}

func parse(name string, data []byte, validate bool) (Config, error) {
	keys := scanKeys(data)
	var ps Problems

	// The decoder hands non-string values to Duration.UnmarshalText with no
	// position (and accepts a bare 0), so check duration values here first.
	for key, t := range schema.leaves {
		if t == diskFloorType {
			if at, ok := keys[key]; ok && at.kind != unstable.String {
				ps = append(ps, Problem{Line: at.line, Key: key,
					Msg: fmt.Sprintf("must be a size or percent string like \"512MiB\" or \"5%%\", not %s; write it in quotes", kindWord(at.kind))})
			}
			continue
		}
		if t != durationType {
			continue
		}
		if at, ok := keys[key]; ok && at.kind != unstable.String {
			ps = append(ps, Problem{Line: at.line, Key: key,
				Msg: fmt.Sprintf("must be a duration string like \"1s\", not %s; write it in quotes with a unit", kindWord(at.kind))})
		}
	}

	cfg := Default()
	err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&cfg)
	decoded := err == nil
	if err != nil {
		var strict *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case errors.As(err, &strict):
			// Strict errors come once the whole document is decoded.
			decoded = true
			for i := range strict.Errors {
				ps = addNew(ps, unknownKeyProblem(&strict.Errors[i], keys))
			}
		case errors.As(err, &de):
			ps = addNew(ps, decodeProblem(de))
		default:
			if len(ps) == 0 {
				ps = append(ps, Problem{Msg: strings.TrimPrefix(err.Error(), "toml: ")})
			}
		}
	}

	onlyValidation := false
	if decoded && validate {
		if verr := cfg.Validate(); verr != nil {
			onlyValidation = len(ps) == 0
			var vps Problems
			if !errors.As(verr, &vps) {
				vps = Problems{{Msg: verr.Error()}}
			}
			for _, p := range vps {
				if at, ok := keys[p.Key]; ok {
					p.Line = at.line
				}
				ps = addNew(ps, p)
			}
		}
	}

	if len(ps) == 0 {
		return cfg, nil
	}
	// Known lines first, in file order; problems with no line last.
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].Line, ps[j].Line
		if a == 0 || b == 0 {
			return a != 0 && b == 0
		}
		return a < b
	})
	if !onlyValidation {
		cfg = Config{}
	}
	return cfg, &FileError{Path: name, Problems: ps}
}

// addNew appends p unless a problem for the same key is already listed, so
// that one bad value is reported once.
func addNew(ps Problems, p Problem) Problems {
	if p.Key != "" {
		for _, q := range ps {
			if q.Key == p.Key {
				return ps
			}
		}
	}
	return append(ps, p)
}

// decodeProblem turns a decoding error (syntax or type) into a Problem.
func decodeProblem(de *toml.DecodeError) Problem {
	line, _ := de.Position()
	key := strings.Join(de.Key(), ".")
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	typeErr := strings.HasPrefix(msg, "cannot decode TOML") || strings.Contains(msg, "cannot be stored in") ||
		strings.HasPrefix(msg, "cannot store")
	switch t, leaf := schema.leaves[key]; {
	case strings.Contains(msg, "already defined"):
		msg = "is set more than once; keep only one"
	case leaf && typeErr:
		msg = typeHint(t)
	case schema.tables[key] != nil && typeErr:
		msg = fmt.Sprintf("must be a table; write it as [%s] followed by key = value lines", key)
	case key == "":
		msg = "invalid TOML: " + msg + "; fix the syntax on this line"
	}
	return Problem{Line: line, Key: key, Msg: msg}
}

// unknownKeyProblem describes a key that Config has no field for, listing the
// keys that the enclosing table does have.
func unknownKeyProblem(de *toml.DecodeError, keys map[string]keyAt) Problem {
	line, _ := de.Position()
	parts := []string(de.Key())
	// go-toml reports a key inside an inline table without the table's name
	// (x for log = { x = 1 }); recover the full key from the scan.
	if at, ok := keys[strings.Join(parts, ".")]; !ok || at.line != line {
		suffix := "." + strings.Join(parts, ".")
		var match string
		n := 0
		for k, at := range keys {
			if at.line == line && strings.HasSuffix(k, suffix) {
				match = k
				n++
			}
		}
		if n == 1 {
			parts = strings.Split(match, ".")
		}
	}
	// The deepest known table that encloses the unknown key.
	table := ""
	for i := 1; i < len(parts); i++ {
		cand := strings.Join(parts[:i], ".")
		if schema.tables[cand] == nil {
			break
		}
		table = cand
	}
	what := "key"
	if strings.Contains(de.Error(), "table") {
		what = "table"
	}
	where := "top-level keys"
	if table != "" {
		where = "keys in [" + table + "]"
	}
	return Problem{
		Line: line,
		Key:  strings.Join(parts, "."),
		Msg: fmt.Sprintf("unknown %s; remove it or check the spelling (known %s: %s)",
			what, where, strings.Join(schema.tables[table], ", ")),
	}
}

// typeHint says what kind of value a key of type t takes.
func typeHint(t reflect.Type) string {
	switch {
	case t == durationType:
		return "must be a duration string like \"1s\""
	case t == diskFloorType:
		return "must be a size or percent string like \"512MiB\" or \"5%\""
	case t.Kind() == reflect.String:
		return "must be a string in double quotes, like \"text\""
	case t.Kind() == reflect.Bool:
		return "must be true or false (without quotes)"
	case t.Kind() == reflect.Uint64:
		return "must be a whole number, 0 or more, without quotes, like 8192"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "must be a list of strings, like [\"example.com\", \"10.0.0.5\"]"
	default:
		return "has the wrong type of value"
	}
}

// kindWord names a TOML value kind for a user.
func kindWord(k unstable.Kind) string {
	switch k {
	case unstable.Integer, unstable.Float:
		return "a number"
	case unstable.Bool:
		return "true or false"
	case unstable.Array:
		return "a list"
	case unstable.InlineTable, unstable.Table, unstable.ArrayTable:
		return "a table"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "a date or time"
	default:
		return "this value"
	}
}

var durationType = reflect.TypeOf(Duration{})

var diskFloorType = reflect.TypeOf(DiskFloor{})

// schema lists the keys of Config by dotted name, from its toml tags.
var schema = buildSchema()

type keySchema struct {
	leaves map[string]reflect.Type // dotted key of a value -> Go type
	tables map[string][]string     // dotted key of a table ("" for the top) -> its keys, in order
}

func buildSchema() keySchema {
	s := keySchema{leaves: map[string]reflect.Type{}, tables: map[string][]string{}}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		names := []string{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			names = append(names, name)
			full := name
			if prefix != "" {
				full = prefix + "." + name
			}
			if f.Type.Kind() == reflect.Struct && f.Type != durationType && f.Type != diskFloorType {
				walk(full, f.Type)
			} else {
				s.leaves[full] = f.Type
			}
		}
		s.tables[prefix] = names
	}
	walk("", reflect.TypeOf(Config{}))
	return s
}

// keyAt is where a key is first set in a document and what kind of value it
// has (Table for table headers and the leading parts of dotted keys).
type keyAt struct {
	line int
	kind unstable.Kind
}

// scanKeys maps every dotted key set in the document to where it is set. It
// stops at the first syntax error, keeping what it found before it.
func scanKeys(data []byte) map[string]keyAt {
	lines := newLineIndex(data)
	found := map[string]keyAt{}
	set := func(parts []string, n *unstable.Node, kind unstable.Kind) {
		key := strings.Join(parts, ".")
		if _, ok := found[key]; !ok {
			found[key] = keyAt{line: lines.at(n.Raw.Offset), kind: kind}
		}
	}
	// walkKey records each part of a (possibly dotted) key under prefix and
	// returns the full key; the last part gets kind, the others Table.
	walkKey := func(prefix []string, it unstable.Iterator, kind unstable.Kind) []string {
		parts := append([]string(nil), prefix...)
		for it.Next() {
			n := it.Node()
			parts = append(parts, string(n.Data))
			k := unstable.Table
			if it.IsLast() {
				k = kind
			}
			set(parts, n, k)
		}
		return parts
	}
	var keyValue func(prefix []string, kv *unstable.Node)
	keyValue = func(prefix []string, kv *unstable.Node) {
		v := kv.Value()
		parts := walkKey(prefix, kv.Key(), v.Kind)
		if v.Kind == unstable.InlineTable {
			children := v.Children()
			for children.Next() {
				if c := children.Node(); c.Kind == unstable.KeyValue {
					keyValue(parts, c)
				}
			}
		}
	}

	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = walkKey(nil, e.Key(), e.Kind)
		case unstable.KeyValue:
			keyValue(table, e)
		}
	}
	return found
}

// lineIndex finds the 1-based line of a byte offset.
type lineIndex []int // offsets of the '\n' bytes

func newLineIndex(data []byte) lineIndex {
	var idx lineIndex
	for i, b := range data {
		if b == '\n' {
			idx = append(idx, i)
		}
	}
	return idx
}

func (idx lineIndex) at(offset uint32) int {
	// The number of newlines before offset, plus one.
	return sort.SearchInts(idx, int(offset)) + 1
}
