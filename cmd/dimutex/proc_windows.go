package main

import (
	"os"
	"os/exec"
	"syscall"
)

// Windows has neither process groups nor signals to send: both end the
// command.
const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)

// forwardedSignals returns the signals that dimutex passes on to the
// command.
func forwardedSignals() []os.Signal { return []os.Signal{os.Interrupt} }

// setProcessGroup does nothing on Windows, where the console already sends
// Ctrl-C to the command.
func setProcessGroup(cmd *exec.Cmd, tty *terminal) {}

// signalGroup ends the command when told to terminate or kill it; the
// console delivers an interrupt by itself.
func signalGroup(p *os.Process, sig os.Signal) {
	if sig == sigTerm || sig == sigKill {
		_ = p.Kill()
	}
}

// resumeGroup does nothing: Windows does not stop processes by signal.
func resumeGroup(p *os.Process) {}

// exitStatus returns the command's exit code.
func exitStatus(ps *os.ProcessState) int { return ps.ExitCode() }

// signalExit returns the exit status for dimutex itself stopped by sig.
func signalExit(sig os.Signal) int { return exitSignalBase + 2 }
