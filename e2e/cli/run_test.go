//go:build unix

package cli_test

import (
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// TestRunWaits runs two commands on one lock at once: the second starts
// only after the first has ended, as their log shows.
func TestRunWaits(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		log := filepath.Join(t.TempDir(), "log")
		script := `echo "$1 start" >> "$2"; sleep 0.5; echo "$1 end" >> "$2"`
		pa := start(t, srv, "", nil, "run", srv.Bucket, "waits", "--", "sh", "-c", script, "sh", "A", log)
		pb := start(t, srv, "", nil, "run", srv.Bucket, "waits", "--", "sh", "-c", script, "sh", "B", log)
		expectCode(t, pa.wait(), 0)
		expectCode(t, pb.wait(), 0)

		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		ok := len(lines) == 4
		if ok {
			first, second := lines[0][:1], lines[2][:1]
			ok = first != second &&
				lines[0] == first+" start" && lines[1] == first+" end" &&
				lines[2] == second+" start" && lines[3] == second+" end"
		}
		if !ok {
			t.Fatalf("the commands overlapped or did not both run; log:\n%s", data)
		}
		if g := generation(srv, "waits"); g != 0 {
			t.Errorf("the lock is still there (generation %d) after both released it", g)
		}
	})
}

// TestRunHeld checks that -n fails at once, and --timeout after its
// time, with status 1 and without running the command, while someone else
// holds the lock.
func TestRunHeld(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		lease := hold(t, srv, "held")
		tests := []struct {
			flags    []string
			min, max time.Duration
			stderr   string
		}{
			{[]string{"-n"}, 0, 5 * time.Second, `^dimutex: gs://` + srv.Bucket + `/held is held by "tester/1" \(token ` +
				strconv.FormatInt(lease.Token(), 10) + `\) for up to (\d+s|1m[0-2]s) more; retry later or drop -n to wait\n$`},
			{[]string{"--no-wait"}, 0, 5 * time.Second, `held by "tester/1"`},
			// --timeout bounds the attempt of -n; a held lock still fails
			// at once.
			{[]string{"-n", "--timeout", "3s"}, 0, 3 * time.Second, `held by "tester/1" .*; retry later or drop -n to wait`},
			{[]string{"--timeout", "1s"}, time.Second, 10 * time.Second,
				`gave up waiting for gs://` + srv.Bucket + `/held after --timeout 1s: it is held by "tester/1" \(token ` + strconv.FormatInt(lease.Token(), 10)},
		}
		for _, tt := range tests {
			t.Run(strings.Join(tt.flags, " "), func(t *testing.T) {
				t.Parallel()
				marker := filepath.Join(t.TempDir(), "ran")
				args := append(append([]string{"run"}, tt.flags...), srv.Bucket, "held", "--", "touch", marker)
				r := dimutexRun(t, srv, args...)
				expectCode(t, r, exitHeld)
				if r.elapsed < tt.min || r.elapsed > tt.max {
					t.Errorf("took %v, want between %v and %v", r.elapsed, tt.min, tt.max)
				}
				if !regexp.MustCompile(tt.stderr).MatchString(r.stderr) {
					t.Errorf("stderr %q does not match %q", r.stderr, tt.stderr)
				}
				checkOneLine(t, r.stderr)
				if _, err := os.Stat(marker); err == nil {
					t.Error("the command ran without the lock")
				}
			})
		}
	})
}

// TestRunExitStatus checks that dimutex exits with the command's status, or
// as a shell would when it cannot run it, and releases the lock either way.
func TestRunExitStatus(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		dir := t.TempDir()
		notExec := filepath.Join(dir, "not-executable")
		if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			command []string
			code    int
			stderr  string
		}{
			{"success", []string{"true"}, 0, ""},
			{"failure", []string{"false"}, 1, ""},
			{"exit 7", []string{"sh", "-c", "exit 7"}, 7, ""},
			{"killed by SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM), ""},
			{"killed by SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + int(syscall.SIGKILL), ""},
			{"not found", []string{"dimutex-no-such-command"}, exitNotFound, `dimutex: command "dimutex-no-such-command" not found`},
			{"missing path", []string{filepath.Join(dir, "missing")}, exitNotFound, `not found`},
			{"not executable", []string{notExec}, exitNotExecutable, `dimutex: cannot execute .*permission denied`},
			{"directory", []string{dir}, exitNotExecutable, `dimutex: cannot execute`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				name := "status-" + strings.ReplaceAll(tt.name, " ", "-")
				r := dimutexRun(t, srv, append([]string{"run", srv.Bucket, name, "--"}, tt.command...)...)
				expectCode(t, r, tt.code)
				if tt.stderr == "" && r.stderr != "" {
					t.Errorf("unexpected stderr %q", r.stderr)
				}
				if tt.stderr != "" {
					if !regexp.MustCompile(tt.stderr).MatchString(r.stderr) {
						t.Errorf("stderr %q does not match %q", r.stderr, tt.stderr)
					}
					checkOneLine(t, r.stderr)
				}
				if g := generation(srv, name); g != 0 {
					t.Errorf("the lock is still there (generation %d)", g)
				}
			})
		}
	})
}

