//go:build unix && !linux

package main

import (
	"os"
	"syscall"
)

// setDeathSignal does nothing: only Linux signals a child when its parent
// dies. The watchdog (watchdog_unix.go) kills the command's process group.
func setDeathSignal(*syscall.SysProcAttr) {}

// selfExe is the path of dimutex's own binary.
func selfExe() (string, error) { return os.Executable() }

// setProcessName does nothing outside Linux.
func setProcessName(string) {}
