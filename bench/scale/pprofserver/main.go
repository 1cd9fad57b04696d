// Command pprofserver is cc-controlplane with Go's net/http/pprof handlers
// served on the address in CC_PPROF_ADDR (loopback, no authentication): the
// same server, built only for benchmarks that profile it (bench/scale.sh
// with PROFILE=1). cc-controlplane itself serves no pprof endpoint.
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"

	"github.com/containercodes/cc/controlplane/cli"
)

func main() {
	if addr := os.Getenv("CC_PPROF_ADDR"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pprofserver: CC_PPROF_ADDR: %v\n", err)
			os.Exit(1)
		}
		go func() { _ = http.Serve(ln, nil) }() // lives as long as the process
	}
	os.Exit(cli.Main(os.Args, os.Stdout, os.Stderr))
}
