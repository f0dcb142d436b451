// The process entry point: the command line runs through runIO (root.go),
// whose result is the exit code.

package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(runIO(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
