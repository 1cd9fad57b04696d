package ctl

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// Interspersed reorders a command line so that flags may come anywhere, as
// docker and kubectl users expect, while urfave/cli v2 stops reading flags at
// the first plain argument and knows global flags only before the command:
// `ccctl token ls -o json` and `ccctl context set dev --server ...` become
// `ccctl -o json token ls` and `ccctl context set --server ... dev`.
// Everything after "--" is left as it is, and so is everything after the
// first plain argument of the commands in verbatimAfterFirstArg: in
// `ccctl run alpine ls -l`, "-l" is the container's.
func Interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	var global, path, names, local, plain []string
	cmds := app.Commands
	var leaf *cli.Command
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			plain = append(plain, rest[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			takesValue, isGlobal, known := lookupFlag(app.Flags, leaf, a)
			if !known {
				// Unknown: leave it where urfave/cli reports it clearly.
				local = append(local, a)
				continue
			}
			n := 1
			if takesValue && !strings.Contains(a, "=") && i+1 < len(rest) {
				n = 2
			}
			if isGlobal {
				global = append(global, rest[i:i+n]...)
			} else {
				local = append(local, rest[i:i+n]...)
			}
			i += n - 1
			continue
		}
		if len(plain) == 0 {
			if c := findCommand(cmds, a); c != nil {
				path, names = append(path, a), append(names, c.Name)
				leaf, cmds = c, c.Subcommands
				continue
			}
		}
		plain = append(plain, a)
		if leaf != nil && verbatimAfterFirstArg[strings.Join(names, " ")] {
			plain = append(plain, rest[i+1:]...)
			break
		}
	}
	out := append([]string{args[0]}, global...)
	out = append(out, path...)
	out = append(out, local...)
	return append(out, plain...)
}

// verbatimAfterFirstArg holds the commands (their path of canonical names)
// whose arguments after the first plain one belong to the command as they
// are, flags too.
var verbatimAfterFirstArg = map[string]bool{"run": true}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// lookupFlag finds arg among the leaf command's flags, then the global ones.
func lookupFlag(global []cli.Flag, leaf *cli.Command, arg string) (takesValue, isGlobal, known bool) {
	name := strings.TrimLeft(arg, "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		name = name[:i]
	}
	if name == "help" || name == "h" {
		return false, leaf == nil, true
	}
	if leaf != nil {
		if f := matchFlag(leaf.Flags, name); f != nil {
			return flagTakesValue(f), false, true
		}
	}
	if f := matchFlag(global, name); f != nil {
		return flagTakesValue(f), true, true
	}
	return false, false, false
}

func matchFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func flagTakesValue(f cli.Flag) bool {
	if d, ok := f.(cli.DocGenerationFlag); ok {
		return d.TakesValue()
	}
	return true
}
