//go:build unix

package cli_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// TestVerbose checks that -v logs each request and each lease event, one
// line each, on stderr.
func TestVerbose(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		obj := "gs://" + srv.Bucket + "/verbose"
		request := func(op string, status int) string {
			return `(?m)^time=\d\d:\d\d:\d\d\.\d{3} level=DEBUG msg=request op=` + op + ` object=` + regexp.QuoteMeta(obj) +
				` status=` + strconv.Itoa(status) + ` attempt=1 duration=\S+`
		}
		t.Run("run", func(t *testing.T) {
			t.Parallel()
			// A TTL of 1 s refreshes every 333 ms: the command outlives
			// a few refreshes.
			r := dimutexRun(t, srv, "run", "-v", "--ttl", "1s", srv.Bucket, "verbose", "--", "sleep", "1")
			expectCode(t, r, exitOK)
			for _, want := range []string{
				request("get", 404),
				request("insert", 200),
				`(?m)^time=\S+ level=DEBUG msg=acquired lock=` + regexp.QuoteMeta(obj) + ` token=\d+ owner="\S+/\d+ sleep" waited=\S+ reads=0 writes=1$`,
				`(?m)^time=\S+ level=DEBUG msg=refreshed lock=` + regexp.QuoteMeta(obj) + ` token=\d+ latency=\S+ attempts=1 background=true$`,
				`(?m) msg=request op=insert object=` + regexp.QuoteMeta(obj) + ` status=200 attempt=1 duration=\S+ token=\d+$`,
				`(?m) msg=request op=delete object=` + regexp.QuoteMeta(obj) + ` status=(200|204) attempt=1 duration=\S+ token=\d+$`,
				`(?m)^time=\S+ level=DEBUG msg=released lock=` + regexp.QuoteMeta(obj) + ` token=\d+ held=\S+$`,
			} {
				if !regexp.MustCompile(want).MatchString(r.stderr) {
					t.Errorf("stderr does not match %q:\n%s", want, r.stderr)
				}
			}
		})
		t.Run("status", func(t *testing.T) {
			t.Parallel()
			r := dimutexRun(t, srv, "status", "-v", srv.Bucket, "verbose-status")
			expectCode(t, r, exitOK)
			if !regexp.MustCompile(`(?m)^time=\S+ level=DEBUG msg=request op=get object=gs://` + srv.Bucket + `/verbose-status status=404 attempt=1 duration=\S+$`).MatchString(r.stderr) {
				t.Errorf("stderr:\n%s", r.stderr)
			}
		})
		t.Run("release and leader", func(t *testing.T) {
			t.Parallel()
			hold(t, srv, "verbose-release")
			r := dimutexRun(t, srv, "leader", "-v", srv.Bucket, "verbose-release")
			expectCode(t, r, exitOK)
			if !regexp.MustCompile(`(?m)^time=\S+ level=DEBUG msg=request op=get object=gs://` + srv.Bucket + `/verbose-release status=200 attempt=1 duration=\S+$`).MatchString(r.stderr) {
				t.Errorf("leader -v: stderr:\n%s", r.stderr)
			}
			r = dimutexRun(t, srv, "release", "-v", "--force", srv.Bucket, "verbose-release")
			expectCode(t, r, exitOK)
			for _, op := range []string{"get", "delete"} {
				if !regexp.MustCompile(`(?m)^time=\S+ level=DEBUG msg=request op=` + op + ` object=gs://` + srv.Bucket + `/verbose-release status=\d+ attempt=1 duration=\S+$`).MatchString(r.stderr) {
					t.Errorf("release -v: no %s request in stderr:\n%s", op, r.stderr)
				}
			}
			// The library logs the force-release at warn level.
			if !strings.Contains(r.stderr, `level=WARN msg="dimutex: lock force-released"`) {
				t.Errorf("release -v: stderr:\n%s", r.stderr)
			}
		})
		t.Run("lost", func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ready := filepath.Join(dir, "ready")
			p := start(t, srv, "", nil, "run", "-v", "--ttl", "2s", "--grace", "100ms", srv.Bucket, "verbose-lost",
				"--", "sh", "-c", `echo x > "$1"; `+loop, "sh", ready)
			waitFile(t, ready)
			deleteObject(t, srv, "verbose-lost")
			r := p.wait()
			expectCode(t, r, exitLost)
			want := `(?m)^time=\S+ level=DEBUG msg=lost lock=gs://` + srv.Bucket + `/verbose-lost token=\d+ reason=deleted error=".*" held=\S+$`
			if !regexp.MustCompile(want).MatchString(r.stderr) {
				t.Errorf("stderr does not match %q:\n%s", want, r.stderr)
			}
		})
		t.Run("refresh failed", func(t *testing.T) {
			t.Parallel()
			// The holder's refreshes fail while the proxy refuses them.
			px := &proxy{srv: srv}
			endpoint := startProxy(t, px)
			dir := t.TempDir()
			ready, proceed := filepath.Join(dir, "ready"), filepath.Join(dir, "proceed")
			script := `echo x > "$1"; i=0; while [ ! -e "$2" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done`
			p := start(t, srv, "", nil, "run", "-v", "--ttl", "3s", "--endpoint", endpoint, srv.Bucket, "verbose-failed",
				"--", "sh", "-c", script, "sh", ready, proceed)
			waitFile(t, ready)
			px.setRefuse(http.StatusForbidden) // not retried in place: the refresh fails
			waitFor(t, "a failed refresh", 10*time.Second, func() bool { return strings.Contains(p.stderr.String(), "msg=\"refresh failed\"") })
			px.setRefuse(0)
			if err := os.WriteFile(proceed, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			r := p.wait()
			want := `(?m)^time=\S+ level=DEBUG msg="refresh failed" lock=gs://` + srv.Bucket + `/verbose-failed token=\d+ error=".*" failures=1 retry_in=\S+ left=\S+$`
			if !regexp.MustCompile(want).MatchString(r.stderr) {
				t.Errorf("stderr does not match %q:\n%s", want, r.stderr)
			}
		})
	})
}

// TestEndpointHostPort checks that --endpoint HOST:PORT means
// http://HOST:PORT, as STORAGE_EMULATOR_HOST does.
func TestEndpointHostPort(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		// No emulator in the environment: only --endpoint reaches srv.
		r := dimutexRun(t, nil, "run", "--endpoint", srv.HostPort(), srv.Bucket, "hostport", "--", "true")
		expectCode(t, r, exitOK)
		r = dimutexRun(t, nil, "status", "--endpoint", srv.HostPort(), srv.Bucket, "hostport")
		expectCode(t, r, exitOK)
		if r.stdout != "free\n" {
			t.Errorf("stdout %q", r.stdout)
		}
	})
}
