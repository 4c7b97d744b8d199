//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dimutexBin is the binary under test, built once by TestMain and never
// changed afterwards.
var dimutexBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "dimutex-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	dimutexBin = filepath.Join(dir, "dimutex")
	args := []string{"build", "-o", dimutexBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building dimutex:", err)
		return 1
	}
	return m.Run()
}

// result is how a run of the binary ended.
type result struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// proc is the binary running in the background.
type proc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	start          time.Time
	done           chan struct{}
	res            result
}

// testEnv returns the environment for the binary: this one's, pointed at
// an emulator address where nothing listens, with no inherited lease. The
// tests here need no emulator; those that do are in the e2e module
// (e2e/cli).
func testEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STORAGE_EMULATOR_HOST=") && !strings.HasPrefix(kv, "DIMUTEX_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	host := "127.0.0.1:1"
	// A binary built with -race sleeps 1 s at exit by default, to let
	// goroutines report races; races are still reported without it.
	env = append(env, "GORACE=atexit_sleep_ms=0", "STORAGE_EMULATOR_HOST="+host)
	return append(env, extra...)
}

// start starts the binary with args. It is killed, if still running, when
// the test ends.
func start(t *testing.T, stdin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(dimutexBin, args...)
	p.cmd.Env = append(testEnv(), env...)
	p.cmd.Stdin = strings.NewReader(stdin)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	// A command that dimutex left behind must not keep the test waiting
	// for its pipes.
	p.cmd.WaitDelay = 2 * time.Second
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		err := p.cmd.Wait()
		p.res = result{
			code:    p.cmd.ProcessState.ExitCode(),
			stdout:  p.stdout.String(),
			stderr:  p.stderr.String(),
			elapsed: time.Since(p.start),
		}
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.res.code = 128 + int(ws.Signal())
		}
		if err != nil && p.res.code == 0 {
			p.res.code = -1
			p.res.stderr += "\n(test: " + err.Error() + ")"
		}
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the binary to exit and returns how.
func (p *proc) wait() result {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("dimutex %q did not exit in 20s; stderr:\n%s", p.cmd.Args[1:], p.res.stderr)
	}
	if strings.Contains(p.res.stderr, "DATA RACE") {
		p.t.Errorf("dimutex %q: data race:\n%s", p.cmd.Args[1:], p.res.stderr)
	}
	return p.res
}

// dimutexRun runs the binary with args to completion.
func dimutexRun(t *testing.T, args ...string) result {
	t.Helper()
	return start(t, "", nil, args...).wait()
}

// expectCode fails the test unless r exited with code.
func expectCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}
