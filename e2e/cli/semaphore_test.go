//go:build unix

package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// holdSlot takes a slot of the semaphore name of size slots through the
// library, as another process would, and releases it when the test ends.
func holdSlot(t *testing.T, srv *backend.Server, name string, size int, owner string) *dimutex.Lease {
	t.Helper()
	sem, err := dimutex.NewSemaphore(srv.Bucket, name, size, dimutex.WithEndpoint(srv.URL), dimutex.WithOwner(owner))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := sem.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	return l
}

// TestRunSemaphore runs three commands at once under a semaphore of two
// slots: at most two run at a time, and all three run.
func TestRunSemaphore(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		dir := t.TempDir()
		log := filepath.Join(dir, "log")
		// Each command waits (up to 5 s) until two have started, so
		// that the first two overlap, then runs a little longer.
		script := `echo "start $DIMUTEX_TOKEN" >> "$1"; i=0
while [ "$(grep -c start "$1")" -lt 2 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
sleep 0.3; echo "end $DIMUTEX_TOKEN" >> "$1"`
		var ps []*proc
		for range 3 {
			ps = append(ps, start(t, srv, "", nil, "run", "--slots", "2", srv.Bucket, "sem", "--", "sh", "-c", script, "sh", log))
		}
		for _, p := range ps {
			expectCode(t, p.wait(), 0)
		}
		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		running, most, starts := 0, 0, 0
		for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
			switch {
			case strings.HasPrefix(line, "start "):
				running++
				starts++
			case strings.HasPrefix(line, "end "):
				running--
			}
			most = max(most, running)
		}
		if starts != 3 || most != 2 {
			t.Errorf("%d commands started, at most %d at once; want 3 and 2; log:\n%s", starts, most, data)
		}
		for i := range 2 {
			if g := generation(srv, "sem/slot-00"+strconv.Itoa(i)); g != 0 {
				t.Errorf("slot %d is still there (generation %d)", i, g)
			}
		}
	})
}

// TestSemaphoreFull checks -n, --timeout and status on a semaphore whose
// slots are all held, and a client that gives it another size.
func TestSemaphoreFull(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		holdSlot(t, srv, "full", 2, "holder/a")
		holdSlot(t, srv, "full", 2, "holder/b")
		ref := "gs://" + srv.Bucket + "/full"
		holders := `2 of 2 slots held \(by "holder/[ab]", "holder/[ab]"\); the first may free in up to (\d+s|1m[0-2]s)`
		tests := []struct {
			name   string
			args   []string
			code   int
			stdout string
			stderr string
		}{
			{"run -n", []string{"run", "-n", "--slots", "2", srv.Bucket, "full", "--", "touch", "MARKER"}, exitHeld, "",
				`^dimutex: semaphore ` + ref + ` is full: ` + holders + `; retry later or drop -n to wait\n$`},
			{"run --timeout", []string{"run", "--timeout", "1s", "--slots", "2", srv.Bucket, "full", "--", "touch", "MARKER"}, exitHeld, "",
				`^dimutex: gave up waiting for a slot of ` + ref + ` after --timeout 1s: ` + holders + `; retry later or raise --timeout\n$`},
			{"status", []string{"status", "--slots", "2", srv.Bucket, "full"}, exitHeld,
				`^slot-000: held by "holder/[ab]" since ` + timeRE + `, expires in .*, token \d+, a slot of a semaphore of 2\n` +
					`slot-001: held by "holder/[ab]" since .*, a slot of a semaphore of 2\n$`, ""},
			{"status of a bigger one", []string{"status", "--slots", "3", srv.Bucket, "full"}, exitFailed,
				`^slot-000: held by .*\nslot-001: held by .*\nslot-002: free\n$`,
				`^dimutex: semaphore size mismatch: slot ` + ref + `/slot-00[01] is held by "holder/[ab]" with a size of 2; this client gives --slots 3; every client of a semaphore must give the same --slots`},
			{"status of a smaller one", []string{"status", "--slots", "1", srv.Bucket, "full"}, exitFailed,
				`^slot-000: held by .*\n$`,
				`^dimutex: semaphore size mismatch: .*full/slot-00[01]`},
			{"run with another size", []string{"run", "--slots", "3", srv.Bucket, "full", "--", "touch", "MARKER"}, exitFailed, "",
				`^dimutex: semaphore size mismatch: slot ` + ref + `/slot-00[01] is held by "holder/[ab]" with a size of 2; this client gives --slots 3; every client`},
			{"run -n with another size", []string{"run", "-n", "--slots", "3", srv.Bucket, "full", "--", "touch", "MARKER"}, exitFailed, "",
				`^dimutex: semaphore size mismatch: .*; every client of a semaphore must give the same --slots`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				marker := filepath.Join(t.TempDir(), "ran")
				for i, a := range tt.args {
					if a == "MARKER" {
						tt.args[i] = marker
					}
				}
				r := dimutexRun(t, srv, tt.args...)
				expectCode(t, r, tt.code)
				if !regexp.MustCompile(tt.stdout).MatchString(r.stdout) || tt.stdout == "" && r.stdout != "" {
					t.Errorf("stdout %q, want %q", r.stdout, tt.stdout)
				}
				if !regexp.MustCompile(tt.stderr).MatchString(r.stderr) || tt.stderr == "" && r.stderr != "" {
					t.Errorf("stderr %q, want %q", r.stderr, tt.stderr)
				}
				if tt.stderr != "" {
					checkOneLine(t, r.stderr)
				}
				if _, err := os.Stat(marker); err == nil {
					t.Error("the command ran without a slot")
				}
			})
		}
		t.Run("json", func(t *testing.T) {
			t.Parallel()
			r := dimutexRun(t, srv, "status", "--slots", "2", "--json", srv.Bucket, "full")
			expectCode(t, r, exitHeld)
			var j semaphoreJSON
			if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
				t.Fatalf("%q: %v", r.stdout, err)
			}
			if j.Semaphore != ref || j.Size != 2 || j.Holders != 2 || !j.Full || len(j.Slots) != 2 {
				t.Fatalf("status --slots 2 --json: %s", r.stdout)
			}
			for i, s := range j.Slots {
				if s.Lock != ref+"/slot-00"+strconv.Itoa(i) || s.State != "held" || s.Slots == nil || *s.Slots != 2 || s.Owner == nil {
					t.Errorf("slot %d: %+v", i, s)
				}
			}
		})
	})
}

