// Command cc-controlplane is a Container Codes control-plane server.
package main

import (
	"os"

	"github.com/containercodes/cc/controlplane/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdout, os.Stderr))
}
