// Child process attributes on Linux.

package main

import "syscall"

// childProcAttr puts a child (store or placement member) in its own
// process group, so that only the playground signals it (a Ctrl-C at the
// terminal reaches the playground, which stops the stores, then the
// placement members), and makes it get SIGTERM if the playground dies
// without stopping it (kill -9), so no child is left behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
