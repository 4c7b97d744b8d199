//go:build unix

package cli_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// proxy serves the backend at --endpoint, as real GCS would in two
// respects that fake-gcs-server lacks: DELETE honours ifGenerationMatch
// (which the proxy checks only where the backend does not), and a request
// can be refused. Its hooks run in the proxy's goroutines.
type proxy struct {
	srv *backend.Server
	// refuse, if not 0, answers every request with this status; see
	// setRefuse.
	refuse atomic.Int32
	// beforeDelete runs before a DELETE is checked and forwarded.
	beforeDelete func()
}

// setRefuse makes the proxy answer every request with status code, or
// forward requests again if code is 0.
func (p *proxy) setRefuse(code int) { p.refuse.Store(int32(code)) }

func startProxy(t *testing.T, p *proxy) string {
	t.Helper()
	u, err := url.Parse(p.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch code := int(p.refuse.Load()); code {
		case 0:
		case http.StatusForbidden:
			gcsError(w, code, "forbidden", "dimutex-test@example.iam.gserviceaccount.com does not have storage.objects.get access")
			return
		default:
			gcsError(w, code, "backendError", "refused by the test")
			return
		}
		if r.Method == http.MethodDelete {
			if p.beforeDelete != nil {
				p.beforeDelete()
			}
			_, escaped, _ := strings.Cut(r.URL.EscapedPath(), "/o/")
			name, _ := url.PathUnescape(escaped)
			want := r.URL.Query().Get("ifGenerationMatch")
			if !p.srv.DeletePreconditions && want != "" && want != strconv.FormatInt(generation(p.srv, name), 10) {
				gcsError(w, http.StatusPreconditionFailed, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

func gcsError(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write([]byte(`{"error":{"code":` + strconv.Itoa(code) + `,"message":"` + msg + `","errors":[{"reason":"` + reason + `"}]}}`))
}

// TestReleaseChanged refreshes the lock between release's read and its
// delete: the delete must fail, and leave the holder's lock in place.
func TestReleaseChanged(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		lease := hold(t, srv, "changed")
		refreshed := make(chan error, 1)
		endpoint := startProxy(t, &proxy{srv: srv, beforeDelete: func() {
			refreshed <- lease.Refresh(context.Background())
		}})
		r := dimutexRun(t, srv, "release", "--force", "--endpoint", endpoint, srv.Bucket, "changed")
		if err := <-refreshed; err != nil {
			t.Fatal("refreshing:", err)
		}
		expectCode(t, r, exitHeld)
		want := "dimutex: gs://" + srv.Bucket + "/changed changed after it was read (acquired or refreshed); nothing was deleted; check 'dimutex status " + srv.Bucket + " changed' and retry\n"
		if r.stderr != want || r.stdout != "" {
			t.Errorf("stdout %q stderr %q, want stderr %q", r.stdout, r.stderr, want)
		}
		if generation(srv, "changed") == 0 || lease.Err() != nil {
			t.Errorf("the holder lost its lock: lease error %v", lease.Err())
		}
	})
}

// TestRefused checks the message and status when GCS refuses the
// credentials.
func TestRefused(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		px := &proxy{srv: srv}
		px.setRefuse(http.StatusForbidden)
		endpoint := startProxy(t, px)
		for _, args := range [][]string{
			{"status", "--endpoint", endpoint, srv.Bucket, "refused"},
			{"release", "--force", "--endpoint", endpoint, srv.Bucket, "refused"},
			{"run", "--endpoint", endpoint, srv.Bucket, "refused", "--", "true"},
			{"run", "-n", "--endpoint", endpoint, srv.Bucket, "refused", "--", "true"},
		} {
			t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
				t.Parallel()
				r := dimutexRun(t, nil, args...)
				expectCode(t, r, exitFailed)
				if !strings.Contains(r.stderr, "403 Forbidden (forbidden)") ||
					!strings.HasSuffix(r.stderr, `; check that the credentials may read, create and delete objects in bucket "`+srv.Bucket+`" (for example roles/storage.objectUser)`+"\n") {
					t.Errorf("stderr %q does not explain the refusal", r.stderr)
				}
				checkOneLine(t, r.stderr)
			})
		}
	})
}
