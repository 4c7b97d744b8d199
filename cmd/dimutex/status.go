package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/dimutex/dimutex"
)

const statusHelp = `Usage: dimutex status [--json] [--slots N] [flags] BUCKET NAME

Read the lock gs://BUCKET/NAME once and say who holds it, in one line:

  free
  free (expired lease of "OWNER", token N, expired D ago; the next acquire takes it over)
  held by "OWNER" since T, expires in D (TTL X + 1s margin, server time), token N
  not a dimutex lock (an object without dimutex's lease metadata, generation G, updated T); dimutex never overwrites or deletes it

T is when the holder acquired the lock (RFC 3339, UTC). X is the holder's
TTL. D is when a waiter may take the lock over, judged by the server's
clock as waiters judge it: the holder's last refresh, plus X, plus a 1s
safety margin, so D can exceed X by up to that second. A held lock adds
', value "V"' if its holder publishes one (run --value), and ', a slot of
a semaphore of N' for a semaphore's slot. If the server sent no time, the
line says 'expires within D (TTL X + 1s margin; the server sent no time)'.
A lock whose stored TTL is missing, unreadable or above 24h is judged as
24h, and its line ends '; its stored TTL is missing or unusable, so it is
judged as 24h0m0s'. The answer may be stale as soon as it is printed.

An object at NAME that was not written by dimutex is "not a dimutex lock":
dimutex never overwrites or deletes it, so it cannot be taken (exit 1).

With --slots N, read the semaphore NAME of N slots (dimutex run --slots N)
with one list request, and print one line per slot, "slot-000: " followed
by the slot's status as above.

Flags:
  --json          print one JSON object instead (below)
  --slots N       read the semaphore NAME of N slots (1 to 1000)
  --timeout D     give up after D without an answer from GCS (default 30s)
  --endpoint URL  the JSON API root (overrides STORAGE_EMULATOR_HOST)
  -v              log requests and retries to stderr

JSON fields (fields may be added, never removed or changed):
  lock                string  "gs://BUCKET/NAME"
  state               string  "free", "held", "expired" (the object
                              exists but its lease has run out: free to
                              take) or "not-a-lock"
  held                bool    state == "held"
  owner               string  the holder's --owner
  value               string  the value its holder publishes ("" if none)
  token               number  the holder's fencing token
  generation          number  the object's generation (what release deletes)
  acquired            string  when the holder acquired the lock, RFC 3339 UTC
  updated             string  when the holder last refreshed it, RFC 3339 UTC
  ttl_seconds         number  the holder's TTL
  ttl_capped          bool    the stored TTL was missing, unreadable or
                              over 24h, so ttl_seconds is 86400
  margin_seconds      number  the safety margin (1) that waiters add to
                              the TTL before they take over
  lease_expires       string  updated + ttl_seconds, RFC 3339 UTC: when the
                              holder's own lease ends unless refreshed
  expires             string  when a waiter may take the lock over, by
                              server time: updated + ttl_seconds +
                              margin_seconds, RFC 3339 UTC; null if the
                              server sent no time
  expires_in_seconds  number  the time left until expires, by server time
                              (so it includes the margin); negative once
                              expired
  server_time         string  the server's clock at the read (to the second)
  slots               number  the size of the semaphore this object is a
                              slot of; null for a plain lock
All but lock, state and held are null when the state is "free"; for
"not-a-lock", generation, updated and server_time are set.

With --slots N, --json prints one object:
  semaphore  string  "gs://BUCKET/NAME"
  size       number  N
  holders    number  how many slots are held
  full       bool    every slot is held
  slots      array   one object per slot, with the fields above ("lock"
                     is the slot, gs://BUCKET/NAME/slot-000 and on)

Exit status: 0 free or expired (with --slots: a slot is free or expired);
1 held or not a dimutex lock (with --slots: every slot is held, or a slot
is not a dimutex lock, which blocks the semaphore); 2 usage; 125 failure,
or (with --slots) a slot is held with another size than N, which
'dimutex run --slots N' would refuse.
`

// statusArgs are the parsed arguments of `dimutex status`.
type statusArgs struct {
	common
	json         bool
	slots        int
	timeout      time.Duration
	bucket, name string
}

func (a *statusArgs) flags() *flag.FlagSet {
	fs := newFlagSet("status")
	fs.BoolVar(&a.json, "json", false, "print JSON")
	fs.IntVar(&a.slots, "slots", 0, "semaphore size")
	registerTimeout(fs, &a.timeout)
	a.common.register(fs)
	return fs
}

func parseStatus(args []string) (*statusArgs, error) {
	a := new(statusArgs)
	fs := a.flags()
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if a.bucket, a.name, err = lockArgs(pos); err != nil {
		return nil, err
	}
	if err := checkTimeout(a.timeout); err != nil {
		return nil, err
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "slots" })
	if set && a.slots <= 0 {
		return nil, usagef("--slots %d: it must be from 1 to %d", a.slots, dimutex.MaxSlots)
	}
	return a, nil
}