// TestRunEnvironment checks what the command gets: stdin, and the lease's
// variables, which replace inherited ones.
func TestRunEnvironment(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		dir := t.TempDir()
		out, proceed := filepath.Join(dir, "out"), filepath.Join(dir, "proceed")
		script := `read line; printf '%s\n' "stdin=$line" "$DIMUTEX_TOKEN" "$DIMUTEX_LEASE_EXPIRES" "$DIMUTEX_LOCK" "$DIMUTEX_OWNER" "$DIMUTEX_VALUE" > "$1.tmp"
mv "$1.tmp" "$1"; i=0; while [ ! -e "$2" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; echo "to stdout"`
		p := start(t, srv, "hello\n", []string{"DIMUTEX_TOKEN=inherited", "DIMUTEX_LOCK=gs://other/lock", "DIMUTEX_VALUE=inherited"},
			"run", "--owner", "env test", "--value", "leader at host-1:80", srv.Bucket, "env", "--", "sh", "-c", script, "sh", out, proceed)
		begin := time.Now()
		got := strings.Split(strings.TrimSpace(waitFile(t, out)), "\n")
		gen := generation(srv, "env") // the lease has not refreshed: the TTL is 60 s
		if err := os.WriteFile(proceed, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		r := p.wait()
		expectCode(t, r, 0)
		if r.stdout != "to stdout\n" {
			t.Errorf("stdout %q, want %q", r.stdout, "to stdout\n")
		}

		if len(got) != 6 {
			t.Fatalf("the command saw %q", got)
		}
		if got[0] != "stdin=hello" {
			t.Errorf("the command read %q from stdin, want hello", got[0])
		}
		if want := strconv.FormatInt(gen, 10); got[1] != want {
			t.Errorf("DIMUTEX_TOKEN=%q, want the acquiring generation %s", got[1], want)
		}
		expires, err := time.Parse(time.RFC3339, got[2])
		if err != nil || !strings.HasSuffix(got[2], "Z") {
			t.Errorf("DIMUTEX_LEASE_EXPIRES=%q is not RFC 3339 UTC: %v", got[2], err)
		} else if left := expires.Sub(begin); left < 55*time.Second || left > 61*time.Second {
			t.Errorf("DIMUTEX_LEASE_EXPIRES=%q is %v away, want about the 60 s TTL", got[2], left)
		}
		if want := "gs://" + srv.Bucket + "/env"; got[3] != want {
			t.Errorf("DIMUTEX_LOCK=%q, want %q", got[3], want)
		}
		if got[4] != "env test" {
			t.Errorf("DIMUTEX_OWNER=%q, want %q", got[4], "env test")
		}
		if got[5] != "leader at host-1:80" {
			t.Errorf("DIMUTEX_VALUE=%q, want %q", got[5], "leader at host-1:80")
		}
	})
}

// TestRunDefaultOwner checks that the default owner names the host, the
// pid and the command, as status shows it.
func TestRunDefaultOwner(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		out := filepath.Join(t.TempDir(), "out")
		p := start(t, srv, "", nil, "run", srv.Bucket, "owner", "--", "sh", "-c", `echo "$DIMUTEX_OWNER" > "$1"; sleep 0.3`, "sh", out)
		owner := strings.TrimSpace(waitFile(t, out))
		host, _ := os.Hostname()
		want := regexp.MustCompile("^" + regexp.QuoteMeta(host) + `/` + strconv.Itoa(p.cmd.Process.Pid) + ` sh$`)
		if !want.MatchString(owner) {
			t.Errorf("owner %q, want %q", owner, want)
		}
		expectCode(t, p.wait(), 0)
	})
}

