// Command loggertest serves containerd's binary log protocol for the
// runtime's tests, as `cc-agent logger` does in production: it calls
// runtime.RunLogger with the arguments that follow "logger".
package main

import (
	"fmt"
	"os"

	"github.com/containercodes/cc/agent/runtime"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "logger" {
		args = args[1:]
	}
	if err := runtime.RunLogger(args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
