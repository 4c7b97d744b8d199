//go:build unix

package cli_test

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// listJSON is the documented output of `list --json`.
type listJSON struct {
	Bucket  string       `json:"bucket"`
	Prefix  string       `json:"prefix"`
	Objects []statusJSON `json:"objects"`
}

// TestList lists locks in every state, a semaphore's slot and an object
// that is not a lock, with one request, in both forms.
func TestList(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		held := hold(t, srv, "jobs/held", dimutex.WithValue("v 1"))
		expired := expiredLock(t, srv, "jobs/expired", "other/1")
		writeObject(t, srv, "jobs/plain", nil, "not a lock")
		slot := holdSlot(t, srv, "jobs/sem", 1, "holder/a")
		writeObject(t, srv, "other/plain", nil, "elsewhere")

		r := dimutexRun(t, srv, "list", "-v", srv.Bucket, "jobs/")
		expectCode(t, r, exitOK)
		want := `^NAME +STATE +OWNER +TOKEN +VALUE +EXPIRES IN\n` +
			`jobs/expired +expired +"other/1" +` + strconv.FormatInt(expired, 10) + ` +- +\d+m?s ago\n` +
			`jobs/held +held +"tester/1" +` + strconv.FormatInt(held.Token(), 10) + ` +"v 1" +(\d+s|1m[0-2]s)\n` +
			`jobs/plain +not-a-lock +- +- +- +-\n` +
			`jobs/sem/slot-000 +held +"holder/a" +` + strconv.FormatInt(slot.Token(), 10) + ` +- +(\d+s|1m[0-2]s)\n$`
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("list printed\n%s\nwant\n%s", r.stdout, want)
		}
		// One objects-list request, and nothing else.
		if n := strings.Count(r.stderr, "msg=request "); n != 1 || !strings.Contains(r.stderr, "msg=request op=list object=gs://"+srv.Bucket+"/jobs/ status=200 attempt=1 duration=") {
			t.Errorf("%d requests, want one list; stderr:\n%s", n, r.stderr)
		}

		r = dimutexRun(t, srv, "list", "--json", srv.Bucket, "jobs/")
		expectCode(t, r, exitOK)
		var j listJSON
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
			t.Fatalf("%q: %v", r.stdout, err)
		}
		if j.Bucket != srv.Bucket || j.Prefix != "jobs/" || len(j.Objects) != 4 {
			t.Fatalf("list --json: %s", r.stdout)
		}
		for i, w := range []struct{ name, state string }{
			{"jobs/expired", "expired"}, {"jobs/held", "held"}, {"jobs/plain", "not-a-lock"}, {"jobs/sem/slot-000", "held"},
		} {
			o := j.Objects[i]
			if o.Lock != "gs://"+srv.Bucket+"/"+w.name || o.State != w.state || o.Held != (w.state == "held") || o.Generation == nil {
				t.Errorf("object %d: %+v, want %s %s", i, o, w.name, w.state)
			}
		}
		if o := j.Objects[1]; o.Value == nil || *o.Value != "v 1" || o.Token == nil || *o.Token != held.Token() {
			t.Errorf("held: %+v", o)
		}
		if o := j.Objects[3]; o.Slots == nil || *o.Slots != 1 {
			t.Errorf("slot: %+v", o)
		}

		r = dimutexRun(t, srv, "list", srv.Bucket)
		expectCode(t, r, exitOK)
		if n := strings.Count(r.stdout, "\n"); n != 6 || !strings.Contains(r.stdout, "\nother/plain ") {
			t.Errorf("list of the whole bucket printed\n%s", r.stdout)
		}

		r = dimutexRun(t, srv, "list", srv.Bucket, "none/")
		expectCode(t, r, exitOK)
		if want := "no objects under gs://" + srv.Bucket + "/none/\n"; r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}
		r = dimutexRun(t, srv, "list", "--json", srv.Bucket, "none/")
		expectCode(t, r, exitOK)
		if want := `{"bucket":"` + srv.Bucket + `","prefix":"none/","objects":[]}` + "\n"; r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}

		r = dimutexRun(t, srv, "list", "no-such-bucket")
		expectCode(t, r, exitFailed)
		if !strings.HasPrefix(r.stderr, "dimutex: listing gs://no-such-bucket/: 404 Not Found") || !strings.Contains(r.stderr, `check that bucket "no-such-bucket" exists`) {
			t.Errorf("stderr %q", r.stderr)
		}
		checkOneLine(t, r.stderr)
	})
}
