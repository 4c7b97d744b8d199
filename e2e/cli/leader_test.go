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
	"syscall"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// leaderJSON is the documented output of `leader --json`.
type leaderJSON struct {
	Election   string  `json:"election"`
	Leader     bool    `json:"leader"`
	Owner      *string `json:"owner"`
	Value      *string `json:"value"`
	Token      *int64  `json:"token"`
	Since      *string `json:"since"`
	Expires    *string `json:"expires"`
	Generation *int64  `json:"generation"`
}

// TestLeader campaigns with run --value and reads the leader with leader,
// in both forms, before, during and after.
func TestLeader(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		election := "gs://" + srv.Bucket + "/election"

		r := dimutexRun(t, srv, "leader", srv.Bucket, "election")
		expectCode(t, r, exitHeld)
		if r.stdout != "no leader\n" || r.stderr != "" {
			t.Errorf("stdout %q stderr %q, want no leader", r.stdout, r.stderr)
		}
		r = dimutexRun(t, srv, "leader", "--json", srv.Bucket, "election")
		expectCode(t, r, exitHeld)
		if want := `{"election":"` + election + `","leader":false,"owner":null,"value":null,"token":null,"since":null,"expires":null,"generation":null}` + "\n"; r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}

		dir := t.TempDir()
		ready, proceed := filepath.Join(dir, "ready"), filepath.Join(dir, "proceed")
		script := `echo "$DIMUTEX_VALUE" > "$1.tmp"; mv "$1.tmp" "$1"; i=0; while [ ! -e "$2" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done`
		value := "http://node-a.internal:8080"
		p := start(t, srv, "", nil, "run", "--owner", "node-a", "--value", value, srv.Bucket, "election", "--", "sh", "-c", script, "sh", ready, proceed)
		if got := strings.TrimSpace(waitFile(t, ready)); got != value {
			t.Errorf("DIMUTEX_VALUE=%q, want %q", got, value)
		}
		token := generation(srv, "election")

		r = dimutexRun(t, srv, "leader", srv.Bucket, "election")
		expectCode(t, r, exitOK)
		want := `^leader "node-a", value "` + regexp.QuoteMeta(value) + `", token ` + strconv.FormatInt(token, 10) +
			`, since ` + timeRE + `, expires ` + timeRE + `\n$`
		if !regexp.MustCompile(want).MatchString(r.stdout) || r.stderr != "" {
			t.Errorf("stdout %q stderr %q, want %q", r.stdout, r.stderr, want)
		}
		r = dimutexRun(t, srv, "leader", "--json", srv.Bucket, "election")
		expectCode(t, r, exitOK)
		var j leaderJSON
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
			t.Fatalf("%q: %v", r.stdout, err)
		}
		if j.Election != election || !j.Leader || j.Owner == nil || *j.Owner != "node-a" || j.Value == nil || *j.Value != value ||
			j.Token == nil || *j.Token != token || j.Generation == nil || *j.Generation != token {
			t.Errorf("leader --json: %s", r.stdout)
		}
		since := parseJSONTime(t, "since", j.Since)
		expires := parseJSONTime(t, "expires", j.Expires)
		// The default TTL, 60 s, plus the 1 s margin, from the last write.
		if d := expires.Sub(since); d < 55*time.Second || d > 62*time.Second {
			t.Errorf("expires %v is %v after since %v, want about 61 s", expires, d, since)
		}
		// status shows the value too.
		r = dimutexRun(t, srv, "status", srv.Bucket, "election")
		if !strings.HasSuffix(r.stdout, `, value "`+value+`"`+"\n") {
			t.Errorf("status printed %q", r.stdout)
		}

		if err := os.WriteFile(proceed, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		expectCode(t, p.wait(), 0)
		r = dimutexRun(t, srv, "leader", srv.Bucket, "election")
		expectCode(t, r, exitHeld)
		if r.stdout != "no leader\n" {
			t.Errorf("after the leader resigned: %q", r.stdout)
		}
	})
}

