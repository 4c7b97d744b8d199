//go:build unix

package cli_test

import (
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dimutex/dimutex/dimutextest"
)

// faultyServer is an in-memory GCS in this process, which answers status
// to every request once failing is set, or only to the requests of op if
// op is not "".
func faultyServer(t *testing.T, status int, op string) (hostPort string, failing *atomic.Bool) {
	t.Helper()
	srv := dimutextest.NewServer()
	if err := srv.CreateBucket("faulty"); err != nil {
		t.Fatal(err)
	}
	failing = new(atomic.Bool)
	srv.SetFaults(func(r *dimutextest.Request) dimutextest.Fault {
		if failing.Load() && (op == "" || r.Op == op) {
			return dimutextest.Fault{Kind: dimutextest.FailBefore, Status: status}
		}
		return dimutextest.Fault{}
	})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	u, _ := url.Parse(hs.URL)
	return u.Host, failing
}

// TestRunNotReleased fails requests once the command has started. If the
// command exits while the lease is valid, only the release has failed:
// dimutex exits 125 with one line saying so, not 75, whether or not a
// refresh failed first, and whether the delete failed until the lease ran
// out or was refused for good. If the lease runs out while the command
// runs, its work may have overlapped another holder's: 75.
func TestRunNotReleased(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int    // the answer to the failed requests
		op     string // the requests that fail; "" for all
		ttl    string
		script string
		code   int
		stderr string
		max    time.Duration // how long dimutex may take
	}{
		// The command exits before the first refresh, due at 3.3 s.
		{"no refresh", 503, "", "10s", `echo ready > "$1"; sleep 1.5; exit 4`, exitFailed,
			`^dimutex: sh exited with status 4 under a valid lease, but gs://faulty/lock was not released \(.*\); the lock frees itself within 11s\n$`,
			15 * time.Second},
		// The refresh due at 1 s fails; the command exits at 1.5 s, within
		// the 3 s TTL.
		{"refresh failed", 503, "", "3s", `echo ready > "$1"; sleep 1.5; exit 4`, exitFailed,
			`^dimutex: sh exited with status 4 under a valid lease, but gs://faulty/lock was not released \(.*\); the lock frees itself within 4s\n$`,
			15 * time.Second},
		// A 403 is final: dimutex does not wait for the lease to run out.
		{"refused", 403, "delete", "30s", `echo ready > "$1"; sleep 1.5; exit 4`, exitFailed,
			`^dimutex: sh exited with status 4 under a valid lease, but gs://faulty/lock was not released \(403 Forbidden[^;]*\); the lock frees itself within 31s; check that the credentials may read, create and delete objects in bucket "faulty" \(for example roles/storage.objectUser\)\n$`,
			10 * time.Second},
		// The lease runs out at 2 s while the command runs.
		{"lost", 503, "", "2s", `echo ready > "$1"; ` + loop, exitLost,
			`^dimutex: lost the lock gs://faulty/lock while sh ran; sending it SIGTERM, and SIGKILL in 10s\n$`,
			15 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			host, failing := faultyServer(t, tt.status, tt.op)
			ready := filepath.Join(t.TempDir(), "ready")
			p := start(t, nil, "", []string{"STORAGE_EMULATOR_HOST=" + host},
				"run", "--ttl", tt.ttl, "faulty", "lock", "--", "sh", "-c", tt.script, "sh", ready)
			waitFile(t, ready)
			failing.Store(true)
			r := p.wait()
			expectCode(t, r, tt.code)
			if !regexp.MustCompile(tt.stderr).MatchString(r.stderr) {
				t.Errorf("stderr %q does not match %q", r.stderr, tt.stderr)
			}
			if strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr %q is not one line", r.stderr)
			}
			if r.elapsed > tt.max {
				t.Errorf("took %v, want at most %v", r.elapsed, tt.max)
			}
		})
	}
}
