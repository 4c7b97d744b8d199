//go:build unix

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// The watchdog kills the command's process group at once if dimutex dies,
// by any means, SIGKILL included, so that nothing the command started
// outlives the lease that dimutex can no longer refresh. It is dimutex's
// own binary run again, in a session and process group of its own, with
// no terminal and none of the command's stdio: its stdin is a pipe whose
// write end only dimutex holds (close-on-exec, so the command never
// inherits it). dimutex writes the command's process group id, then, when
// the command has exited, "done". If the pipe ends without "done", dimutex
// has died: the watchdog sends SIGKILL to the group, and exits.
//
// Why a process and not the kernel alone: Linux's parent-death signal
// (Pdeathsig, which dimutex also sets) reaches only the command's first
// process, not a grandchild in its group, and exists nowhere else. And
// why "done": after the command has been reaped, its group id can be
// reused by an unrelated group; "done" ends the watch before that can
// happen.

// watchdogArg, as the only argument, runs dimutex as the watchdog. No one
// types it: dimutex's commands are words.
const watchdogArg = "-dimutex-internal-watchdog"

// watchdogDone tells the watchdog that the command has ended normally.
const watchdogDone = "done"

func init() {
	// Before main, so that the watchdog does not depend on the command
	// line parser.
	if len(os.Args) == 2 && os.Args[1] == watchdogArg {
		os.Exit(watchdogMain(os.Stdin))
	}
}

// watchdogMain is the watchdog: it reads the process group id, then waits
// for "done" or the end of its stdin.
func watchdogMain(in *os.File) int {
	setProcessName("dimutex-watch")
	// In a session of its own, the watchdog gets no signal from the
	// terminal or the job; it ignores them anyway, so that one aimed at
	// dimutex by name (pkill -INT dimutex) does not end the watch.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	r := bufio.NewReader(in)
	pgid := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // a line cut short by dimutex's death is not a command
		}
		line = strings.TrimSuffix(line, "\n")
		if line == watchdogDone {
			return 0
		}
		if n, err := strconv.Atoi(line); err == nil && n > 1 {
			pgid = n
		}
	}
	if pgid > 1 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return 0
}

// watchdog is dimutex's end of a running watchdog.
type watchdog struct {
	w   *os.File // the pipe's write end
	cmd *exec.Cmd
}

// startWatchdog starts the watchdog, before the command starts.
func startWatchdog() (*watchdog, error) {
	exe, err := selfExe()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe() // both ends close-on-exec
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{"dimutex-watchdog", watchdogArg},
		Env:         os.Environ(),
		Dir:         "/",
		Stdin:       r, // stdout and stderr are /dev/null
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, err
	}
	return &watchdog{w: w, cmd: cmd}, nil
}

// watch tells the watchdog the process group to kill if dimutex dies.
func (wd *watchdog) watch(pgid int) error {
	_, err := fmt.Fprintf(wd.w, "%d\n", pgid)
	return err
}

// done ends the watch, after the command has exited, and before its group
// id can have been reused. The watchdog then exits at once; wait reaps it.
func (wd *watchdog) done() {
	if wd.w == nil {
		return
	}
	_, _ = wd.w.WriteString(watchdogDone + "\n")
	wd.w.Close()
	wd.w = nil
}

// wait ends the watch if done has not, and waits for the watchdog to exit.
// It is called last, once the lock is released: a watchdog that someone
// has stopped delays only dimutex's exit.
func (wd *watchdog) wait() {
	wd.done()
	_ = wd.cmd.Wait()
}
