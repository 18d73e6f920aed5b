package stripetest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the started stripe-mock exit with the test binary.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