// TestRunLeaseLost takes the lock away from a running command: the command
// gets SIGTERM, which it ignores, then SIGKILL after --grace, and dimutex
// exits 75.
func TestRunLeaseLost(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		tests := []struct {
			name string
			take func(t *testing.T, name, token string)
		}{
			{"release --force", func(t *testing.T, name, token string) {
				r := dimutexRun(t, srv, "release", "--force", "--token", token, srv.Bucket, name)
				expectCode(t, r, 0)
			}},
			{"object deleted", func(t *testing.T, name, token string) {
				deleteObject(t, srv, name)
			}},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
				name := "lost-" + strconv.Itoa(i)
				script := `trap 'echo TERM >> "$2"' TERM; echo "$DIMUTEX_TOKEN" > "$1"; ` + loop
				p := start(t, srv, "", nil, "run", "--ttl", "2s", "--grace", "500ms", srv.Bucket, name,
					"--", "sh", "-c", script, "sh", ready, got)
				token := strings.TrimSpace(waitFile(t, ready))
				taken := time.Now()
				tt.take(t, name, token)
				r := p.wait()
				expectCode(t, r, exitLost)
				// The command ignored SIGTERM: only SIGKILL, --grace after it,
				// can have ended it.
				if since := time.Since(taken); since < 500*time.Millisecond || since > 5*time.Second {
					t.Errorf("dimutex exited %v after the lock was taken, want about TTL/3 + grace", since)
				}
				if data, _ := os.ReadFile(got); string(data) != "TERM\n" {
					t.Errorf("the command recorded %q, want one TERM", data)
				}
				if !strings.Contains(r.stderr, "dimutex: lost the lock gs://"+srv.Bucket+"/"+name+" while sh ran; sending it SIGTERM, and SIGKILL in 500ms") {
					t.Errorf("stderr %q does not report the loss", r.stderr)
				}
			})
		}
	})
}

// TestRunForwardsSignals sends signals to dimutex while its command runs:
// they reach the command, and the lock is released after it exits.
// skipIfIgnored skips a test that sends sig to dimutex when this process
// inherited sig as ignored (nohup ignores SIGHUP; a shell's background job,
// SIGINT and SIGQUIT): dimutex, started from here, then leaves it ignored,
// as it should.
func skipIfIgnored(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if signal.Ignored(sig) {
		t.Skipf("%v is ignored in this environment, so dimutex leaves it ignored", sig)
	}
}

func TestRunForwardsSignals(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
			name := strings.TrimPrefix(sigName(sig), "SIG")
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				skipIfIgnored(t, sig)
				dir := t.TempDir()
				ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
				script := `trap 'echo ` + name + ` > "$2"; exit 3' ` + name + `; echo ready > "$1"; ` + loop
				lock := "signal-" + name
				p := start(t, srv, "", nil, "run", srv.Bucket, lock, "--", "sh", "-c", script, "sh", ready, got)
				waitFile(t, ready)
				if generation(srv, lock) == 0 {
					t.Fatal("the command runs but the lock object is missing")
				}
				p.signal(sig)
				r := p.wait()
				expectCode(t, r, 3)
				if data, _ := os.ReadFile(got); string(data) != name+"\n" {
					t.Errorf("the command recorded %q, want %s", data, name)
				}
				if g := generation(srv, lock); g != 0 {
					t.Errorf("the lock is still there (generation %d)", g)
				}
			})
		}
	})
}

// TestRunSignalWhileWaiting stops a waiting dimutex: it exits 128+N without
// running the command, and leaves the holder's lock alone.
func TestRunSignalWhileWaiting(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		lease := hold(t, srv, "wait-signal")
		gen := generation(srv, "wait-signal")
		marker := filepath.Join(t.TempDir(), "ran")
		p := start(t, srv, "", nil, "run", srv.Bucket, "wait-signal", "--", "touch", marker)
		time.Sleep(500 * time.Millisecond) // let it start waiting
		p.signal(syscall.SIGTERM)
		r := p.wait()
		expectCode(t, r, 128+int(syscall.SIGTERM))
		if want := "dimutex: stopped by signal 15 (terminated) while waiting for gs://" + srv.Bucket + "/wait-signal; the command was not started\n"; r.stderr != want {
			t.Errorf("stderr %q, want %q", r.stderr, want)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Error("the command ran")
		}
		if g := generation(srv, "wait-signal"); g != gen || lease.Err() != nil {
			t.Errorf("the holder's lock changed: generation %d, was %d; lease error %v", g, gen, lease.Err())
		}
	})
}

// TestRunMissingBucket checks that a GCS error is reported with a hint and
// status 125.
func TestRunMissingBucket(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		for _, flags := range [][]string{nil, {"-n"}} {
			t.Run(strings.Join(append([]string{"flags"}, flags...), " "), func(t *testing.T) {
				t.Parallel()
				args := append(append([]string{"run"}, flags...), "no-such-bucket", "lock", "--", "true")
				r := dimutexRun(t, srv, args...)
				expectCode(t, r, exitFailed)
				if !strings.Contains(r.stderr, `404 Not Found`) || !strings.Contains(r.stderr, `check that bucket "no-such-bucket" exists`) {
					t.Errorf("stderr %q does not explain the failure", r.stderr)
				}
				checkOneLine(t, r.stderr)
			})
		}
	})
}

// checkOneLine fails unless stderr is one line starting "dimutex: ".
func checkOneLine(t *testing.T, stderr string) {
	t.Helper()
	if !strings.HasPrefix(stderr, "dimutex: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr is not one line starting with \"dimutex: \": %q", stderr)
	}
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}
