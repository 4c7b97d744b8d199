package main

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"
)

// terminal is dimutex's controlling terminal, if it has one: a shell may
// then be doing job control (see jobs). When dimutex is in the terminal's
// foreground, and the terminal is one of its stdin, stdout and stderr, the
// command is put there instead, as a shell does for a job: a process group
// in the background that reads the terminal is stopped by SIGTTIN, and an
// interactive command would hang with the lease held. A nil *terminal does
// nothing.
type terminal struct {
	f        *os.File // the terminal, if dimutex opened /dev/tty itself
	fd       int
	handoff  bool // the command may be given the terminal: it is on stdio
	gave     bool // the command's group was put in the foreground
	ignoring bool // dimutex ignores SIGTTOU
}

// controllingTerminal returns dimutex's controlling terminal: the first of
// stdio that is it, else /dev/tty; nil if there is none. A command whose
// stdio are all elsewhere is not given the terminal, so that a Ctrl-C
// reaches dimutex's process group (a calling script, say) too.
func controllingTerminal(stdio ...any) *terminal {
	for _, s := range stdio {
		if f, ok := s.(*os.File); ok {
			fd := int(f.Fd())
			if _, err := tcgetpgrp(fd); err == nil { // fails unless it is ours
				return &terminal{fd: fd, handoff: true}
			}
		}
	}
	f, err := os.OpenFile("/dev/tty", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil // no controlling terminal
	}
	fd := int(f.Fd())
	if _, err := tcgetpgrp(fd); err != nil {
		f.Close()
		return nil
	}
	return &terminal{f: f, fd: fd}
}

// foreground reports whether dimutex's process group is the terminal's
// foreground.
func (t *terminal) foreground() bool {
	pgrp, err := tcgetpgrp(t.fd)
	return err == nil && pgrp == syscall.Getpgrp()
}

// configure makes the command's process group the terminal's foreground if
// dimutex's is (or was, before a start that failed).
func (t *terminal) configure(attr *syscall.SysProcAttr) {
	if t == nil || !t.handoff || !t.gave && !t.foreground() {
		return
	}
	attr.Foreground = true
	attr.Ctty = t.fd
	t.gave = true
}

// started is called once the command has started. dimutex ignores SIGTTOU
// from now on, so that writing its messages to the terminal, and taking
// the terminal back from the background, cannot stop it. (Not before: an
// ignored signal would stay ignored in the command.)
func (t *terminal) started() {
	if t == nil || t.ignoring {
		return
	}
	t.ignoring = true
	signal.Ignore(syscall.SIGTTOU)
}

// give puts the command's process group, pgid, in the foreground, if
// dimutex's group has just been put there (by fg).
func (t *terminal) give(pgid int) {
	if t == nil || !t.handoff || !t.foreground() {
		return
	}
	if tcsetpgrp(t.fd, pgid) == nil {
		t.gave = true
	}
}

// reclaim puts dimutex back in the terminal's foreground if it had put the
// command there: when the command stops, so that the shell finds the
// terminal with the job it stopped; when it exits (or fails to start), so
// that a Ctrl-C during the release reaches dimutex.
func (t *terminal) reclaim() {
	if t == nil || !t.gave {
		return
	}
	t.started()
	_ = tcsetpgrp(t.fd, syscall.Getpgrp())
	t.gave = false
}

// close closes the terminal if dimutex opened it.
func (t *terminal) close() {
	if t != nil && t.f != nil {
		t.f.Close()
	}
}

func tcgetpgrp(fd int) (int, error) {
	var pgrp int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp)))
	if errno != 0 {
		return 0, errno
	}
	return int(pgrp), nil
}

func tcsetpgrp(fd, pgrp int) error {
	p := int32(pgrp)
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCSPGRP, uintptr(unsafe.Pointer(&p)))
	if errno != 0 {
		return errno
	}
	return nil
}
