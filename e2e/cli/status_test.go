//go:build unix

package cli_test

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// TestStatus checks both forms of status on a free, a held and an expired
// lock.
func TestStatus(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		tests := []struct {
			state string
			opts  []dimutex.Option // of the holder, if any
			code  int
			text  string // with TOKEN for the holder's token
		}{
			{"free", nil, exitOK, `^free\n$`},
			{"held", []dimutex.Option{}, exitHeld,
				`^held by "tester/1" since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, expires in (5\ds|1m[0-2]s) \(server time\), token TOKEN\n$`},
			// A lease that is never refreshed: it expires and stays behind.
			{"expired", []dimutex.Option{dimutex.WithTTL(10 * time.Millisecond), dimutex.WithRefreshInterval(0)}, exitOK,
				`^free \(expired lease of "tester/1", token TOKEN, expired \d+(ms|s) ago; the next acquire takes it over\)\n$`},
		}
		for _, tt := range tests {
			t.Run(tt.state, func(t *testing.T) {
				t.Parallel()
				var lease *dimutex.Lease
				if tt.opts != nil {
					lease = hold(t, srv, tt.state, tt.opts...)
					tt.text = strings.ReplaceAll(tt.text, "TOKEN", strconv.FormatInt(lease.Token(), 10))
				}
				st, r := waitState(t, srv, tt.state, tt.state)
				expectCode(t, r, tt.code)
				if st.Lock != "gs://"+srv.Bucket+"/"+tt.state || st.Held != (tt.state == "held") {
					t.Errorf("lock %q held %v", st.Lock, st.Held)
				}
				if lease == nil {
					if st.Owner != nil || st.Token != nil || st.Generation != nil || st.Acquired != nil ||
						st.Updated != nil || st.TTLSeconds != nil || st.ExpiresInSeconds != nil || st.Expires != nil || st.ServerTime != nil {
						t.Errorf("a free lock has details: %+v", st)
					}
				} else {
					checkHeldJSON(t, srv, tt.state, lease, st)
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
}

func checkHeldJSON(t *testing.T, srv *backend.Server, lock string, lease *dimutex.Lease, st statusJSON) {
	t.Helper()
	if st.Owner == nil || *st.Owner != "tester/1" {
		t.Errorf("owner %v", st.Owner)
	}
	if st.Token == nil || *st.Token != lease.Token() {
		t.Errorf("token %v, want %d", st.Token, lease.Token())
	}
	if st.Generation == nil || *st.Generation != generation(srv, lock) {
		t.Errorf("generation %v, want %d", st.Generation, generation(srv, lock))
	}
	for name, s := range map[string]*string{"acquired": st.Acquired, "updated": st.Updated, "expires": st.Expires, "server_time": st.ServerTime} {
		if s == nil {
			t.Errorf("%s is null", name)
		} else if _, err := time.Parse(time.RFC3339Nano, *s); err != nil || (*s)[len(*s)-1] != 'Z' {
			t.Errorf("%s %q is not RFC 3339 UTC: %v", name, *s, err)
		}
	}
	if st.TTLSeconds == nil || st.ExpiresInSeconds == nil {
		t.Fatalf("ttl_seconds %v expires_in_seconds %v", st.TTLSeconds, st.ExpiresInSeconds)
	}
	switch st.State {
	case "held":
		// TTL, plus the 1 s margin, plus up to 1 s since the server's
		// clock counts whole seconds, less the time since the refresh.
		if *st.TTLSeconds != 60 || *st.ExpiresInSeconds <= 55 || *st.ExpiresInSeconds > 62 {
			t.Errorf("ttl_seconds %v expires_in_seconds %v, want 60 and about 60", *st.TTLSeconds, *st.ExpiresInSeconds)
		}
	case "expired":
		if *st.TTLSeconds != 0.01 || *st.ExpiresInSeconds >= 0 {
			t.Errorf("ttl_seconds %v expires_in_seconds %v, want 0.01 and negative", *st.TTLSeconds, *st.ExpiresInSeconds)
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
			"ttl_seconds", "expires_in_seconds", "expires", "server_time"}
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
		r = dimutexRun(t, srv, "status", srv.Bucket, lock, "--json")
		st = statusJSON{}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("status --json printed %q: %v", r.stdout, err)
		}
		return st.State == state
	})
	return st, r
}