// cmdStatus is `dimutex status`.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	a, err := parseStatus(args)
	if err != nil {
		return parseFailed("status", statusHelp, err, stdout, stderr)
	}
	if a.slots > 0 {
		return semaphoreStatus(a, stdout, stderr)
	}
	m, err := a.newMutex(a.bucket, a.name, stderr)
	if err != nil {
		return configFailed("status", err, &a.common, a.bucket, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	st, err := m.Inspect(ctx)
	if err != nil {
		return failedWithin(stderr, "reading "+m.String(), err, a.bucket, a.timeout)
	}
	if a.json {
		if err := printJSON(stdout, newStatusJSON(m.String(), st)); err != nil {
			return failed(stderr, "encoding the status", err, a.bucket)
		}
	} else {
		fmt.Fprintln(stdout, statusText(st))
	}
	if st.Held || st.NotALock {
		return exitHeld
	}
	return exitOK
}

// printJSON prints v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

// statusText is the one-line text form of st.
func statusText(st dimutex.Status) string {
	var s string
	switch {
	case st.NotALock:
		return fmt.Sprintf("not a dimutex lock (an object without dimutex's lease metadata, generation %d, updated %s); dimutex never overwrites or deletes it",
			st.Generation, timeText(st.Updated))
	case !st.Exists:
		return "free"
	case st.Held && st.ServerTime.IsZero():
		s = fmt.Sprintf("held by %q since %s, expires within %v (TTL %v + %v margin; the server sent no time), token %d",
			st.Owner, timeText(st.Acquired), roundDuration(st.ExpiresIn), st.TTL, dimutex.Margin, st.Token)
	case st.Held:
		s = fmt.Sprintf("held by %q since %s, expires in %v (TTL %v + %v margin, server time), token %d",
			st.Owner, timeText(st.Acquired), roundDuration(st.ExpiresIn), st.TTL, dimutex.Margin, st.Token)
	default:
		s = fmt.Sprintf("free (expired lease of %q, token %d, expired %v ago; the next acquire takes it over)",
			st.Owner, st.Token, roundDuration(-st.ExpiresIn))
	}
	if st.Held && st.Value != "" {
		s += fmt.Sprintf(", value %q", st.Value)
	}
	if st.Held && st.Slots > 0 {
		s += fmt.Sprintf(", a slot of a semaphore of %d", st.Slots)
	}
	if st.TTLCapped {
		s += fmt.Sprintf("; its stored TTL is missing or unusable, so it is judged as %v", dimutex.MaxTTL)
	}
	return s
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
	// Added later.
	Value         *string  `json:"value"`
	TTLCapped     *bool    `json:"ttl_capped"`
	MarginSeconds *float64 `json:"margin_seconds"`
	LeaseExpires  *string  `json:"lease_expires"`
	Slots         *int     `json:"slots"`
}

// The states of a lock, as status --json and list name them.
const (
	stateFree     = "free"
	stateHeld     = "held"
	stateExpired  = "expired"
	stateNotALock = "not-a-lock"
)

// stateOf names st's state.
func stateOf(st dimutex.Status) string {
	switch {
	case !st.Exists:
		return stateFree
	case st.NotALock:
		return stateNotALock
	case st.Held:
		return stateHeld
	}
	return stateExpired
}

func newStatusJSON(lock string, st dimutex.Status) statusJSON {
	j := statusJSON{Lock: lock, State: stateOf(st), Held: st.Held}
	if !st.Exists {
		return j
	}
	j.Generation = &st.Generation
	j.Updated = jsonTime(st.Updated)
	j.ServerTime = jsonTime(st.ServerTime)
	if st.NotALock {
		return j
	}
	j.Owner = &st.Owner
	j.Value = &st.Value
	j.Token = &st.Token
	j.Acquired = jsonTime(st.Acquired)
	j.TTLSeconds = ptr(st.TTL.Seconds())
	j.TTLCapped = &st.TTLCapped
	j.MarginSeconds = ptr(dimutex.Margin.Seconds())
	j.ExpiresInSeconds = ptr(st.ExpiresIn.Seconds())
	if !st.ServerTime.IsZero() {
		j.Expires = jsonTime(st.ServerTime.Add(st.ExpiresIn))
	}
	if !st.Updated.IsZero() {
		j.LeaseExpires = jsonTime(st.Updated.Add(st.TTL))
	}
	if st.Slots > 0 {
		j.Slots = &st.Slots
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

// semaphoreJSON is the documented output of `status --slots N --json`.
type semaphoreJSON struct {
	Semaphore string       `json:"semaphore"`
	Size      int          `json:"size"`
	Holders   int          `json:"holders"`
	Full      bool         `json:"full"`
	Slots     []statusJSON `json:"slots"`
}

// semaphoreState is a semaphore as one list of its slots saw it.
type semaphoreState struct {
	ref     string           // gs://bucket/name
	name    string           // the semaphore's name
	size    int              // the size this client gives it
	slots   []dimutex.Status // one per slot below size; a free one has only Name
	holders []dimutex.Status // the live slots below size
	// blocked is an error that keeps this client from acquiring a slot:
	// a slot that is not a lock, or a size mismatch; nil if none.
	blocked error
}

// full reports that no slot can be taken now.
func (s *semaphoreState) full() bool { return len(s.holders) == s.size }

// slotName returns the name of slot i of the semaphore name, as the
// library names it.
func slotName(name string, i int) string { return fmt.Sprintf("%s/slot-%03d", name, i) }

// readSemaphore reads the semaphore name of size slots in bucket with one
// list request, and judges it as the library's Semaphore does.
func readSemaphore(ctx context.Context, bucket, name string, size int, opts []dimutex.Option) (*semaphoreState, error) {
	sts, err := dimutex.List(ctx, bucket, name+"/slot-", opts...)
	if err != nil {
		return nil, err
	}
	s := &semaphoreState{ref: "gs://" + bucket + "/" + name, name: name, size: size, slots: make([]dimutex.Status, size)}
	index := make(map[string]int, size)
	for i := range s.slots {
		s.slots[i].Name = slotName(name, i)
		index[s.slots[i].Name] = i
	}
	for _, st := range sts {
		i, ok := index[st.Name]
		switch {
		case ok:
			s.slots[i] = st
		case st.Held && isSlotName(name, st.Name) && s.blocked == nil:
			s.blocked = fmt.Errorf("%w: %s has a live slot %q of a semaphore of %d slots (held by %q); this client gives --slots %d",
				dimutex.ErrSizeMismatch, s.ref, st.Name, st.Slots, st.Owner, size)
		}
	}
	for _, st := range s.slots {
		switch {
		case st.NotALock && s.blocked == nil:
			s.blocked = &dimutex.NotALockError{Lock: "gs://" + bucket + "/" + st.Name, Generation: st.Generation}
		case st.Held && st.Slots != size && s.blocked == nil:
			s.blocked = fmt.Errorf("%w: slot gs://%s/%s is held by %q with a size of %d; this client gives --slots %d",
				dimutex.ErrSizeMismatch, bucket, st.Name, st.Owner, st.Slots, size)
		}
		if st.Held {
			s.holders = append(s.holders, st)
		}
	}
	return s, nil
}

// isSlotName reports whether obj is a slot's name of the semaphore name:
// NAME/slot-DDD.
func isSlotName(name, obj string) bool {
	rest, ok := strings.CutPrefix(obj, name+"/slot-")
	if !ok || len(rest) != 3 {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// describeHolders says who holds the semaphore's live slots.
func (s *semaphoreState) describeHolders() string {
	owners := make([]string, len(s.holders))
	first := time.Duration(-1)
	for i, st := range s.holders {
		owners[i] = fmt.Sprintf("%q", st.Owner)
		if first < 0 || st.ExpiresIn < first {
			first = st.ExpiresIn
		}
	}
	d := fmt.Sprintf("%d of %d slots held", len(s.holders), s.size)
	if len(owners) > 0 {
		d += fmt.Sprintf(" (by %s)", strings.Join(owners, ", "))
	}
	if s.full() && first >= 0 {
		d += fmt.Sprintf("; the first may free in up to %v", roundDuration(first))
	}
	return d
}

// semaphoreStatus is `dimutex status --slots N`.
func semaphoreStatus(a *statusArgs, stdout, stderr io.Writer) int {
	opts := a.options(stderr)
	// The constructor checks the size, the names and the options.
	sem, err := dimutex.NewSemaphore(a.bucket, a.name, a.slots, opts...)
	if err != nil {
		return configFailed("status", err, &a.common, a.bucket, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	s, err := readSemaphore(ctx, a.bucket, a.name, a.slots, opts)
	if err != nil {
		return failedWithin(stderr, "reading the semaphore "+sem.String(), err, a.bucket, a.timeout)
	}
	if a.json {
		j := semaphoreJSON{Semaphore: s.ref, Size: s.size, Holders: len(s.holders), Full: s.full(), Slots: make([]statusJSON, len(s.slots))}
		for i, st := range s.slots {
			j.Slots[i] = newStatusJSON("gs://"+a.bucket+"/"+st.Name, st)
		}
		if err := printJSON(stdout, j); err != nil {
			return failed(stderr, "encoding the status", err, a.bucket)
		}
	} else {
		for _, st := range s.slots {
			fmt.Fprintf(stdout, "%s: %s\n", strings.TrimPrefix(st.Name, a.name+"/"), statusText(st))
		}
	}
	var nl *dimutex.NotALockError
	switch {
	case errors.Is(s.blocked, dimutex.ErrSizeMismatch):
		fmt.Fprintf(stderr, "dimutex: %s\n", mismatchText(s.blocked))
		return exitFailed
	case errors.As(s.blocked, &nl), s.full():
		return exitHeld
	}
	return exitOK
}

// mismatchText explains a size mismatch, err, and what to do about it.
func mismatchText(err error) string {
	msg := regexp.MustCompile(`this client uses (\d+)$`).ReplaceAllString(trim(err), "this client gives --slots $1")
	return msg + "; every client of a semaphore must give the same --slots: use the holders' size, or wait until they release"
}
