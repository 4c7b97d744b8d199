package main

import (
	"io"
	"os"
	"os/signal"
	"syscall"
	"unsafe"
)

// terminal is the terminal on dimutex's stdin when dimutex is in its
// foreground. The command is then put in the foreground instead, as a shell
// does for a job: a process group in the background that reads the
// terminal is stopped by SIGTTIN, and an interactive command would hang
// with the lease held. A nil *terminal does nothing.
type terminal struct {
	fd       int
	ignoring bool // dimutex ignores SIGTTOU
	ignored  bool // SIGTTOU was ignored before that
}

// foregroundTerminal returns stdin's terminal if dimutex is in its
// foreground, else nil.
func foregroundTerminal(stdin io.Reader) *terminal {
	f, ok := stdin.(*os.File)
	if !ok {
		return nil
	}
	fd := int(f.Fd())
	if pgrp, err := tcgetpgrp(fd); err != nil || pgrp != syscall.Getpgrp() {
		return nil // not a terminal, or dimutex runs in the background
	}
	return &terminal{fd: fd}
}

// configure makes the command's process group the terminal's foreground.
func (t *terminal) configure(attr *syscall.SysProcAttr) {
	if t == nil {
		return
	}
	attr.Foreground = true
	attr.Ctty = t.fd
}

// background is called once the command has started and dimutex is in
// the background. dimutex ignores SIGTTOU from now on, so that writing its
// messages to the terminal, and taking the terminal back, cannot stop it.
// (Not before: an ignored signal would stay ignored in the command.)
func (t *terminal) background() {
	if t == nil || t.ignoring {
		return
	}
	t.ignoring = true
	t.ignored = signal.Ignored(syscall.SIGTTOU)
	signal.Ignore(syscall.SIGTTOU)
}

// reclaim puts dimutex back in the terminal's foreground once the command
// has exited (or failed to start), so that a Ctrl-C during the release
// reaches it.
func (t *terminal) reclaim() {
	if t == nil {
		return
	}
	t.background()
	_ = tcsetpgrp(t.fd, syscall.Getpgrp())
	if !t.ignored {
		signal.Reset(syscall.SIGTTOU)
	}
	t.ignoring = false
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
