package emu

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the child if the parent dies.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
