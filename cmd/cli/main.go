// Command rangekv is the command-line client of rangekv: key-value
// commands (put, get, delete, cas, incr, scan), a load generator (bench)
// and a local cluster for trying things out (playground).
//
// Until the placement driver exists it talks to the stores directly
// (--stores). The user-facing contract (commands, JSON documents, exit
// codes) is in INTERFACES.md; the command logic lives in small functions
// over io.Writers so that tests run it in-process.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
