package ctl

import (
	"io"
	"reflect"
	"testing"
)

func TestInterspersed(t *testing.T) {
	app := App(io.Discard, io.Discard)
	cases := []struct{ in, want []string }{
		{[]string{"ccctl", "status"}, []string{"ccctl", "status"}},
		{[]string{"ccctl", "status", "-o", "json"}, []string{"ccctl", "-o", "json", "status"}},
		{[]string{"ccctl", "token", "ls", "--output=json", "--addr", "h:1"}, []string{"ccctl", "--output=json", "--addr", "h:1", "token", "ls"}},
		{[]string{"ccctl", "context", "set", "dev", "--server", "h:1", "--use", "--token-file", "t"},
			[]string{"ccctl", "context", "set", "--server", "h:1", "--use", "--token-file", "t", "dev"}},
		{[]string{"ccctl", "token", "create", "-d", "x y", "--role", "admin"}, []string{"ccctl", "token", "create", "-d", "x y", "--role", "admin"}},
		{[]string{"ccctl", "token", "revoke", "abc", "-o", "json"}, []string{"ccctl", "-o", "json", "token", "revoke", "abc"}},
		// Unknown flags stay for urfave/cli to report.
		{[]string{"ccctl", "--bogus", "status"}, []string{"ccctl", "status", "--bogus"}},
		// After "--" nothing moves.
		{[]string{"ccctl", "token", "revoke", "--", "-o"}, []string{"ccctl", "token", "revoke", "--", "-o"}},
	}
	for _, c := range cases {
		if got := Interspersed(app, c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Interspersed(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}
