// Process attributes on Linux: own process group, parent-death signal.

package procs

import "syscall"

// sysProcAttr puts the child in its own process group, so that a Ctrl-C
// at the terminal reaches only the launcher (which stops its children in
// its own order), and has the kernel send it deathSig (zero: SIGKILL)
// when the launcher dies without stopping it (kill -9, a crash), so no
// child is left behind.
func sysProcAttr(deathSig syscall.Signal) *syscall.SysProcAttr {
	if deathSig == 0 {
		deathSig = syscall.SIGKILL
	}
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}
}
