package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestWaitStopped stops and continues a child and checks that waitStopped
// reads each change from siginfo_t, once, without reaping the child.
func TestWaitStopped(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "30")
	// A group of its own, whose parent (this test) is in another group of
	// the session: the kernel discards SIGTSTP sent to an orphaned group,
	// and this test's own group may be one (say, under nohup in CI).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// next polls waitStopped until it reports a change, for up to 10 s.
	next := func() syscall.Signal {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if sig, ok := waitStopped(pid); ok {
				return sig
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatal("waitStopped reported no change in 10s")
		return 0
	}
	if sig, ok := waitStopped(pid); ok {
		t.Fatalf("waitStopped reported %v for a running child", sig)
	}
	for _, s := range []syscall.Signal{syscall.SIGSTOP, syscall.SIGTSTP} {
		if err := syscall.Kill(pid, s); err != nil {
			t.Fatal(err)
		}
		if got := next(); got != s {
			t.Fatalf("after %v, waitStopped reported %v", s, got)
		}
		if sig, ok := waitStopped(pid); ok {
			t.Fatalf("waitStopped reported %v again", sig)
		}
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if got := next(); got != syscall.SIGCONT {
			t.Fatalf("after SIGCONT, waitStopped reported %v", got)
		}
	}
	cmd.Process.Kill()
	if err := cmd.Wait(); err == nil || cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("Wait after waitStopped: %v, want death by SIGKILL", err)
	}
}

// TestReadStat checks the fields that orphaned reads of this process.
func TestReadStat(t *testing.T) {
	t.Parallel()
	st, err := readStat("self")
	if err != nil {
		t.Fatal(err)
	}
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if st.ppid != os.Getppid() || st.pgrp != syscall.Getpgrp() || st.sid != int(sid) {
		t.Errorf("readStat(self) = %+v; want ppid %d, pgrp %d, sid %d", st, os.Getppid(), syscall.Getpgrp(), sid)
	}
}
