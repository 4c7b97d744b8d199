//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dimutex/dimutex/auth"
	"github.com/dimutex/dimutex/gcsjson"
)

// TestNoCredentials checks the message for credentials that are nowhere
// to be found: it lists where they were looked for, in terms of the
// command line, not of the library's options. (The binary cannot show it
// here: it would ask the GCE metadata server, off this machine.)
func TestNoCredentials(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	// The library's error, as the CLI gets it through its token source.
	err := fmt.Errorf("dimutex: inspect: %w", &gcsjson.Error{Op: "get", Bucket: "b-b", Object: "n", Attempts: 1,
		Err: fmt.Errorf("auth: getting an access token from the WithTokenSource option: %w",
			fmt.Errorf("auth: no credentials found; looked for the WithTokenSource option (not given), ...: %w", auth.ErrNoCredentials))})
	var buf bytes.Buffer
	if code := failed(&buf, "reading gs://b-b/n", err, "b-b"); code != exitFailed {
		t.Errorf("exit status %d, want %d", code, exitFailed)
	}
	want := "dimutex: reading gs://b-b/n: no Google Cloud credentials found: looked for $GOOGLE_APPLICATION_CREDENTIALS (not set), " +
		"gcloud's application-default credentials \"" + filepath.Join(home, ".config/gcloud/application_default_credentials.json") + "\" (not found), " +
		"and the GCE metadata server (not detected); set GOOGLE_APPLICATION_CREDENTIALS to a key file, run 'gcloud auth application-default login', " +
		"or, for an emulator, set STORAGE_EMULATOR_HOST or give --endpoint HOST:PORT\n"
	if buf.String() != want {
		t.Errorf("got  %q\nwant %q", buf.String(), want)
	}
}

