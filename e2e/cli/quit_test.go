//go:build unix

package cli_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/dimutextest"
	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// TestRunQuit sends SIGQUIT to dimutex, as Ctrl-\ would: like SIGINT, it
// goes to the command, and dimutex releases the lock and exits with the
// command's status, without a goroutine dump or a message.
func TestRunQuit(t *testing.T) {
	t.Parallel()
	skipIfIgnored(t, syscall.SIGQUIT)
	srv := backend.Memory.Start(t)
	tests := []struct {
		name   string
		script string
		code   int
		got    string
	}{
		// No core files: ulimit -c 0. (sh may say "Quit" of its
		// child, which dies of SIGQUIT too.)
		{"trapped", `ulimit -c 0; trap 'echo QUIT > "$2"; exit 3' QUIT; echo ready > "$1"; ` + loop, 3, "QUIT\n"},
		{"killed", `ulimit -c 0; echo ready > "$1"; exec sleep 20`, 128 + int(syscall.SIGQUIT), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
			lock := "quit-" + tt.name
			p := start(t, srv, "", nil, "run", srv.Bucket, lock, "--", "sh", "-c", tt.script, "sh", ready, got)
			waitFile(t, ready)
			p.signal(syscall.SIGQUIT)
			r := p.wait()
			expectCode(t, r, tt.code)
			if strings.Contains(r.stderr, "dimutex") || strings.Contains(r.stderr, "goroutine") {
				t.Errorf("stderr %q, want nothing from dimutex", r.stderr)
			}
			if data, _ := os.ReadFile(got); string(data) != tt.got {
				t.Errorf("the command recorded %q, want %q", data, tt.got)
			}
			if g := generation(srv, lock); g != 0 {
				t.Errorf("the lock is still there (generation %d)", g)
			}
		})
	}
}

// TestRunQuitWhileWaiting sends SIGQUIT to a waiting dimutex: it exits
// 128+3 without running the command.
func TestRunQuitWhileWaiting(t *testing.T) {
	t.Parallel()
	skipIfIgnored(t, syscall.SIGQUIT)
	// A server of this test's own, to see when dimutex has read the lock:
	// it catches the signal by then, and a SIGQUIT sent earlier would get
	// the runtime's goroutine dump instead.
	srv := dimutextest.NewServer()
	if err := srv.CreateBucket("quit"); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	m, err := dimutex.NewGCS("quit", "wait", dimutex.WithEndpoint(hs.URL), dimutex.WithOwner("tester/1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := m.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lease.Release(context.Background()) })
	var asked atomic.Bool
	srv.OnRequest(func(dimutextest.Request) { asked.Store(true) })

	marker := filepath.Join(t.TempDir(), "ran")
	u, _ := url.Parse(hs.URL)
	p := start(t, nil, "", []string{"STORAGE_EMULATOR_HOST=" + u.Host}, "run", "quit", "wait", "--", "touch", marker)
	waitFor(t, "dimutex to read the lock", 10*time.Second, asked.Load)
	p.signal(syscall.SIGQUIT)
	r := p.wait()
	expectCode(t, r, 128+int(syscall.SIGQUIT))
	if !strings.HasPrefix(r.stderr, "dimutex: stopped by signal 3 (quit) while waiting for gs://quit/wait") {
		t.Errorf("stderr %q does not report the signal", r.stderr)
	}
	checkOneLine(t, r.stderr)
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran")
	}
}
