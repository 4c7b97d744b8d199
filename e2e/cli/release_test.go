//go:build unix

package cli_test

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// TestRelease force-releases locks in each state, with and without a token.
func TestRelease(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		tests := []struct {
			name    string
			state   string // "free", "held" or "expired"
			flags   func(token int64) []string
			code    int
			deleted bool
			stdout  string
			stderr  string
		}{
			{"right token", "held", func(tok int64) []string { return []string{"--force", "--token", strconv.FormatInt(tok, 10)} },
				exitOK, true, `^released gs://` + srv.Bucket + `/right-token \(was held by "tester/1", token \d+\)\n$`, ""},
			{"wrong token", "held", func(tok int64) []string { return []string{"--force", "--token", strconv.FormatInt(tok+1, 10)} },
				exitHeld, false, "", `^dimutex: gs://` + srv.Bucket + `/wrong-token is held by "tester/1" with token (\d+), not \d+; nothing was deleted`},
			{"no token", "held", func(int64) []string { return []string{"--force"} },
				exitOK, true, `^released gs://` + srv.Bucket + `/no-token \(was held by`, ""},
			{"no force", "held", func(tok int64) []string { return []string{"--token", strconv.FormatInt(tok, 10)} },
				exitUsage, false, "", `^dimutex: release: refusing without --force`},
			{"expired", "expired", func(int64) []string { return []string{"--force"} },
				exitOK, true, `^released gs://` + srv.Bucket + `/expired \(was an expired lease of "other/1", token \d+\)\n$`, ""},
			{"free", "free", func(int64) []string { return []string{"--force"} },
				exitOK, false, `^gs://` + srv.Bucket + `/free is already free; nothing to release\n$`, ""},
			{"free with token", "free", func(int64) []string { return []string{"--force", "--token", "17"} },
				exitOK, false, `already free`, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				lock := regexp.MustCompile(`\W+`).ReplaceAllString(tt.name, "-")
				var token int64
				switch tt.state {
				case "held":
					token = hold(t, srv, lock).Token()
				case "expired":
					// Written by another client with a TTL of 1 ms.
					token = expiredLock(t, srv, lock, "other/1")
				}
				gen := generation(srv, lock)
				r := dimutexRun(t, srv, append(append([]string{"release"}, tt.flags(token)...), srv.Bucket, lock)...)
				expectCode(t, r, tt.code)
				if !regexp.MustCompile(tt.stdout).MatchString(r.stdout) || tt.stdout == "" && r.stdout != "" {
					t.Errorf("stdout %q, want %q", r.stdout, tt.stdout)
				}
				if !regexp.MustCompile(tt.stderr).MatchString(r.stderr) || tt.stderr == "" && r.stderr != "" {
					t.Errorf("stderr %q, want %q", r.stderr, tt.stderr)
				}
				switch g := generation(srv, lock); {
				case tt.deleted && g != 0:
					t.Errorf("the lock is still there (generation %d)", g)
				case !tt.deleted && g != gen:
					t.Errorf("the lock changed: generation %d, was %d", g, gen)
				}
			})
		}
	})
}