// TestLeaderMissingBucket checks that a missing bucket is a failure, not
// "no leader".
func TestLeaderMissingBucket(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		for _, args := range [][]string{{"leader"}, {"leader", "--watch"}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				r := dimutexRun(t, srv, append(args, "no-such-bucket", "election")...)
				expectCode(t, r, exitFailed)
				if !strings.Contains(r.stderr, `check that bucket "no-such-bucket" exists`) {
					t.Errorf("stderr %q", r.stderr)
				}
				checkOneLine(t, r.stderr)
			})
		}
	})
}

// TestLeaderWatch watches an election through a change of leader, of value,
// and back to no leader, in both forms; SIGINT and SIGTERM end the watch
// with status 0.
func TestLeaderWatch(t *testing.T) {
	t.Parallel()
	skipIfIgnored(t, syscall.SIGINT)
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		text := start(t, srv, "", nil, "leader", "--watch", srv.Bucket, "watched")
		js := start(t, srv, "", nil, "leader", "--watch", "--json", srv.Bucket, "watched")
		lines := func(p *proc) []string {
			out := strings.TrimSuffix(p.stdout.String(), "\n")
			if out == "" {
				return nil
			}
			return strings.Split(out, "\n")
		}
		waitLines := func(n int) {
			t.Helper()
			waitFor(t, strconv.Itoa(n)+" lines from each watcher", 15*time.Second, func() bool {
				return len(lines(text)) >= n && len(lines(js)) >= n
			})
		}
		waitLines(1)

		e, err := dimutex.NewElection(srv.Bucket, "watched", dimutex.WithEndpoint(srv.URL), dimutex.WithOwner("tester/1"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		l, err := e.Campaign(ctx, "v1")
		if err != nil {
			t.Fatal(err)
		}
		waitLines(2)
		if err := l.Proclaim(ctx, "v2"); err != nil {
			t.Fatal(err)
		}
		waitLines(3)
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		waitLines(4)
		text.signal(syscall.SIGINT)
		js.signal(syscall.SIGTERM)
		rt, rj := text.wait(), js.wait()
		expectCode(t, rt, exitOK)
		expectCode(t, rj, exitOK)
		if rt.stderr != "" || rj.stderr != "" {
			t.Errorf("stderr %q and %q", rt.stderr, rj.stderr)
		}

		tok := strconv.FormatInt(l.Token(), 10)
		want := []string{
			`^no leader$`,
			`^leader "tester/1", value "v1", token ` + tok + `, since ` + timeRE + `, expires ` + timeRE + `$`,
			`^leader "tester/1", value "v2", token ` + tok + `, since `,
			`^no leader$`,
		}
		got := lines(text)
		if len(got) != len(want) {
			t.Fatalf("the watch printed %q, want %d lines", got, len(want))
		}
		for i, w := range want {
			if !regexp.MustCompile(w).MatchString(got[i]) {
				t.Errorf("line %d: %q, want %q", i+1, got[i], w)
			}
		}
		got = lines(js)
		if len(got) != 4 {
			t.Fatalf("the JSON watch printed %q, want 4 lines", got)
		}
		for i, w := range []struct {
			leader bool
			value  string
		}{{false, ""}, {true, "v1"}, {true, "v2"}, {false, ""}} {
			var j leaderJSON
			if err := json.Unmarshal([]byte(got[i]), &j); err != nil {
				t.Fatalf("line %d: %q: %v", i+1, got[i], err)
			}
			if j.Leader != w.leader || w.leader && (j.Value == nil || *j.Value != w.value || j.Token == nil || *j.Token != l.Token()) ||
				!w.leader && (j.Value != nil || j.Token != nil) {
				t.Errorf("line %d: %s, want leader %v value %q", i+1, got[i], w.leader, w.value)
			}
		}
	})
}