// semaphoreJSON is the documented output of `status --slots N --json`.
type semaphoreJSON struct {
	Semaphore string       `json:"semaphore"`
	Size      int          `json:"size"`
	Holders   int          `json:"holders"`
	Full      bool         `json:"full"`
	Slots     []statusJSON `json:"slots"`
}

// TestSemaphoreStatus checks status --slots on a semaphore with a free
// slot, in both forms.
func TestSemaphoreStatus(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		r := dimutexRun(t, srv, "status", "--slots", "2", srv.Bucket, "free")
		expectCode(t, r, exitOK)
		if r.stdout != "slot-000: free\nslot-001: free\n" || r.stderr != "" {
			t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
		}
		l := holdSlot(t, srv, "half", 2, "holder/a")
		r = dimutexRun(t, srv, "status", "--slots", "2", srv.Bucket, "half")
		expectCode(t, r, exitOK)
		want := `^(slot-000: held by "holder/a" .*, token ` + strconv.FormatInt(l.Token(), 10) + `, a slot of a semaphore of 2\nslot-001: free|` +
			`slot-000: free\nslot-001: held by "holder/a" .*, token ` + strconv.FormatInt(l.Token(), 10) + `, a slot of a semaphore of 2)\n$`
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}
		r = dimutexRun(t, srv, "status", "--slots", "2", "--json", srv.Bucket, "half")
		expectCode(t, r, exitOK)
		var j semaphoreJSON
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
			t.Fatalf("%q: %v", r.stdout, err)
		}
		if j.Size != 2 || j.Holders != 1 || j.Full || len(j.Slots) != 2 {
			t.Errorf("status --json: %s", r.stdout)
		}
		// A slot that is not a lock blocks the semaphore: status says it
		// cannot be taken.
		writeObject(t, srv, "blocked/slot-001", nil, "not a lock")
		r = dimutexRun(t, srv, "status", "--slots", "2", srv.Bucket, "blocked")
		expectCode(t, r, exitHeld)
		if !regexp.MustCompile(`^slot-000: free\nslot-001: not a dimutex lock `).MatchString(r.stdout) {
			t.Errorf("stdout %q", r.stdout)
		}
		r = dimutexRun(t, srv, "run", "--slots", "2", srv.Bucket, "blocked", "--", "true")
		expectCode(t, r, exitFailed)
		if !strings.Contains(r.stderr, "blocked/slot-001 is not a dimutex lock") {
			t.Errorf("stderr %q", r.stderr)
		}
	})
}
