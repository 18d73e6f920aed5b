//go:build !linux

package stripetest

import "os/exec"

// setDeathSignal does nothing here: the started stripe-mock outlives the
// test binary and is reused by the next run only if it is on 12111.
func setDeathSignal(*exec.Cmd) {}
