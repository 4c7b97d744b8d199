package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// shell is an interactive bash in a pseudo-terminal, typed at as a person
// would.
type shell struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd

	mu   sync.Mutex
	out  []byte // everything the terminal showed
	seen int    // how much of out expect has consumed
}

// prompt is the shell's prompt, which no output of the tests contains.
const prompt = "PROMPT> "

// startShell starts bash --posix -i in a new session whose controlling
// terminal is a new pseudo-terminal, or skips the test if it cannot.
func startShell(t *testing.T, srv *backend.Server) *shell {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to do job control:", err)
	}
	master, slave := openPTY(t)
	sh := &shell{t: t, master: master}
	// POSIX mode, so that jobs names the signal that stopped a job.
	sh.cmd = exec.Command(bash, "--norc", "--noprofile", "--noediting", "--posix", "-i")
	sh.cmd.Env = append(testEnv(srv), "ENV=", "PS1="+prompt, "PS2=", "TERM=dumb", "HISTFILE=/dev/null", "PROMPT_COMMAND=")
	sh.cmd.Stdin, sh.cmd.Stdout, sh.cmd.Stderr = slave, slave, slave
	sh.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := sh.cmd.Start(); err != nil {
		t.Skip("cannot start bash:", err)
	}
	slave.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			sh.mu.Lock()
			sh.out = append(sh.out, buf[:n]...)
			sh.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		sh.cmd.Process.Kill()
		sh.cmd.Wait()
		if t.Failed() {
			sh.mu.Lock()
			t.Logf("the terminal showed:\n%s", strings.ReplaceAll(string(sh.out), "\r", ""))
			sh.mu.Unlock()
		}
	})
	sh.expect(regexp.QuoteMeta(prompt))
	return sh
}

// send types s.
func (sh *shell) send(s string) {
	sh.t.Helper()
	if _, err := sh.master.Write([]byte(s)); err != nil {
		sh.t.Fatal(err)
	}
}

// expect waits for the terminal to show a match of re after what earlier
// expects consumed, and consumes up to its end.
func (sh *shell) expect(re string) []string {
	sh.t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	waitFor(sh.t, "the terminal to show "+re, 10*time.Second, func() bool {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		loc := rx.FindSubmatchIndex(sh.out[sh.seen:])
		if loc == nil {
			return false
		}
		for i := 0; i < len(loc); i += 2 {
			m = append(m, string(sh.out[sh.seen+loc[i]:sh.seen+loc[i+1]]))
		}
		sh.seen += loc[1]
		return true
	})
	return m
}

