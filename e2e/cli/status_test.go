//go:build unix

package cli_test

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// timeRE matches an RFC 3339 UTC time to the second, as status prints it.
const timeRE = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`

// TestStatus checks both forms of status on a free, a held and an expired
// lock.
func TestStatus(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		tests := []struct {
			state string
			// setup makes the lock's state and returns the holder's
			// token and owner, if any.
			setup func(t *testing.T, name string) (int64, string)
			code  int
			text  string // with TOKEN for the holder's token
		}{
			{"free", func(*testing.T, string) (int64, string) { return 0, "" }, exitOK, `^free\n$`},
			{"held", func(t *testing.T, name string) (int64, string) { return hold(t, srv, name).Token(), "tester/1" }, exitHeld,
				`^held by "tester/1" since ` + timeRE + `, expires in (5\ds|1m[0-2]s) \(TTL 1m0s \+ 1s margin, server time\), token TOKEN\n$`},
			// A lease that another client wrote with a TTL of 1 ms and
			// never refreshed: it expires and stays behind.
			{"expired", func(t *testing.T, name string) (int64, string) {
				return expiredLock(t, srv, name, "other/1"), "other/1"
			}, exitOK,
				`^free \(expired lease of "other/1", token TOKEN, expired \d+(ms|s) ago; the next acquire takes it over\)\n$`},
		}
		for _, tt := range tests {
			t.Run(tt.state, func(t *testing.T) {
				t.Parallel()
				token, owner := tt.setup(t, tt.state)
				tt.text = strings.ReplaceAll(tt.text, "TOKEN", strconv.FormatInt(token, 10))
				st, r := waitState(t, srv, tt.state, tt.state)
				expectCode(t, r, tt.code)
				if st.Lock != "gs://"+srv.Bucket+"/"+tt.state || st.Held != (tt.state == "held") {
					t.Errorf("lock %q held %v", st.Lock, st.Held)
				}
				if token == 0 {
					if st.Owner != nil || st.Token != nil || st.Generation != nil || st.Acquired != nil ||
						st.Updated != nil || st.TTLSeconds != nil || st.ExpiresInSeconds != nil || st.Expires != nil || st.ServerTime != nil ||
						st.Value != nil || st.TTLCapped != nil || st.MarginSeconds != nil || st.LeaseExpires != nil || st.Slots != nil {
						t.Errorf("a free lock has details: %+v", st)
					}
				} else {
					checkHeldJSON(t, srv, tt.state, token, owner, st)
				}

				r = dimutexRun(t, srv, "status", srv.Bucket, tt.state)
				expectCode(t, r, tt.code)
				if !regexp.MustCompile(tt.text).MatchString(r.stdout) {
					t.Errorf("status printed %q, want %q", r.stdout, tt.text)
				}
				if r.stderr != "" {
					t.Errorf("unexpected stderr %q", r.stderr)
				}
			})
		}
	})
}

// statusJSON is the documented output of `status --json`.
type statusJSON struct {
	Lock             string   `json:"lock"`
	State            string   `json:"state"`
	Held             bool     `json:"held"`
	Owner            *string  `json:"owner"`
	Token            *int64   `json:"token"`
	Generation       *int64   `json:"generation"`
	Acquired         *string  `json:"acquired"`
	Updated          *string  `json:"updated"`
	TTLSeconds       *float64 `json:"ttl_seconds"`
	ExpiresInSeconds *float64 `json:"expires_in_seconds"`
	Expires          *string  `json:"expires"`
	ServerTime       *string  `json:"server_time"`
	Value            *string  `json:"value"`
	TTLCapped        *bool    `json:"ttl_capped"`
	MarginSeconds    *float64 `json:"margin_seconds"`
	LeaseExpires     *string  `json:"lease_expires"`
	Slots            *int     `json:"slots"`
}

// jsonTimes parses the named times of st, failing the test unless each is
// RFC 3339 UTC.
func parseJSONTime(t *testing.T, name string, s *string) time.Time {
	t.Helper()
	if s == nil {
		t.Errorf("%s is null", name)
		return time.Time{}
	}
	tm, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil || (*s)[len(*s)-1] != 'Z' {
		t.Errorf("%s %q is not RFC 3339 UTC: %v", name, *s, err)
	}
	return tm
}

// checkHeldJSON checks the fields of a lock that exists: held (by hold,
// with the default TTL) or expired (by expiredLock, with 1 ms).
func checkHeldJSON(t *testing.T, srv *backend.Server, lock string, token int64, owner string, st statusJSON) {
	t.Helper()
	if st.Owner == nil || *st.Owner != owner {
		t.Errorf("owner %v, want %q", st.Owner, owner)
	}
	if st.Token == nil || *st.Token != token {
		t.Errorf("token %v, want %d", st.Token, token)
	}
	if st.Generation == nil || *st.Generation != generation(srv, lock) {
		t.Errorf("generation %v, want %d", st.Generation, generation(srv, lock))
	}
	parseJSONTime(t, "acquired", st.Acquired)
	parseJSONTime(t, "server_time", st.ServerTime)
	updated := parseJSONTime(t, "updated", st.Updated)
	expires := parseJSONTime(t, "expires", st.Expires)
	leaseExpires := parseJSONTime(t, "lease_expires", st.LeaseExpires)
	if st.TTLSeconds == nil || st.ExpiresInSeconds == nil || st.MarginSeconds == nil || st.TTLCapped == nil || st.Value == nil {
		t.Fatalf("ttl_seconds %v expires_in_seconds %v margin_seconds %v ttl_capped %v value %v",
			st.TTLSeconds, st.ExpiresInSeconds, st.MarginSeconds, st.TTLCapped, st.Value)
	}
	if *st.MarginSeconds != 1 || *st.TTLCapped || *st.Value != "" || st.Slots != nil {
		t.Errorf("margin_seconds %v ttl_capped %v value %q slots %v, want 1, false, \"\", null", *st.MarginSeconds, *st.TTLCapped, *st.Value, st.Slots)
	}
	ttl := time.Duration(*st.TTLSeconds * float64(time.Second))
	// lease_expires is updated + TTL; expires adds the margin, judged
	// from the server's clock, which counts whole seconds.
	if !leaseExpires.Equal(updated.Add(ttl)) {
		t.Errorf("lease_expires %v, want updated %v + TTL %v", leaseExpires, updated, ttl)
	}
	if d := expires.Sub(leaseExpires); d < 0 || d > time.Second {
		t.Errorf("expires %v is %v after lease_expires %v, want the 1 s margin or up to a second less", expires, d, leaseExpires)
	}
	switch st.State {
	case "held":
		// TTL, plus the 1 s margin, plus up to 1 s since the server's
		// clock counts whole seconds, less the time since the refresh.
		if *st.TTLSeconds != 60 || *st.ExpiresInSeconds <= 55 || *st.ExpiresInSeconds > 62 {
			t.Errorf("ttl_seconds %v expires_in_seconds %v, want 60 and about 60", *st.TTLSeconds, *st.ExpiresInSeconds)
		}
	case "expired":
		if *st.TTLSeconds != 0.001 || *st.ExpiresInSeconds >= 0 {
			t.Errorf("ttl_seconds %v expires_in_seconds %v, want 0.001 and negative", *st.TTLSeconds, *st.ExpiresInSeconds)
		}
	}
}

// TestStatusJSONKeys pins the names of the documented JSON fields.
func TestStatusJSONKeys(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		hold(t, srv, "keys")
		r := dimutexRun(t, srv, "status", "--json", srv.Bucket, "keys")
		var m map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
			t.Fatal(err)
		}
		want := []string{"lock", "state", "held", "owner", "token", "generation", "acquired", "updated",
			"ttl_seconds", "expires_in_seconds", "expires", "server_time",
			"value", "ttl_capped", "margin_seconds", "lease_expires", "slots"}
		for _, k := range want {
			if _, ok := m[k]; !ok {
				t.Errorf("no key %q in %s", k, r.stdout)
			}
		}
		if len(m) != len(want) {
			t.Errorf("%d keys, want %d: %s", len(m), len(want), r.stdout)
		}
		// Tokens and generations are numbers, small enough for a float64.
		if tok, ok := m["token"].(float64); !ok || tok <= 0 || tok >= 1<<53 {
			t.Errorf("token %v is not a safe JSON number", m["token"])
		}
	})
}

// TestStatusTTLCapped reads a lock whose stored TTL is unusable: it is
// judged as the 24 h maximum, and both forms say so.
func TestStatusTTLCapped(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		token := writeObject(t, srv, "capped", lockMetadata("other/1", "not a number"), "")
		r := dimutexRun(t, srv, "status", srv.Bucket, "capped")
		expectCode(t, r, exitHeld)
		want := `^held by "other/1" since ` + timeRE + `, expires in (24h0m[01]s|23h\d+m\d+s) \(TTL 24h0m0s \+ 1s margin, server time\), token ` +
			strconv.FormatInt(token, 10) + `; its stored TTL is missing or unusable, so it is judged as 24h0m0s\n$`
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("status printed %q, want %q", r.stdout, want)
		}
		st, r := statusOf(t, srv, "capped")
		expectCode(t, r, exitHeld)
		if st.State != "held" || st.TTLCapped == nil || !*st.TTLCapped || st.TTLSeconds == nil || *st.TTLSeconds != 86400 {
			t.Errorf("state %q ttl_capped %v ttl_seconds %v, want held, true, 86400", st.State, st.TTLCapped, st.TTLSeconds)
		}
		// run agrees: the lock is held for a day, so -n fails at once.
		r = dimutexRun(t, srv, "run", "-n", srv.Bucket, "capped", "--", "true")
		expectCode(t, r, exitHeld)
		if !strings.Contains(r.stderr, `is held by "other/1" (token `+strconv.FormatInt(token, 10)+`) for up to 24h0m`) {
			t.Errorf("stderr %q", r.stderr)
		}
	})
}

// TestNotALock puts an object that dimutex did not write at a lock's name:
// status reports it, and no command overwrites or deletes it.
func TestNotALock(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		gen := writeObject(t, srv, "plain", nil, "someone else's data\n")
		lock := "gs://" + srv.Bucket + "/plain"
		notALock := `^dimutex: ` + lock + ` is not a dimutex lock: it holds an object `
		tests := []struct {
			name   string
			args   []string
			code   int
			stdout string
			stderr string
		}{
			{"status", []string{"status", srv.Bucket, "plain"}, exitHeld,
				`^not a dimutex lock \(an object without dimutex's lease metadata, generation ` + strconv.FormatInt(gen, 10) +
					`, updated ` + timeRE + `\); dimutex never overwrites or deletes it\n$`, ""},
			{"release", []string{"release", "--force", srv.Bucket, "plain"}, exitHeld, "",
				`^dimutex: ` + lock + ` is not a dimutex lock \(an object without dimutex's lease metadata, generation \d+\); release deletes only dimutex locks, so nothing was deleted\n$`},
			{"release with token", []string{"release", "--force", "--token", strconv.FormatInt(gen, 10), srv.Bucket, "plain"}, exitHeld, "",
				`is not a dimutex lock .*nothing was deleted\n$`},
			{"run", []string{"run", srv.Bucket, "plain", "--", "true"}, exitFailed, "",
				notALock + `\(generation \d+\) without dimutex's lease metadata; dimutex never overwrites it: pick another NAME\n$`},
			{"run -n", []string{"run", "-n", srv.Bucket, "plain", "--", "true"}, exitFailed, "",
				notALock + `of 20 bytes \([^)]*generation \d+\) without dimutex's lease metadata; dimutex never overwrites it: pick another NAME\n$`},
			{"run --timeout", []string{"run", "--timeout", "5s", srv.Bucket, "plain", "--", "true"}, exitFailed, "", notALock},
			{"leader", []string{"leader", srv.Bucket, "plain"}, exitFailed, "", notALock + `.*; it cannot hold an election\n$`},
			{"leader --watch", []string{"leader", "--watch", srv.Bucket, "plain"}, exitFailed, "", notALock + `.*; it cannot hold an election\n$`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
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
				if r.elapsed > 5*time.Second {
					t.Errorf("took %v: it should refuse at once", r.elapsed)
				}
				if g := generation(srv, "plain"); g != gen {
					t.Errorf("the object changed: generation %d, was %d", g, gen)
				}
			})
		}
		t.Run("json", func(t *testing.T) {
			t.Parallel()
			st, r := statusOf(t, srv, "plain")
			expectCode(t, r, exitHeld)
			if st.State != "not-a-lock" || st.Held || st.Generation == nil || *st.Generation != gen ||
				st.Updated == nil || st.ServerTime == nil {
				t.Errorf("status --json: %s", r.stdout)
			}
			if st.Owner != nil || st.Token != nil || st.TTLSeconds != nil || st.Expires != nil || st.ExpiresInSeconds != nil ||
				st.Value != nil || st.TTLCapped != nil || st.MarginSeconds != nil || st.LeaseExpires != nil {
				t.Errorf("an object that is not a lock has a lease's details: %s", r.stdout)
			}
		})
	})
}

