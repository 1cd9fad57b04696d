// Command ccctl is the command-line client of a Container Codes cluster.
package main

import (
	"os"

	"github.com/containercodes/cc/ctl"
)

func main() {
	os.Exit(ctl.Main(os.Args, os.Stdout, os.Stderr))
}
