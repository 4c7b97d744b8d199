package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// commandSpec is the command that supervise runs.
type commandSpec struct {
	path           string   // as exec.LookPath found it
	args           []string // argv, the name first
	env            []string
	stdin          io.Reader
	stdout, stderr io.Writer
	tty            *terminal
}

// running is a started command.
type running struct {
	cmd    *exec.Cmd
	pid    int           // also its process group's id
	exited chan struct{} // closed once it has exited and been reaped
}

// startCommand starts the command and waits for it in the background.
//
// It does both from one goroutine locked to its OS thread until the command
// has exited. On Linux the command gets SIGKILL when the thread that
// started it exits (Pdeathsig), not when the process does; the Go runtime
// may end a thread, but not one that a goroutine holds. The lock keeps the
// signal armed for as long as the command runs, so that it fires only when
// dimutex dies.
func startCommand(s commandSpec) (*running, error) {
	r := &running{exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd, err := s.start()
		if err != nil {
			started <- err
			return
		}
		r.cmd, r.pid = cmd, cmd.Process.Pid
		started <- nil
		_ = cmd.Wait() // the status is in cmd.ProcessState
		close(r.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return r, nil
}

// bourneShell runs a script that the kernel cannot run.
const bourneShell = "/bin/sh"

// start starts the command. A text file that the kernel does not recognise
// (a script without a #! line) is run by /bin/sh, as execvp(3), and so
// env(1), flock(1) and timeout(1), do.
func (s *commandSpec) start() (*exec.Cmd, error) {
	cmd := s.build(s.path, s.args)
	err := cmd.Start()
	if err == nil || !errors.Is(err, syscall.ENOEXEC) || runtime.GOOS == "windows" {
		return cmd, err
	}
	if head, herr := fileHead(s.path); herr != nil || bytes.HasPrefix(head, []byte("#!")) || isBinary(head) {
		return cmd, err
	}
	cmd = s.build(bourneShell, append([]string{bourneShell, s.path}, s.args[1:]...))
	return cmd, cmd.Start()
}

func (s *commandSpec) build(path string, args []string) *exec.Cmd {
	cmd := &exec.Cmd{
		Path:   path,
		Args:   args,
		Env:    s.env,
		Stdin:  s.stdin,
		Stdout: s.stdout,
		Stderr: s.stderr,
	}
	setProcessGroup(cmd, s.tty)
	return cmd
}

// fileHead returns the start of the file at path: enough for a #! line.
func fileHead(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// isBinary reports whether a file that starts with head is an executable
// binary or other binary data, rather than a script: an ELF header, or a
// NUL byte in its first line (as bash decides).
func isBinary(head []byte) bool {
	if bytes.HasPrefix(head, []byte("\x7fELF")) {
		return true
	}
	line, _, _ := bytes.Cut(head, []byte("\n"))
	return bytes.IndexByte(line, 0) >= 0
}

// interpreterLine returns the #! line that head starts with, and the
// interpreter that it names; ok is false if head has none.
func interpreterLine(head []byte) (line, interp string, ok bool) {
	if !bytes.HasPrefix(head, []byte("#!")) {
		return "", "", false
	}
	l, _, _ := bytes.Cut(head, []byte("\n"))
	rest := bytes.TrimLeft(l[2:], " \t")
	if i := bytes.IndexAny(rest, " \t"); i >= 0 {
		rest = rest[:i]
	}
	return string(l), string(rest), true
}
