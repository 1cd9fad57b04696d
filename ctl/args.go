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
// first plain arguments of the commands in verbatimAfter: in
// `ccctl run alpine ls -l`, "-l" is the container's. A flag given by an
// alias is spelled by its name, as urfave/cli refuses two spellings of one
// flag: `-e A=1 --env B=2` becomes `--env A=1 --env B=2`. Short flags
// combine as in docker: `ps -aq` is `ps -a -q`, and the last of them may
// take a value (`logs -fn 10`).
func Interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	var global, path, names, local, plain []string
	cmds := app.Commands
	var leaf *cli.Command
	rest := append([]string(nil), args[1:]...)
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			plain = append(plain, rest[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			f, isGlobal, known := lookupFlag(app.Flags, leaf, a)
			if !known {
				if split := splitShort(app.Flags, leaf, a); split != nil {
					rest = append(rest[:i], append(split, rest[i+1:]...)...)
					i--
					continue
				}
				// Unknown: leave it where urfave/cli reports it clearly.
				local = append(local, a)
				continue
			}
			flag := []string{byName(a, f)}
			if f != nil && flagTakesValue(f) && !strings.Contains(a, "=") && i+1 < len(rest) {
				i++
				flag = append(flag, rest[i])
			}
			if isGlobal {
				global = append(global, flag...)
			} else {
				local = append(local, flag...)
			}
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
		if n := verbatimAfter[strings.Join(names, " ")]; leaf != nil && n > 0 && len(plain) == n {
			plain = append(plain, rest[i+1:]...)
			break
		}
	}
	out := append([]string{args[0]}, global...)
	out = append(out, path...)
	out = append(out, local...)
	return append(out, plain...)
}

// splitShort spells a group of single-letter flags ("-aq") as separate
// flags ("-a", "-q"), as getopt and docker read them, or returns nil when
// arg is not one: each letter must be a flag of the command or a global
// one, and the rest of the group after a flag that takes a value is that
// value ("-fn10" is "-f -n 10").
func splitShort(global []cli.Flag, leaf *cli.Command, arg string) []string {
	if strings.HasPrefix(arg, "--") || len(arg) < 3 {
		return nil
	}
	letters := arg[1:]
	var out []string
	for j, r := range letters {
		short := "-" + string(r)
		f, _, known := lookupFlag(global, leaf, short)
		if !known || r == '=' {
			return nil
		}
		out = append(out, short)
		if f != nil && flagTakesValue(f) {
			if rest := letters[j+len(string(r)):]; rest != "" {
				out = append(out, rest)
			}
			break
		}
	}
	return out
}

// verbatimAfter holds the commands (their path of canonical names) whose
// arguments, once n plain ones are read, belong to the container's command
// as they are, flags too: for run, n counts its IMAGE; for service create,
// its NAME and the first word of the command; for job submit, its IMAGE; for exec, its CONTAINER.
var verbatimAfter = map[string]int{"run": 1, "service create": 2, "job submit": 1, "exec": 1}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// lookupFlag finds arg among the leaf command's flags, then the global
// ones. --help is known with no flag.
func lookupFlag(global []cli.Flag, leaf *cli.Command, arg string) (f cli.Flag, isGlobal, known bool) {
	name := flagName(arg)
	if name == "help" || name == "h" {
		return nil, leaf == nil, true
	}
	if leaf != nil {
		if f := matchFlag(leaf.Flags, name); f != nil {
			return f, false, true
		}
	}
	if f := matchFlag(global, name); f != nil {
		return f, true, true
	}
	return nil, false, false
}

// flagName is the name in "-n", "--name" or "--name=value".
func flagName(arg string) string {
	name := strings.TrimLeft(arg, "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		name = name[:i]
	}
	return name
}

// byName spells arg, a use of flag f, with f's name instead of an alias.
func byName(arg string, f cli.Flag) string {
	if f == nil || flagName(arg) == f.Names()[0] {
		return arg
	}
	_, value, hasValue := strings.Cut(arg, "=")
	if hasValue {
		return "--" + f.Names()[0] + "=" + value
	}
	return "--" + f.Names()[0]
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
