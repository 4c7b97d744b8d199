package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/dimutex/dimutex"
)

const statusHelp = `Usage: dimutex status [--json] [flags] BUCKET NAME

Read the lock gs://BUCKET/NAME once and say who holds it:

  free
  free (expired lease of "OWNER", token N, expired D ago; the next acquire takes it over)
  held by "OWNER" since T, expires in D (server time), token N

T is when the holder acquired the lock (RFC 3339, UTC). D is judged by the
server's clock, as waiters judge it. The answer may be stale as soon as it
is printed.

Flags:
  --json          print one JSON object instead (below)
  --endpoint URL  the JSON API root (overrides STORAGE_EMULATOR_HOST)
  -v              log requests and retries to stderr

JSON fields (fields may be added, never removed or changed):
  lock                string  "gs://BUCKET/NAME"
  state               string  "free", "held", or "expired" (the object
                              exists but its lease has run out: free to take)
  held                bool    state == "held"
  owner               string  the holder's --owner
  token               number  the holder's fencing token
  generation          number  the object's generation (what release deletes)
  acquired            string  when the holder acquired the lock, RFC 3339 UTC
  updated             string  when the holder last refreshed it, RFC 3339 UTC
  ttl_seconds         number  the holder's TTL
  expires_in_seconds  number  time left by server time; negative once expired
  expires             string  when the lease expires by server time, RFC 3339
                              UTC; null if the server sent no time
  server_time         string  the server's clock at the read (to the second)
All but lock, state and held are null when the state is "free".

Exit status: 0 free or expired, 1 held, 2 usage, 125 failure.
`

// statusArgs are the parsed arguments of `dimutex status`.
type statusArgs struct {
	common
	json         bool
	bucket, name string
}

func (a *statusArgs) flags() *flag.FlagSet {
	fs := newFlagSet("status")
	fs.BoolVar(&a.json, "json", false, "print JSON")
	a.common.register(fs)
	return fs
}

func parseStatus(args []string) (*statusArgs, error) {
	a := new(statusArgs)
	pos, err := parseArgs(a.flags(), args)
	if err != nil {
		return nil, err
	}
	if a.bucket, a.name, err = lockArgs(pos); err != nil {
		return nil, err
	}
	return a, nil
}

// cmdStatus is `dimutex status`.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	a, err := parseStatus(args)
	if err != nil {
		return parseFailed("status", statusHelp, err, stdout, stderr)
	}
	m, err := a.newMutex(a.bucket, a.name, stderr)
	if err != nil {
		return configFailed("status", err, a.bucket, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	st, err := m.Inspect(ctx)
	if err != nil {
		return failed(stderr, "reading "+m.String(), err, a.bucket)
	}
	if a.json {
		out, err := json.Marshal(newStatusJSON(m, st))
		if err != nil {
			return failed(stderr, "encoding the status", err, a.bucket)
		}
		fmt.Fprintf(stdout, "%s\n", out)
	} else {
		fmt.Fprintln(stdout, statusText(st))
	}
	if st.Held {
		return exitHeld
	}
	return exitOK
}

// statusText is the one-line text form of st.
func statusText(st dimutex.Status) string {
	switch {
	case st.Held && st.ServerTime.IsZero():
		return fmt.Sprintf("held by %q since %s, expires within %v (the server sent no time), token %d",
			st.Owner, timeText(st.Acquired), roundDuration(st.ExpiresIn), st.Token)
	case st.Held:
		return fmt.Sprintf("held by %q since %s, expires in %v (server time), token %d",
			st.Owner, timeText(st.Acquired), roundDuration(st.ExpiresIn), st.Token)
	case st.Exists:
		return fmt.Sprintf("free (expired lease of %q, token %d, expired %v ago; the next acquire takes it over)",
			st.Owner, st.Token, roundDuration(-st.ExpiresIn))
	}
	return "free"
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}

// statusJSON is the documented output of `status --json`; see statusHelp.
// Fields may be added, never removed or changed.
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

func newStatusJSON(m *dimutex.Mutex, st dimutex.Status) statusJSON {
	j := statusJSON{Lock: m.String(), State: "free", Held: st.Held}
	if !st.Exists {
		return j
	}
	j.State = "expired"
	if st.Held {
		j.State = "held"
	}
	j.Owner = &st.Owner
	j.Token = &st.Token
	j.Generation = &st.Generation
	j.Acquired = jsonTime(st.Acquired)
	j.Updated = jsonTime(st.Updated)
	j.TTLSeconds = ptr(st.TTL.Seconds())
	j.ExpiresInSeconds = ptr(st.ExpiresIn.Seconds())
	j.ServerTime = jsonTime(st.ServerTime)
	if !st.ServerTime.IsZero() {
		j.Expires = jsonTime(st.ServerTime.Add(st.ExpiresIn))
	}
	return j
}

// jsonTime returns t as RFC 3339 UTC, or nil for the zero time.
func jsonTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	return ptr(t.UTC().Format(time.RFC3339Nano))
}

func ptr[T any](v T) *T { return &v }
