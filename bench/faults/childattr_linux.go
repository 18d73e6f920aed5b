package main

import "syscall"

// childAttr makes a child process die with the bench (SIGKILL when the
// bench exits, even on a crash or Ctrl-C), so no worker, control plane or
// redis-server outlives a run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
