package main

import (
	"encoding/binary"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// jobs makes the command and dimutex one job for the shell, as if the
// command ran without dimutex. The command runs in a process group of its
// own, which the terminal stops on Ctrl-Z (or on a read from the
// background) without dimutex: the shell would wait for dimutex and never
// see the job stop. So when the command stops, dimutex takes the terminal
// back and stops its own process group, the job the shell knows, with the
// same signal; when the shell continues that job (fg, bg), dimutex gives
// the terminal to the command if the job is in the foreground, and
// continues the command. A SIGTSTP sent to dimutex itself is passed on to
// the command, whose stop then stops dimutex.
//
// dimutex stops only where a shell can continue it: it has a controlling
// terminal, and its process group is not orphaned (POSIX's rule, by which
// the kernel also ignores Ctrl-Z in an orphaned group). Otherwise the
// command stays stopped, and dimutex keeps the lease, as flock(1) would;
// a Ctrl-Z in an orphaned group is undone at once, since nothing could
// ever continue the job.
type jobs struct {
	c       chan os.Signal
	tty     *terminal
	pid     int  // the command's pid and process group id, once started
	stopped bool // the command has stopped, as far as dimutex knows
}

// watchJobs starts catching the signals of job control; it is called
// before the command starts, so that none is missed.
func watchJobs(tty *terminal) *jobs {
	j := &jobs{c: make(chan os.Signal, 8), tty: tty}
	sigs := []os.Signal{syscall.SIGCHLD, syscall.SIGCONT}
	if !signal.Ignored(syscall.SIGTSTP) { // ignored, it stays so for the command too
		sigs = append(sigs, syscall.SIGTSTP)
	}
	signal.Notify(j.c, sigs...)
	return j
}

// signals returns the channel of job control signals.
func (j *jobs) signals() <-chan os.Signal { return j.c }

// stop stops catching the signals.
func (j *jobs) stop() { signal.Stop(j.c) }

// isStopped reports whether the command was last seen stopped.
func (j *jobs) isStopped() bool { return j.stopped }

// handle acts on a signal from signals.
func (j *jobs) handle(sig os.Signal) {
	if j.pid == 0 {
		return
	}
	switch sig {
	case syscall.SIGCHLD:
		j.check()
	case syscall.SIGTSTP:
		_ = syscall.Kill(-j.pid, syscall.SIGTSTP)
	case syscall.SIGCONT:
		j.tty.give(j.pid)
		_ = syscall.Kill(-j.pid, syscall.SIGCONT)
	}
}

// check reads the command's stops and continues that were not yet read,
// and follows each stop.
func (j *jobs) check() {
	for {
		sig, ok := waitStopped(j.pid)
		if !ok {
			return
		}
		if sig == syscall.SIGCONT {
			j.stopped = false
			continue
		}
		j.stopped = true
		switch {
		case j.tty != nil && !orphaned():
			j.tty.reclaim()
			stopJob(sig)
			// Continued: the SIGCONT that did it is in j.c.
		case j.tty != nil && sig == syscall.SIGTSTP:
			_ = syscall.Kill(-j.pid, syscall.SIGCONT)
		}
	}
}

// pPID is waitid's P_PID.
const pPID = 1

// siginfo_t's si_pid and si_status: after three ints, padded to 8 bytes on
// 64-bit systems.
var (
	siPID    = 3 * 4
	siStatus = 5 * 4
)

func init() {
	if unsafe.Sizeof(uintptr(0)) == 8 {
		siPID, siStatus = 4*4, 6*4
	}
}

// waitStopped returns the signal that stopped the child pid, or SIGCONT if
// it was continued, if it did either since the last call; ok is false if it
// did neither. It does not reap the child (no WEXITED), so that
// exec.Cmd.Wait still can.
func waitStopped(pid int) (sig syscall.Signal, ok bool) {
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info[0])),
			syscall.WSTOPPED|syscall.WCONTINUED|syscall.WNOHANG, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return 0, false // ECHILD: reaped
		}
		break
	}
	if binary.NativeEndian.Uint32(info[siPID:]) == 0 {
		return 0, false // nothing new (WNOHANG)
	}
	// For CLD_STOPPED the stop signal, for CLD_CONTINUED SIGCONT.
	return syscall.Signal(binary.NativeEndian.Uint32(info[siStatus:])), true
}

// stopJob stops dimutex's process group with sig, and returns once dimutex
// has been continued (or at once if the kernel discarded the stop).
func stopJob(sig syscall.Signal) {
	group := -syscall.Getpgrp()
	if sig == syscall.SIGSTOP {
		_ = syscall.Kill(group, sig)
		return
	}
	// dimutex catches SIGTSTP and ignores SIGTTOU, and os/signal cannot
	// restore a default action, so set the actions by a raw
	// rt_sigaction, and put Go's back afterwards. First the rest of the
	// job, while dimutex ignores sig (a stop signal sent to the group
	// would stop dimutex at some point, perhaps after it has put its
	// handler back); then dimutex, by a signal to this very thread, which
	// stops it before tgkill returns.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ign, dfl, old := sigaction{1}, sigaction{}, sigaction{} // SIG_IGN, SIG_DFL
	if rtSigaction(sig, &ign, &old) != nil {
		_ = syscall.Kill(group, syscall.SIGSTOP)
		return
	}
	_ = syscall.Kill(group, sig)
	_ = rtSigaction(sig, &dfl, nil)
	_ = syscall.Tgkill(syscall.Getpid(), syscall.Gettid(), sig)
	// Continued. (SIGCONT discarded any stop signal still pending.)
	_ = rtSigaction(sig, &old, nil)
}

// sigaction holds a kernel struct sigaction, whatever its layout, in which
// the handler comes first: at most 32 bytes on the systems where
// rt_sigaction takes an 8-byte signal set; elsewhere the call fails, and
// stopJob uses SIGSTOP.
type sigaction [8]uint64

func rtSigaction(sig syscall.Signal, act, old *sigaction) error {
	var o uintptr
	if old != nil {
		o = uintptr(unsafe.Pointer(old))
	}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(act)), o, 8, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// orphaned reports whether dimutex's process group is orphaned: no member
// has a parent in another group of the same session, so no shell can
// continue it if it stops.
func orphaned() bool {
	self, err := readStat("self")
	if err != nil {
		return true
	}
	// Usually the parent is the shell, which settles it.
	if parent, err := readStat(strconv.Itoa(self.ppid)); err == nil && parent.sid == self.sid && parent.pgrp != self.pgrp {
		return false
	}
	dir, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	procs := map[int]procStat{}
	for _, e := range dir {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if st, err := readStat(e.Name()); err == nil {
				procs[pid] = st
			}
		}
	}
	for _, p := range procs {
		if parent, ok := procs[p.ppid]; ok && p.pgrp == self.pgrp && parent.sid == self.sid && parent.pgrp != self.pgrp {
			return false
		}
	}
	return true
}

// procStat is what orphaned needs of /proc/PID/stat.
type procStat struct{ ppid, pgrp, sid int }

func readStat(pid string) (procStat, error) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// "pid (comm) state ppid pgrp session ...", where comm may hold
	// anything, parentheses and spaces included.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return procStat{}, syscall.EINVAL
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 4 {
		return procStat{}, syscall.EINVAL
	}
	var st procStat
	for j, p := range []*int{&st.ppid, &st.pgrp, &st.sid} {
		if *p, err = strconv.Atoi(f[1+j]); err != nil {
			return procStat{}, err
		}
	}
	return st, nil
}
