package cli_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// groupScript starts a grandchild in the command's process group, writes
// "SHPID SLEEPPID" to $1, and waits.
const groupScript = `sleep 300 & echo "$$ $!" > "$1.tmp" && mv "$1.tmp" "$1"; wait`

// TestRunKilled SIGKILLs dimutex while its command and a grandchild in the
// command's process group run: the watchdog kills the whole group at once,
// and exits.
func TestRunKilled(t *testing.T) {
	t.Parallel()
	srv := backend.Memory.Start(t)
	pids := filepath.Join(t.TempDir(), "pids")
	p := start(t, srv, "", nil, "run", srv.Bucket, "killed", "--", "sh", "-c", groupScript, "sh", pids)
	procs := scanPIDs(t, waitFile(t, pids))
	t.Cleanup(func() { killAll(procs) })
	watchdog := watchdogOf(t, p.cmd.Process.Pid)
	if watchdog == 0 {
		t.Error("dimutex has no watchdog")
	}

	killed := time.Now()
	p.signal(syscall.SIGKILL)
	group := waitGone(t, procs, time.Second)
	gone := waitGone(t, []int{watchdog}, time.Second)
	t.Logf("the command (pid %d) and its grandchild (pid %d) were gone %v after dimutex got SIGKILL, the watchdog %v",
		procs[0], procs[1], group.Sub(killed).Round(time.Microsecond), gone.Sub(killed).Round(time.Microsecond))
	if r := p.wait(); r.code != 128+int(syscall.SIGKILL) {
		t.Errorf("dimutex exited %d, want death by SIGKILL", r.code)
	}
}

// TestRunKilledDeathSignal kills the watchdog first, then dimutex: the
// command's first process still dies at once, of its parent-death signal.
// (Its grandchild survives: that is the watchdog's part.)
func TestRunKilledDeathSignal(t *testing.T) {
	t.Parallel()
	srv := backend.Memory.Start(t)
	pids := filepath.Join(t.TempDir(), "pids")
	p := start(t, srv, "", nil, "run", srv.Bucket, "deathsig", "--", "sh", "-c", groupScript, "sh", pids)
	procs := scanPIDs(t, waitFile(t, pids))
	t.Cleanup(func() { killAll(procs) })
	if watchdog := watchdogOf(t, p.cmd.Process.Pid); watchdog != 0 {
		if err := syscall.Kill(watchdog, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, []int{watchdog}, 5*time.Second)
	}

	killed := time.Now()
	p.signal(syscall.SIGKILL)
	gone := waitGone(t, procs[:1], time.Second)
	t.Logf("without the watchdog, the command (pid %d) was gone %v after dimutex got SIGKILL", procs[0], gone.Sub(killed).Round(time.Microsecond))
}

// TestRunWatchdogDone checks that the watchdog stands down when the command
// ends normally: what the command left running in its group is not killed
// (as with flock), and the watchdog exits.
func TestRunWatchdogDone(t *testing.T) {
	t.Parallel()
	srv := backend.Memory.Start(t)
	dir := t.TempDir()
	pids, proceed := filepath.Join(dir, "pids"), filepath.Join(dir, "proceed")
	script := `sleep 300 >/dev/null 2>&1 & echo "$$ $!" > "$1.tmp" && mv "$1.tmp" "$1"; while [ ! -e "$2" ]; do sleep 0.02; done`
	p := start(t, srv, "", nil, "run", srv.Bucket, "done", "--", "sh", "-c", script, "sh", pids, proceed)
	procs := scanPIDs(t, waitFile(t, pids))
	t.Cleanup(func() { killAll(procs) })
	watchdog := watchdogOf(t, p.cmd.Process.Pid)
	if watchdog == 0 {
		t.Error("dimutex has no watchdog")
	}
	if err := os.WriteFile(proceed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	expectCode(t, p.wait(), 0)
	waitGone(t, []int{watchdog}, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	if !alive(procs[1]) {
		t.Error("the watchdog killed the command's group after a normal end")
	}
}

// scanPIDs parses "PID PID ...".
func scanPIDs(t *testing.T, s string) []int {
	t.Helper()
	var pids []int
	for _, f := range strings.Fields(s) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("bad pid list %q", s)
		}
		pids = append(pids, pid)
	}
	return pids
}

// killAll kills whatever of pids is left.
func killAll(pids []int) {
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// stat returns the fields of /proc/PID/stat after the command name: state,
// ppid, pgrp, ...; nil if there is no such process.
func stat(pid int) []string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(data), ')')
	return strings.Fields(string(data[i+1:]))
}

// alive reports whether pid runs or is stopped: it exists and is not a
// zombie waiting for a parent that does not reap it.
func alive(pid int) bool {
	f := stat(pid)
	return f != nil && f[0] != "Z" && f[0] != "X"
}

// waitGone waits until none of pids is alive, and returns when it saw that;
// it fails the test after timeout.
func waitGone(t *testing.T, pids []int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		now := time.Now()
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return now
		}
		if now.After(deadline) {
			var states []string
			for _, pid := range left {
				if f := stat(pid); f != nil {
					states = append(states, strconv.Itoa(pid)+":"+f[0])
				}
			}
			t.Fatalf("processes %v still alive %v later (pid:state %v)", left, timeout, states)
		}
		time.Sleep(time.Millisecond)
	}
}

// watchdogOf returns the pid of dimutex's watchdog, a child that runs
// dimutex's binary with one internal argument, or 0 if none appears within
// 2 s.
func watchdogOf(t *testing.T, dimutex int) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		dir, _ := os.ReadDir("/proc")
		for _, e := range dir {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			args := strings.Split(string(cmdline), "\x00")
			if f := stat(pid); f != nil && f[1] == strconv.Itoa(dimutex) && len(args) >= 2 && args[1] == "-dimutex-internal-watchdog" {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0
}