// expectJob waits for the shell to report a job as re says, typing jobs
// until it has. The shell learns that a job stopped or ended from a
// SIGCHLD of its own, which may come after the test has seen the
// processes change; and it reports the change once, either before a
// prompt or in the output of jobs. So re is looked for in all that the
// terminal showed since the call, which expectJob consumes.
func (sh *shell) expectJob(re string) {
	sh.t.Helper()
	rx := regexp.MustCompile(re)
	sh.mu.Lock()
	from := sh.seen
	sh.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sh.send("jobs\n")
		sh.expect(`jobs\r\n(?s:.*?)` + regexp.QuoteMeta(prompt))
		sh.mu.Lock()
		shown := rx.Match(sh.out[from:])
		sh.mu.Unlock()
		if shown {
			return
		}
		if time.Now().After(deadline) {
			sh.t.Fatalf("the shell did not report a job matching %s in 10s", re)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// foreground returns the terminal's foreground process group.
func (sh *shell) foreground() int {
	var pgrp int32
	if err := ioctl(sh.master, syscall.TIOCGPGRP, unsafe.Pointer(&pgrp)); err != nil {
		sh.t.Fatal(err)
	}
	return int(pgrp)
}

// waitForeground waits until the terminal's foreground is a process group
// led by a process named comm that is not stopped, and returns its pid.
func (sh *shell) waitForeground(comm string) int {
	sh.t.Helper()
	var pid int
	waitFor(sh.t, comm+" in the foreground", 10*time.Second, func() bool {
		pid = sh.foreground()
		name, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		f := stat(pid)
		return strings.TrimSpace(string(name)) == comm && f != nil && f[0] != "T"
	})
	return pid
}

// waitState waits until each of pids is in state ("T": stopped).
func (sh *shell) waitState(state string, pids ...int) {
	sh.t.Helper()
	waitFor(sh.t, fmt.Sprintf("state %s of processes %v", state, pids), 10*time.Second, func() bool {
		for _, pid := range pids {
			if f := stat(pid); f == nil || f[0] != state {
				return false
			}
		}
		return true
	})
}

// catEchoes types a line at cat, in the foreground, sees it echoed by the
// terminal and then written by cat, ends cat with ^D, and checks that
// dimutex exits 0 and releases the lock.
func catEchoes(t *testing.T, sh *shell, srv *backend.Server, lock string) {
	t.Helper()
	sh.send("hello there\n")
	sh.expect(`hello there\r\nhello there\r\n`)
	sh.send("\x04") // ^D
	sh.expect(regexp.QuoteMeta(prompt))
	sh.send("echo status=$?\n")
	if m := sh.expect(`status=(\d+)\r\n`); m[1] != "0" {
		t.Fatalf("dimutex exited %s, want 0", m[1])
	}
	if g := generation(srv, lock); g != 0 {
		t.Errorf("the lock is still there (generation %d)", g)
	}
}

// ppid returns the parent of pid.
func ppid(t *testing.T, pid int) int {
	t.Helper()
	f := stat(pid)
	if f == nil {
		t.Fatalf("no process %d", pid)
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// TestRunJobControl runs dimutex under an interactive shell, as a person
// would, and uses job control on it: Ctrl-Z stops the job and gives the
// prompt back, jobs lists it as stopped, bg lets it run in the background
// until cat reads the terminal, and fg brings it back, with the terminal,
// so that cat reads what is typed.
func TestRunJobControl(t *testing.T) {
	t.Parallel()
	srv := backend.Memory.Start(t)
	sh := startShell(t, srv)

	sh.send(dimutexBin + " run " + srv.Bucket + " jobs -- cat\n")
	cat := sh.waitForeground("cat")
	dimutex := ppid(t, cat)
	t.Cleanup(func() { killAll([]int{cat, dimutex}) })
	gen := generation(srv, "jobs")
	if gen == 0 {
		t.Fatal("cat runs but the lock object is missing")
	}

	sh.send("\x1a") // ^Z
	sh.expect(`\[1\]\+\s+Stopped\(SIGTSTP\)\s+\S*dimutex run .* -- cat\r\n` + regexp.QuoteMeta(prompt))
	sh.waitState("T", dimutex, cat)
	if g := generation(srv, "jobs"); g != gen {
		t.Errorf("the lock changed while the job was stopped: generation %d, was %d", g, gen)
	}
	sh.send("jobs\n") // the shell has printed the stop already
	sh.expect(`\[1\]\+\s+Stopped\(SIGTSTP\)\s+\S*dimutex run .* -- cat\r\n` + regexp.QuoteMeta(prompt))

	// bg: cat reads the terminal from the background, and is stopped
	// again, by SIGTTIN, and so is the job.
	sh.send("bg\n")
	sh.expect(`\[1\]\+? \S*dimutex run .* -- cat &\r\n`)
	sh.waitState("T", dimutex, cat)
	sh.expectJob(`\[1\]\+\s+Stopped\(SIGTTIN\)\s+\S*dimutex run .* -- cat\r\n`)

	sh.send("fg\n")
	sh.expect(`dimutex run .* -- cat\r\n`)
	if pid := sh.waitForeground("cat"); pid != cat {
		t.Fatalf("the foreground is process %d, want cat (%d)", pid, cat)
	}
	catEchoes(t, sh, srv, "jobs")
}

// TestRunJobControlBackground starts dimutex in the background with &: cat
// reads the terminal, is stopped by SIGTTIN, and so is the job; fg brings
// it to the foreground, with the terminal.
func TestRunJobControlBackground(t *testing.T) {
	t.Parallel()
	srv := backend.Memory.Start(t)
	sh := startShell(t, srv)

	sh.send(dimutexBin + " run " + srv.Bucket + " jobs-bg -- cat &\n")
	dimutex, _ := strconv.Atoi(sh.expect(`\[1\] (\d+)\r\n`)[1])
	t.Cleanup(func() { killAll([]int{dimutex}) })
	sh.waitState("T", dimutex)
	sh.expectJob(`\[1\]\+\s+Stopped\(SIGTTIN\)\s+\S*dimutex run .* -- cat\r\n`)
	if generation(srv, "jobs-bg") == 0 {
		t.Fatal("the job is stopped but the lock object is missing")
	}

	sh.send("fg\n")
	sh.expect(`dimutex run .* -- cat\r\n`)
	cat := sh.waitForeground("cat")
	t.Cleanup(func() { killAll([]int{cat}) })
	if p := ppid(t, cat); p != dimutex {
		t.Fatalf("the foreground is process %d, whose parent is %d, not dimutex (%d)", cat, p, dimutex)
	}
	catEchoes(t, sh, srv, "jobs-bg")
}

// TestRunJobControlPipeline suspends a pipeline whose first command is
// dimutex: the whole job must stop, or the shell would wait for tr and
// never give the prompt back.
func TestRunJobControlPipeline(t *testing.T) {
	t.Parallel()
	srv := backend.Memory.Start(t)
	sh := startShell(t, srv)

	sh.send(dimutexBin + " run " + srv.Bucket + " pipe -- cat | tr a-z A-Z\n")
	cat := sh.waitForeground("cat")
	dimutex := ppid(t, cat)
	t.Cleanup(func() { killAll([]int{cat, dimutex}) })
	sh.send("\x1a") // ^Z
	sh.expect(`\[1\]\+\s+Stopped\(SIGTSTP\)\s+\S*dimutex run .* -- cat \| tr a-z A-Z\r\n` + regexp.QuoteMeta(prompt))
	sh.send("fg\n")
	sh.expect(`-- cat \| tr a-z A-Z\r\n`)
	sh.waitForeground("cat")
	sh.send("hello there\n")
	sh.expect(`hello there\r\nHELLO THERE\r\n`)
	sh.send("\x04")
	sh.expect(regexp.QuoteMeta(prompt))
	sh.send("echo status=$?\n")
	if m := sh.expect(`status=(\d+)\r\n`); m[1] != "0" {
		t.Fatalf("the pipeline exited %s, want 0", m[1])
	}
}

// TestRunJobControlSignals sends SIGTSTP to dimutex itself, as kill -TSTP
// would: it stops the command, and so the job; then kill %1 ends the
// stopped job (the shell sends SIGTERM and SIGCONT): dimutex passes SIGTERM
// on, and exits with the command's status once the lock is released.
func TestRunJobControlSignals(t *testing.T) {
	t.Parallel()
	srv := backend.Memory.Start(t)
	sh := startShell(t, srv)

	sh.send(dimutexBin + " run " + srv.Bucket + " signals -- cat\n")
	cat := sh.waitForeground("cat")
	dimutex := ppid(t, cat)
	t.Cleanup(func() { killAll([]int{cat, dimutex}) })
	if err := syscall.Kill(dimutex, syscall.SIGTSTP); err != nil {
		t.Fatal(err)
	}
	sh.expect(`\[1\]\+\s+Stopped\(SIGTSTP\)\s+\S*dimutex run .* -- cat\r\n` + regexp.QuoteMeta(prompt))
	sh.waitState("T", dimutex, cat)

	sh.send("kill %1\n")
	waitGone(t, []int{cat, dimutex}, 5*time.Second)
	sh.expectJob(`\[1\]\+\s+Done\(143\)\s+\S*dimutex run .* -- cat\r\n`)
	if g := generation(srv, "signals"); g != 0 {
		t.Errorf("the lock is still there (generation %d)", g)
	}
}

// TestRunJobControlLeaseRunsOut leaves a job stopped for longer than the
// TTL: the lease is not refreshed while dimutex is stopped, so on fg
// dimutex finds it lost, ends the command as for any loss, and exits 75.
func TestRunJobControlLeaseRunsOut(t *testing.T) {
	t.Parallel()
	srv := backend.Memory.Start(t)
	sh := startShell(t, srv)

	// A TTL of 2s, not the least, 1s: a loaded machine could lose a lease
	// of 1s before the ^Z.
	sh.send(dimutexBin + " run --ttl 2s --grace 1s " + srv.Bucket + " runs-out -- cat\n")
	cat := sh.waitForeground("cat")
	dimutex := ppid(t, cat)
	t.Cleanup(func() { killAll([]int{cat, dimutex}) })
	sh.send("\x1a") // ^Z
	sh.expect(`Stopped\(SIGTSTP\).*\r\n` + regexp.QuoteMeta(prompt))
	time.Sleep(3 * time.Second) // past the lease's deadline: at most the TTL after the ^Z
	sh.send("fg\n")
	sh.expect(`dimutex: lost the lock gs://` + srv.Bucket + `/runs-out while cat ran; sending it SIGTERM, and SIGKILL in 1s\r\n`)
	sh.expect(regexp.QuoteMeta(prompt))
	sh.send("echo status=$?\n")
	if m := sh.expect(`status=(\d+)\r\n`); m[1] != strconv.Itoa(exitLost) {
		t.Fatalf("dimutex exited %s, want %d", m[1], exitLost)
	}
}

// TestRunJobControlRedirected runs a command whose stdio are not the
// terminal: dimutex keeps the terminal's foreground, so Ctrl-Z and Ctrl-C
// reach dimutex, which passes them on; the job stops and ends as a whole
// all the same.
func TestRunJobControlRedirected(t *testing.T) {
	t.Parallel()
	srv := backend.Memory.Start(t)
	sh := startShell(t, srv)

	sh.send(dimutexBin + " run " + srv.Bucket + " redirected -- sleep 30 </dev/null >/dev/null 2>&1\n")
	waitFor(t, "the lock to be taken", 10*time.Second, func() bool { return generation(srv, "redirected") != 0 })
	dimutex := sh.foreground()
	sleep := 0
	waitFor(t, "sleep to start", 10*time.Second, func() bool {
		dir, _ := os.ReadDir("/proc")
		for _, e := range dir {
			pid, err := strconv.Atoi(e.Name())
			comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
			if f := stat(pid); err == nil && f != nil && f[1] == strconv.Itoa(dimutex) && string(comm) == "sleep\n" {
				sleep = pid
				return true
			}
		}
		return false
	})
	t.Cleanup(func() { killAll([]int{sleep, dimutex}) })

	sh.send("\x1a") // ^Z, to dimutex's process group
	sh.expect(`\[1\]\+\s+Stopped\(SIGTSTP\)\s+\S*dimutex run .* -- sleep 30.*\r\n` + regexp.QuoteMeta(prompt))
	sh.waitState("T", dimutex, sleep)
	sh.send("fg\n")
	sh.expect(`-- sleep 30.*\r\n`)
	waitFor(t, "the job to run", 10*time.Second, func() bool {
		f, g := stat(dimutex), stat(sleep)
		return f != nil && g != nil && f[0] != "T" && g[0] != "T" && sh.foreground() == dimutex
	})
	sh.send("\x03") // ^C, to dimutex's process group
	sh.expect(regexp.QuoteMeta(prompt))
	sh.send("echo status=$?\n")
	if m := sh.expect(`status=(\d+)\r\n`); m[1] != strconv.Itoa(128+int(syscall.SIGINT)) {
		t.Fatalf("dimutex exited %s, want %d", m[1], 128+int(syscall.SIGINT))
	}
	if g := generation(srv, "redirected"); g != 0 {
		t.Errorf("the lock is still there (generation %d)", g)
	}
}