// statusOf runs status --json on lock once.
func statusOf(t *testing.T, srv *backend.Server, lock string) (statusJSON, result) {
	t.Helper()
	r := dimutexRun(t, srv, "status", srv.Bucket, lock, "--json")
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json printed %q: %v", r.stdout, err)
	}
	return st, r
}

// waitState waits until status --json reports lock in state. An expired
// lease needs its TTL plus the one-second margin to pass by the server's
// clock, which counts whole seconds.
func waitState(t *testing.T, srv *backend.Server, lock, state string) (statusJSON, result) {
	t.Helper()
	var (
		st statusJSON
		r  result
	)
	waitFor(t, lock+" to be "+state, 5*time.Second, func() bool {
		st, r = statusOf(t, srv, lock)
		return st.State == state
	})
	return st, r
}

// TestStatusValue checks that the value a holder publishes shows in both
// forms of status.
func TestStatusValue(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		value := "primary at db-1:5432 \"quoted\""
		lease := hold(t, srv, "value", dimutex.WithValue(value))
		r := dimutexRun(t, srv, "status", srv.Bucket, "value")
		expectCode(t, r, exitHeld)
		want := `, token ` + strconv.FormatInt(lease.Token(), 10) + `, value ` + regexp.QuoteMeta(strconv.Quote(value)) + `\n$`
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("status printed %q, want %q", r.stdout, want)
		}
		st, _ := statusOf(t, srv, "value")
		if st.Value == nil || *st.Value != value {
			t.Errorf("value %v, want %q", st.Value, value)
		}
	})
}

// TestTimes checks that the times status prints agree with each other to
// the second: expires is updated + TTL + margin.
func TestTimes(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		hold(t, srv, "times", dimutex.WithTTL(5*time.Second))
		st, _ := statusOf(t, srv, "times")
		updated := parseJSONTime(t, "updated", st.Updated)
		server := parseJSONTime(t, "server_time", st.ServerTime)
		expires := parseJSONTime(t, "expires", st.Expires)
		if st.ExpiresInSeconds == nil {
			t.Fatal("expires_in_seconds is null")
		}
		if d := expires.Sub(server).Seconds() - *st.ExpiresInSeconds; math.Abs(d) > 0.001 {
			t.Errorf("expires %v - server_time %v differs from expires_in_seconds %v", expires, server, *st.ExpiresInSeconds)
		}
		if d := updated.Add(6 * time.Second).Sub(expires); d < 0 || d > time.Second {
			t.Errorf("expires %v, want updated %v + 5 s TTL + 1 s margin, or up to a second less", expires, updated)
		}
	})
}
