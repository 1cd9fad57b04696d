package ctl

import (
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func TestInterspersed(t *testing.T) {
	app := App(io.Discard, io.Discard)
	cases := []struct{ in, want []string }{
		{[]string{"ccctl", "status"}, []string{"ccctl", "status"}},
		{[]string{"ccctl", "status", "-o", "json"}, []string{"ccctl", "--output", "json", "status"}},
		{[]string{"ccctl", "token", "ls", "--output=json", "--addr", "h:1"}, []string{"ccctl", "--output=json", "--addr", "h:1", "token", "ls"}},
		{[]string{"ccctl", "context", "set", "dev", "--server", "h:1", "--use", "--token-file", "t"},
			[]string{"ccctl", "context", "set", "--server", "h:1", "--use", "--token-file", "t", "dev"}},
		{[]string{"ccctl", "token", "create", "-d", "x y", "--role", "admin"}, []string{"ccctl", "token", "create", "--description", "x y", "--role", "admin"}},
		{[]string{"ccctl", "token", "revoke", "abc", "-o", "json"}, []string{"ccctl", "--output", "json", "token", "revoke", "abc"}},
		// Unknown flags stay for urfave/cli to report.
		{[]string{"ccctl", "--bogus", "status"}, []string{"ccctl", "status", "--bogus"}},
		// After "--" nothing moves.
		{[]string{"ccctl", "token", "revoke", "--", "-o"}, []string{"ccctl", "token", "revoke", "--", "-o"}},
		// run: flags before IMAGE are run's (or global); everything after it is
		// the container's command, flags included.
		{[]string{"ccctl", "run", "alpine", "ls", "-l"}, []string{"ccctl", "run", "alpine", "ls", "-l"}},
		{[]string{"ccctl", "run", "--name", "web", "-p", "8080:80", "nginx", "-g", "daemon off;"},
			[]string{"ccctl", "run", "--name", "web", "--publish", "8080:80", "nginx", "-g", "daemon off;"}},
		{[]string{"ccctl", "run", "-o", "json", "-d", "alpine", "echo", "-o", "json", "--name", "x"},
			[]string{"ccctl", "--output", "json", "run", "--detach", "alpine", "echo", "-o", "json", "--name", "x"}},
		{[]string{"ccctl", "run", "alpine", "--", "sh", "-c", "x"}, []string{"ccctl", "run", "alpine", "--", "sh", "-c", "x"}},
		{[]string{"ccctl", "exec", "-i", "box", "ls", "-l"}, []string{"ccctl", "exec", "--interactive", "box", "ls", "-l"}},
		{[]string{"ccctl", "exec", "-e", "A=1", "box", "--", "env", "-u", "x"}, []string{"ccctl", "exec", "--env", "A=1", "box", "--", "env", "-u", "x"}},
		{[]string{"ccctl", "run", "--name", "x", "--", "alpine", "-d"}, []string{"ccctl", "run", "--name", "x", "--", "alpine", "-d"}},
		{[]string{"ccctl", "run", "-e", "A=1", "alpine", "--addr", "h:1"}, []string{"ccctl", "run", "--env", "A=1", "alpine", "--addr", "h:1"}},
		// Other commands still take flags anywhere, their own before global ones.
		{[]string{"ccctl", "logs", "web", "-f", "--tail", "10", "-o", "json"}, []string{"ccctl", "--output", "json", "logs", "--follow", "--tail", "10", "web"}},
		{[]string{"ccctl", "stop", "web", "--timeout", "5s"}, []string{"ccctl", "stop", "--timeout", "5s", "web"}},
		{[]string{"ccctl", "--timeout", "5s", "stop", "web"}, []string{"ccctl", "--timeout", "5s", "stop", "web"}},
		{[]string{"ccctl", "image", "load", "app.tar", "-o", "json"}, []string{"ccctl", "--output", "json", "image", "load", "app.tar"}},
		{[]string{"ccctl", "rm", "a", "-f", "b"}, []string{"ccctl", "rm", "--force", "a", "b"}},
		// A plain argument named like a command is not one: only run's image stops.
		{[]string{"ccctl", "node", "rm", "run", "-f"}, []string{"ccctl", "node", "rm", "--force", "run"}},
		// An alias is spelled by the flag's name, so that both may be used.
		{[]string{"ccctl", "run", "-e", "A=1", "--env", "B=2", "-o=json", "alpine"},
			[]string{"ccctl", "--output=json", "run", "--env", "A=1", "--env", "B=2", "alpine"}},
		// service create: flags before and after NAME are its own; the next
		// plain argument starts the command, which takes the rest.
		{[]string{"ccctl", "service", "create", "web", "--image", "nginx", "-e", "A=1", "nginx", "-g", "daemon off;", "-o", "json"},
			[]string{"ccctl", "service", "create", "--image", "nginx", "--env", "A=1", "web", "nginx", "-g", "daemon off;", "-o", "json"}},
		{[]string{"ccctl", "svc", "create", "-o", "json", "web", "--image", "busybox", "--", "sh", "-c", "x"},
			[]string{"ccctl", "--output", "json", "svc", "create", "--image", "busybox", "web", "--", "sh", "-c", "x"}},
		// service update: flags anywhere; the command only after --.
		{[]string{"ccctl", "service", "update", "web", "--replicas", "3", "--", "sh", "-c", "x"},
			[]string{"ccctl", "service", "update", "--replicas", "3", "web", "--", "sh", "-c", "x"}},
		// Short flags combine; the last of a group may take a value.
		{[]string{"ccctl", "ps", "-aq"}, []string{"ccctl", "ps", "--all", "--quiet"}},
		{[]string{"ccctl", "ps", "-qo", "json"}, []string{"ccctl", "--output", "json", "ps", "--quiet"}},
		{[]string{"ccctl", "logs", "-fn", "10", "web"}, []string{"ccctl", "logs", "--follow", "--tail", "10", "web"}},
		{[]string{"ccctl", "run", "-de", "A=1", "alpine", "-al"}, []string{"ccctl", "run", "--detach", "--env", "A=1", "alpine", "-al"}},
		// A flag that takes a value takes the rest of the group.
		{[]string{"ccctl", "logs", "-fn10", "web"}, []string{"ccctl", "logs", "--follow", "--tail", "10", "web"}},
		{[]string{"ccctl", "run", "-deA=1", "alpine"}, []string{"ccctl", "run", "--detach", "--env", "A=1", "alpine"}},
		// An unknown letter: left for urfave/cli to report.
		{[]string{"ccctl", "ps", "-az"}, []string{"ccctl", "ps", "-az"}},
		// A multi-letter flag given with one dash is still that flag.
		{[]string{"ccctl", "node", "label", "n1", "-rm", "k"}, []string{"ccctl", "node", "label", "-rm", "k", "n1"}},
	}
	for _, c := range cases {
		if got := Interspersed(app, c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Interspersed(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

// stop's own --timeout must not hide the global one.
func TestGlobalTimeoutUnderStop(t *testing.T) {
	app := App(io.Discard, io.Discard)
	var global time.Duration
	var local string
	for _, c := range app.Commands {
		if c.Name == "stop" {
			c.Action = func(c *cli.Context) error {
				global, local = globalTimeout(c), c.String("timeout")
				return nil
			}
		}
	}
	args := []string{"ccctl", "stop", "web", "--timeout", "3s"}
	if err := app.Run(Interspersed(app, args)); err != nil {
		t.Fatal(err)
	}
	if global != 15*time.Second || local != "3s" {
		t.Errorf("global %v, stop's %q; want 15s and 3s", global, local)
	}
	app = App(io.Discard, io.Discard)
	for _, c := range app.Commands {
		if c.Name == "stop" {
			c.Action = func(c *cli.Context) error { global = globalTimeout(c); return nil }
		}
	}
	if err := app.Run([]string{"ccctl", "--timeout", "4s", "stop", "web"}); err != nil || global != 4*time.Second {
		t.Errorf("--timeout 4s before stop: %v, %v", global, err)
	}
}
