package cli

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	ucli "github.com/urfave/cli/v2"
)

// The agent's config file (--config) is TOML whose keys are the names of
// its flags with "_" for "-": edge_http_addr = ":80", label = ["a=b"],
// log_level = "debug". A flag given on the command line wins over the
// file, which wins over the default. SIGHUP (or `cc-agent config reload`)
// reads it again; reloadKeys change at once, the others at the next start.

// notInFile are flags that have no place in the file.
var notInFile = map[string]bool{"config": true, "help": true, "version": true}

// fileSetting is one key of the file: its values as flag text (a list
// gives several) and its line.
type fileSetting struct {
	vals []string
	line int
}

// configFileError is a config file's problems, each with its line.
type configFileError struct {
	path     string
	problems []string
}

func (e *configFileError) Error() string {
	return e.path + ": " + strings.Join(e.problems, "; ")
}

// readConfigFile reads the agent's config file: each key must name a flag
// (other than config) and hold a string, number, boolean or list of them.
func readConfigFile(path string, flags []ucli.Flag) (map[string]fileSetting, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &configFileError{path: path, problems: []string{"cannot read the config file: " + err.Error()}}
	}
	known := map[string]bool{}
	for _, f := range flags {
		for _, n := range f.Names() {
			if !notInFile[n] {
				known[strings.ReplaceAll(n, "-", "_")] = true
			}
		}
	}
	lines := keyLines(data)
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, _ := de.Position()
			return nil, &configFileError{path: path, problems: []string{fmt.Sprintf("line %d: invalid TOML: %s; fix the syntax on this line", row, de.Error())}}
		}
		return nil, &configFileError{path: path, problems: []string{err.Error()}}
	}
	out := map[string]fileSetting{}
	var problems []string
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return lines[keys[i]] < lines[keys[j]] })
	for _, k := range keys {
		at := fmt.Sprintf("line %d: %s: ", lines[k], k)
		if !known[k] {
			problems = append(problems, at+"unknown key; the keys are the flags of `cc-agent --help` with _ for - (like edge_http_addr)")
			continue
		}
		vals, err := flagText(doc[k])
		if err != nil {
			problems = append(problems, at+err.Error())
			continue
		}
		out[k] = fileSetting{vals: vals, line: lines[k]}
	}
	if len(problems) > 0 {
		return nil, &configFileError{path: path, problems: problems}
	}
	return out, nil
}

// flagText turns a TOML value into the text of a flag.
func flagText(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case bool:
		return []string{strconv.FormatBool(x)}, nil
	case int64:
		return []string{strconv.FormatInt(x, 10)}, nil
	case float64:
		return []string{strconv.FormatFloat(x, 'f', -1, 64)}, nil
	case []any:
		var out []string
		for _, e := range x {
			s, err := flagText(e)
			if err != nil || len(s) != 1 {
				return nil, errors.New("a list holds strings or numbers only, like [\"a=b\", \"c=d\"]")
			}
			out = append(out, s...)
		}
		return out, nil
	case map[string]any:
		return nil, errors.New("must be a value, not a table: the file has no sections, write key = value at the top")
	default:
		return nil, fmt.Errorf("must be a string, number, true/false or a list, not %T", v)
	}
}

// keyLines maps each top-level key of a TOML document to its line.
func keyLines(data []byte) map[string]int {
	out := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.KeyValue && e.Kind != unstable.Table {
			continue
		}
		it := e.Key()
		if !it.Next() {
			continue
		}
		k := string(it.Node().Data)
		if _, ok := out[k]; !ok {
			out[k] = p.Shape(it.Node().Raw).Start.Line
		}
	}
	return out
}

// applyConfigFile sets every flag the file gives and the command line did
// not, and returns the flags the command line set.
func applyConfigFile(c *ucli.Context, path string) (cmdline map[string]bool, file map[string]fileSetting, err error) {
	cmdline = map[string]bool{}
	for _, f := range c.App.Flags {
		n := f.Names()[0]
		if c.IsSet(n) {
			cmdline[n] = true
		}
	}
	if path == "" {
		return cmdline, nil, nil
	}
	if file, err = readConfigFile(path, c.App.Flags); err != nil {
		return nil, nil, err
	}
	var problems []string
	for k, s := range file {
		name := strings.ReplaceAll(k, "_", "-")
		if cmdline[name] {
			continue
		}
		for _, v := range s.vals {
			if err := c.Set(name, v); err != nil {
				problems = append(problems, fmt.Sprintf("line %d: %s: %q: %v", s.line, k, v, err))
				break
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, nil, &configFileError{path: path, problems: problems}
	}
	return cmdline, file, nil
}