// TestDescribe checks how failed requests are described: by status, or by
// the time spent without an answer, without the library's prefixes.
func TestDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err   error
		bound time.Duration
		want  string
	}{
		{&gcsjson.Error{Op: "get", Bucket: "b", Object: "n", Code: 403, Reason: "forbidden", Message: "no access", Attempts: 1}, 0,
			"403 Forbidden (forbidden): no access"},
		{fmt.Errorf("dimutex: inspect: %w", &gcsjson.Error{Op: "get", Code: 503, Attempts: 4}), 0,
			"503 Service Unavailable [after 4 attempts]"},
		{&gcsjson.Error{Op: "get", Err: context.DeadlineExceeded, Message: "dial tcp 127.0.0.1:1: connection refused", Attempts: 18}, 30 * time.Second,
			"no answer within 30s (18 attempts; the last: dial tcp 127.0.0.1:1: connection refused)"},
		{&gcsjson.Error{Op: "get", Err: context.DeadlineExceeded, Attempts: 3}, 0, "no answer in time (3 attempts)"},
		{fmt.Errorf("dimutex: something else"), 0, "something else"},
	}
	for _, tt := range tests {
		if got := describe(tt.err, tt.bound); got != tt.want {
			t.Errorf("describe(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestCredentialsErrors runs the binary with credentials that cannot be
// used: one line names the file and the problem, in the command line's
// terms. No request leaves: the credentials fail first.
func TestCredentialsErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	r := start(t, "", []string{"GOOGLE_APPLICATION_CREDENTIALS=" + missing, "HOME=" + dir},
		"status", "--endpoint", "https://127.0.0.1:1", "b-b", "n").wait()
	expectCode(t, r, exitFailed)
	want := "dimutex: reading gs://b-b/n: the credentials file $GOOGLE_APPLICATION_CREDENTIALS=\"" + missing +
		"\": cannot read file: no such file or directory; fix or replace the credentials file\n"
	if r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}

// TestEmulatorHostError checks that a bad STORAGE_EMULATOR_HOST is named
// as the variable, not as the library's option.
func TestEmulatorHostError(t *testing.T) {
	t.Parallel()
	r := start(t, "", []string{"STORAGE_EMULATOR_HOST=bad host"}, "status", "b-b", "n").wait()
	expectCode(t, r, exitUsage)
	if want := "dimutex: status: $STORAGE_EMULATOR_HOST=\"bad host\": contains whitespace\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}

// hangingServer accepts connections and never answers. It returns its
// address, HOST:PORT.
func hangingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestTimeouts checks that an endpoint that refuses connections or never
// answers makes each command fail with status 125 after --timeout, with a
// message that says so.
func TestTimeouts(t *testing.T) {
	t.Parallel()
	endpoints := map[string]string{
		"refused": "127.0.0.1:1", // nothing listens on port 1
		"hanging": hangingServer(t),
	}
	tests := []struct {
		args   []string
		stderr string // after "dimutex: "
	}{
		{[]string{"status", "--timeout", "1s", "b-b", "n"}, `reading gs://b-b/n: no answer within 1s \(\d+ attempts`},
		{[]string{"status", "--slots", "2", "--timeout", "1s", "b-b", "n"}, `reading the semaphore gs://b-b/n: no answer within 1s`},
		{[]string{"release", "--force", "--timeout", "1s", "b-b", "n"}, `reading gs://b-b/n: no answer within 1s`},
		{[]string{"list", "--timeout", "1s", "b-b", "p/"}, `listing gs://b-b/p/: no answer within 1s`},
		{[]string{"leader", "--timeout", "1s", "b-b", "n"}, `reading gs://b-b/n: no answer within 1s`},
		{[]string{"leader", "--watch", "--timeout", "1s", "b-b", "n"}, `watching gs://b-b/n: no answer within 1s`},
		// run bounds its first read, and -n, by --timeout when it is
		// shorter than 30s.
		{[]string{"run", "--timeout", "1s", "b-b", "n", "--", "true"}, `reading gs://b-b/n: no answer within 1s`},
		{[]string{"run", "-n", "--timeout", "1s", "b-b", "n", "--", "true"}, `acquiring gs://b-b/n: no answer within 1s`},
		{[]string{"run", "--slots", "2", "--timeout", "1s", "b-b", "n", "--", "true"}, `reading gs://b-b/n: no answer within 1s`},
	}
	for kind, ep := range endpoints {
		for _, tt := range tests {
			t.Run(kind+" "+strings.Join(tt.args, " "), func(t *testing.T) {
				t.Parallel()
				r := start(t, "", []string{"STORAGE_EMULATOR_HOST=" + ep}, tt.args...).wait()
				expectCode(t, r, exitFailed)
				limit := 5 * time.Second
				if kind == "hanging" && tt.args[1] == "-n" {
					// The write may have landed: the library spends up
					// to 5 s more removing the lock it may have made.
					limit += 5 * time.Second
				}
				if r.elapsed < time.Second || r.elapsed > limit {
					t.Errorf("took %v, want about the 1s of --timeout", r.elapsed)
				}
				if !regexp.MustCompile(`^dimutex: ` + tt.stderr + `.*; check the network \(and --endpoint or STORAGE_EMULATOR_HOST, if set\), then retry, or give a longer --timeout\n$`).MatchString(r.stderr) {
					t.Errorf("stderr %q, want %q", r.stderr, tt.stderr)
				}
			})
		}
	}
}

// TestDefaultTimeout checks the default bound: 30 s without an answer.
func TestDefaultTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 30s")
	}
	t.Parallel()
	p := start(t, "", []string{"STORAGE_EMULATOR_HOST=" + hangingServer(t)}, "status", "b-b", "n")
	select {
	case <-p.done:
	case <-time.After(45 * time.Second):
		t.Fatal("status did not give up in 45s")
	}
	r := p.res
	expectCode(t, r, exitFailed)
	if r.elapsed < 30*time.Second || r.elapsed > 35*time.Second {
		t.Errorf("took %v, want 30s", r.elapsed)
	}
	if !strings.HasPrefix(r.stderr, "dimutex: reading gs://b-b/n: no answer within 30s (") {
		t.Errorf("stderr %q", r.stderr)
	}
}
