//go:build unix

// Package cli_test runs the dimutex command, built from
// github.com/dimutex/dimutex/cmd/dimutex, as a subprocess against each
// backend. The tests of the command that need no server are in
// cmd/dimutex.
package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/e2e/internal/backend"
	"github.com/dimutex/dimutex/gcsjson"
)

// The command's exit statuses, as README.md documents them.
const (
	exitOK            = 0
	exitHeld          = 1
	exitUsage         = 2
	exitLost          = 75
	exitFailed        = 125
	exitNotExecutable = 126
	exitNotFound      = 127
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
	build := exec.Command("go", append(args, "github.com/dimutex/dimutex/cmd/dimutex")...)
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
	stdout, stderr lockedBuffer
	start          time.Time
	done           chan struct{}
	res            result
}

// lockedBuffer is a buffer that a test may read while the binary writes to
// it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv returns the environment for the binary: this one's, pointed at
// srv (or at nothing that listens, if srv is nil), with no inherited lease.
func testEnv(srv *backend.Server, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STORAGE_EMULATOR_HOST=") && !strings.HasPrefix(kv, "DIMUTEX_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	host := "127.0.0.1:1"
	if srv != nil {
		host = srv.HostPort()
	}
	// A binary built with -race sleeps 1 s at exit by default, to let
	// goroutines report races; races are still reported without it.
	env = append(env, "GORACE=atexit_sleep_ms=0", "STORAGE_EMULATOR_HOST="+host)
	return append(env, extra...)
}

// start starts the binary with args. It is killed, if still running, when
// the test ends.
func start(t *testing.T, srv *backend.Server, stdin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(dimutexBin, args...)
	p.cmd.Env = append(testEnv(srv), env...)
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

// signal sends sig to the binary.
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// dimutexRun runs the binary with args to completion.
func dimutexRun(t *testing.T, srv *backend.Server, args ...string) result {
	t.Helper()
	return start(t, srv, "", nil, args...).wait()
}

// expectCode fails the test unless r exited with code.
func expectCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

// waitFor polls cond until it holds, or fails the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFile waits for path to exist and returns its contents.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	var data []byte
	waitFor(t, path, 10*time.Second, func() bool {
		var err error
		data, err = os.ReadFile(path)
		return err == nil && len(data) > 0
	})
	return string(data)
}

// client returns a JSON API client for srv, for the test itself.
func client(srv *backend.Server) *gcsjson.Client {
	u, err := url.Parse(srv.URL)
	if err != nil {
		panic(err)
	}
	c, err := gcsjson.New(gcsjson.Config{Endpoint: u})
	if err != nil {
		panic(err)
	}
	return c
}

// generation returns the lock object's generation, or 0 if it is absent.
func generation(srv *backend.Server, name string) int64 {
	obj, err := client(srv).Get(context.Background(), srv.Bucket, name)
	if err != nil {
		return 0
	}
	return obj.Generation
}

// deleteObject deletes the lock object, as someone other than its holder
// would.
func deleteObject(t *testing.T, srv *backend.Server, name string) {
	t.Helper()
	gen := generation(srv, name)
	if gen == 0 {
		t.Fatalf("no object %s to delete", name)
	}
	if err := client(srv).Delete(context.Background(), srv.Bucket, name, gen); err != nil {
		t.Fatal(err)
	}
}

// hold acquires the lock name through the library, as another process
// would, and releases it when the test ends.
func hold(t *testing.T, srv *backend.Server, name string, opts ...dimutex.Option) *dimutex.Lease {
	t.Helper()
	opts = append([]dimutex.Option{dimutex.WithEndpoint(srv.URL), dimutex.WithOwner("tester/1")}, opts...)
	m, err := dimutex.NewGCS(srv.Bucket, name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := m.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	return l
}

// writeObject writes the object name with the custom metadata md, as
// another client would (a lock written by another dimutex, or an object of
// another tool), and returns its generation.
func writeObject(t *testing.T, srv *backend.Server, name string, md map[string]string, body string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obj, err := client(srv).Insert(ctx, srv.Bucket, name, 0, gcsjson.Write{Metadata: md, ContentType: "text/plain", Data: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	return obj.Generation
}

// lockMetadata returns the metadata of a lock that another dimutex wrote
// in its acquiring write, with the TTL ttl (milliseconds, as stored).
func lockMetadata(owner, ttl string) map[string]string {
	return map[string]string{
		"dimutex-lease": "0123456789abcdef0123456789abcdef",
		"dimutex-ttl":   ttl,
		"dimutex-owner": owner,
	}
}

// expiredLock writes a lock of owner whose lease expires at once (a TTL of
// 1 ms, written by another client), waits until status calls it expired,
// and returns its token.
func expiredLock(t *testing.T, srv *backend.Server, name, owner string) int64 {
	t.Helper()
	token := writeObject(t, srv, name, lockMetadata(owner, "1"), "dimutex lock held by "+owner+"\n")
	waitState(t, srv, name, "expired")
	return token
}

// loop is a shell loop that keeps a command busy for up to 20 s, long
// enough for any test, short enough that a stray one dies by itself.
const loop = `i=0; while [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done`
