//go:build !linux

package main

import "syscall"

// childAttr is nil outside Linux: children are stopped by the bench's
// deferred cleanup only.
func childAttr() *syscall.SysProcAttr { return nil }
