//go:build !linux

// Process attributes elsewhere: own process group only.

package procs

import "syscall"

// sysProcAttr puts the child in its own process group (see the Linux
// version). There is no parent-death signal: a launcher killed with
// kill -9 leaves its children running.
func sysProcAttr(syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
