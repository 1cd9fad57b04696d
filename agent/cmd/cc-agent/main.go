// Command cc-agent runs a Container Codes node: it joins a cluster and runs
// the containers assigned to its host on containerd.
package main

import (
	"os"

	"github.com/containercodes/cc/agent/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdout, os.Stderr))
}
