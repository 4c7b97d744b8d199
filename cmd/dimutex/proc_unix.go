//go:build unix

package main

import (
	"os"
	"os/exec"
	"syscall"
)

// The signals that end the command: first the polite one, then the one it
// cannot ignore.
const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)

// forwardedSignals returns the signals that dimutex passes on to the
// command: the ones a terminal, a supervisor or an operator sends to stop a
// job.
func forwardedSignals() []os.Signal {
	return []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}
}

// setProcessGroup starts the command in a process group of its own, so
// that a signal reaches everything it started (a shell script's children
// too), and so that dimutex can end all of it when the lease is lost.
func setProcessGroup(cmd *exec.Cmd, tty *terminal) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	tty.configure(cmd.SysProcAttr)
}

// signalGroup sends sig to the command's process group. A group that is
// already gone is not an error.
func signalGroup(p *os.Process, sig os.Signal) {
	s, ok := sig.(syscall.Signal)
	if !ok {
		_ = p.Signal(sig)
		return
	}
	_ = syscall.Kill(-p.Pid, s) // the group's id is its leader's pid
}

// exitStatus returns the status a shell would report for the command:
// its exit code, or 128+N if signal N killed it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignalBase + int(ws.Signal())
	}
	return ps.ExitCode()
}

// signalExit returns the exit status for dimutex itself stopped by sig.
func signalExit(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return exitSignalBase + int(s)
	}
	return exitFailed
}
