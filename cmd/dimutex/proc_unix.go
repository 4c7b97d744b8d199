//go:build unix

package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// The signals that end the command: first the polite one, then the one it
// cannot ignore.
const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)

// forwardedSignals returns the signals that dimutex passes on to the
// command: the ones a terminal, a supervisor or an operator sends to end a
// job. A signal that dimutex inherited as ignored (nohup ignores SIGHUP; a
// non-interactive shell's background jobs ignore SIGINT and SIGQUIT) stays
// ignored, by dimutex and by the command, as it would for the command
// alone.
func forwardedSignals() []os.Signal {
	var sigs []os.Signal
	for _, s := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT} {
		if !signal.Ignored(s) {
			sigs = append(sigs, s)
		}
	}
	return sigs
}

// setProcessGroup starts the command in a process group of its own, so
// that a signal reaches everything it started (a shell script's children
// too), and so that dimutex can end all of it when the lease is lost. On
// Linux the command also gets SIGKILL if dimutex dies (see startCommand).
func setProcessGroup(cmd *exec.Cmd, tty *terminal) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	tty.configure(cmd.SysProcAttr)
	setDeathSignal(cmd.SysProcAttr)
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

// resumeGroup sends SIGCONT to the command's process group, so that a
// stopped command acts on the signal it was just sent.
func resumeGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGCONT)
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
