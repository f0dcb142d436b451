//go:build !linux

// Child process attributes elsewhere.

package main

import "syscall"

// childProcAttr puts a store child in its own process group (see the Linux
// version). Without Pdeathsig, a playground killed with kill -9 leaves its
// stores running.
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
