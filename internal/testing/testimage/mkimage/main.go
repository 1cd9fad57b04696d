// Command mkimage writes a tiny OCI image archive built from the host's
// busybox-static, for `make dev` and benchmarks: nothing is downloaded.
//
//	mkimage NAME FILE.tar
package main

import (
	"fmt"
	"os"

	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/testing/testimage"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mkimage NAME FILE.tar")
		os.Exit(2)
	}
	data, err := testimage.BuildBusybox(os.Args[1])
	if err == nil {
		err = pki.WriteFile(os.Args[2], data, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}
