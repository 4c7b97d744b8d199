package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// TestRunInteractive runs dimutex in the foreground of a terminal, as an
// operator would: the command must be able to read the terminal. In a
// background process group it would be stopped by SIGTTIN, with the lock
// held.
func TestRunInteractive(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		master, slave := openPTY(t)
		out := filepath.Join(t.TempDir(), "out")

		cmd := exec.Command(dimutexBin, "run", srv.Bucket, "tty", "--",
			"sh", "-c", `read line; echo "got $line" > "$1"`, "sh", out)
		cmd.Env = testEnv(srv)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		// A new session with the terminal as its controlling terminal, so that
		// dimutex starts in its foreground.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		slave.Close()
		// Drain the terminal's output so that nothing blocks on it.
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := master.Read(buf); err != nil {
					return
				}
			}
		}()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()

		waitFor(t, "the lock to be taken", 10*time.Second, func() bool { return generation(srv, "tty") != 0 })
		if _, err := master.Write([]byte("typed\n")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("dimutex: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatal("the command did not read the terminal (stopped in the background?)")
		}
		if data, _ := os.ReadFile(out); string(data) != "got typed\n" {
			t.Errorf("the command wrote %q, want %q", data, "got typed\n")
		}
		if g := generation(srv, "tty"); g != 0 {
			t.Errorf("the lock is still there (generation %d)", g)
		}
	})
}

// openPTY opens a pseudo-terminal pair; both ends are closed when the test
// ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	if err := ioctl(master, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Fatal("unlocking the pty:", err)
	}
	var n uint32
	if err := ioctl(master, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Fatal("getting the pty number:", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := conn.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
