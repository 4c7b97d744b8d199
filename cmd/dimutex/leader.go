package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/dimutex/dimutex"
)

const leaderHelp = `Usage: dimutex leader [--json] [--watch] [flags] BUCKET NAME

Say who leads the election gs://BUCKET/NAME. An election is a lock: its
holder leads, and publishes a value for the others to read. To campaign,
run the service as 'dimutex run --value S BUCKET NAME -- COMMAND': it waits
until it leads, then runs COMMAND, which sees S as DIMUTEX_VALUE; leader
shows S to everyone else.

It prints one line:

  leader "OWNER", value "V", token N, since T, expires E
  no leader

T is when the leader took the lock. E is when a follower may take over
unless the leader renews its lease first: its last renewal, plus its TTL,
plus the 1s margin, by server time. Both are RFC 3339 UTC. "no leader"
means there is no lock object, or its lease has expired.

With --watch, print the leader as above, then one more line for each
change (a new leader, a new value, or "no leader") until SIGINT or SIGTERM
ends it, with status 0. It only reads: every 100ms to 5s, and as soon as
the leader's lease may have expired. Transient failures are retried for
as long as it watches.

Flags:
  --json          print JSON instead (below); with --watch, one JSON
                  object per line
  --watch         print each change until interrupted
  --timeout D     give up after D without an answer from GCS (default
                  30s); with --watch, this bounds the first read
  --endpoint URL  the JSON API root (overrides STORAGE_EMULATOR_HOST)
  -v              log requests and retries to stderr

JSON fields (fields may be added, never removed or changed):
  election    string  "gs://BUCKET/NAME"
  leader      bool    someone leads
  owner       string  the leader's --owner
  value       string  what it publishes ("" if none)
  token       number  its fencing token
  since       string  T
  expires     string  E
  generation  number  the lock object's generation
All but election and leader are null when nobody leads.

Exit status: 0 there is a leader (--watch: stopped by SIGINT or SIGTERM);
1 no leader; 2 usage; 125 failure, or NAME is not a dimutex lock.
`

// leaderArgs are the parsed arguments of `dimutex leader`.
type leaderArgs struct {
	common
	json         bool
	watch        bool
	timeout      time.Duration
	bucket, name string
}

func (a *leaderArgs) flags() *flag.FlagSet {
	fs := newFlagSet("leader")
	fs.BoolVar(&a.json, "json", false, "print JSON")
	fs.BoolVar(&a.watch, "watch", false, "print each change")
	registerTimeout(fs, &a.timeout)
	a.common.register(fs)
	return fs
}

func parseLeader(args []string) (*leaderArgs, error) {
	a := new(leaderArgs)
	pos, err := parseArgs(a.flags(), args)
	if err != nil {
		return nil, err
	}
	if a.bucket, a.name, err = lockArgs(pos); err != nil {
		return nil, err
	}
	if err := checkTimeout(a.timeout); err != nil {
		return nil, err
	}
	return a, nil
}

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

// cmdLeader is `dimutex leader`.
func cmdLeader(args []string, stdout, stderr io.Writer) int {
	a, err := parseLeader(args)
	if err != nil {
		return parseFailed("leader", leaderHelp, err, stdout, stderr)
	}
	if a.watch {
		return watchLeader(a, stdout, stderr)
	}
	// Inspect rather than Election.Leader: it tells a missing bucket
	// from an election without a leader.
	m, err := a.newMutex(a.bucket, a.name, stderr)
	if err != nil {
		return configFailed("leader", err, &a.common, a.bucket, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	st, err := m.Inspect(ctx)
	switch {
	case err != nil:
		return failedWithin(stderr, "reading "+m.String(), err, a.bucket, a.timeout)
	case st.NotALock:
		fmt.Fprintf(stderr, "dimutex: %s; it cannot hold an election\n",
			notALockText(&dimutex.NotALockError{Lock: m.String(), Generation: st.Generation, Size: -1}))
		return exitFailed
	}
	var l dimutex.Leader
	if st.Held {
		l = dimutex.Leader{Owner: st.Owner, Value: st.Value, Token: st.Token, Since: st.Acquired, Generation: st.Generation}
		if !st.ServerTime.IsZero() && !st.Updated.IsZero() {
			l.Expires = st.Updated.Add(st.TTL + dimutex.Margin)
		} else {
			l.Expires = time.Now().Add(st.ExpiresIn)
		}
	}
	if err := printLeader(stdout, a.json, m.String(), l); err != nil {
		return failed(stderr, "printing the leader", err, a.bucket)
	}
	if !st.Held {
		return exitHeld
	}
	return exitOK
}

// errFirstRead ends a watch whose first read was not answered in time.
var errFirstRead = errors.New("no answer to the first read")

// watchLeader is `dimutex leader --watch`.
func watchLeader(a *leaderArgs, stdout, stderr io.Writer) int {
	e, err := dimutex.NewElection(a.bucket, a.name, a.options(stderr)...)
	if err != nil {
		return configFailed("leader", err, &a.common, a.bucket, stderr)
	}
	sctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancelCause(sctx)
	defer cancel(nil)
	first := time.AfterFunc(a.timeout, func() { cancel(errFirstRead) })
	defer first.Stop()
	answered := false
	for l, err := range e.Observe(ctx) {
		first.Stop()
		answered = true
		var nl *dimutex.NotALockError
		switch {
		case errors.As(err, &nl):
			fmt.Fprintf(stderr, "dimutex: %s; it cannot hold an election\n", notALockText(nl))
			return exitFailed
		case err != nil:
			return failed(stderr, "watching "+e.String(), err, a.bucket)
		}
		if err := printLeader(stdout, a.json, e.String(), l); err != nil {
			return failed(stderr, "printing the leader", err, a.bucket)
		}
	}
	if errors.Is(context.Cause(ctx), errFirstRead) && sctx.Err() == nil {
		what := "no answer"
		if answered {
			what = "no answer in time"
		}
		fmt.Fprintf(stderr, "dimutex: watching %s: %s within %v; check the network (and --endpoint or STORAGE_EMULATOR_HOST, if set), then retry, or give a longer --timeout\n",
			e, what, a.timeout)
		return exitFailed
	}
	return exitOK // stopped by a signal
}

// printLeader prints l, the leader of election (the zero Leader for none),
// as one line of text or JSON.
func printLeader(w io.Writer, asJSON bool, election string, l dimutex.Leader) error {
	if asJSON {
		j := leaderJSON{Election: election, Leader: l.Token != 0}
		if j.Leader {
			j.Owner, j.Value, j.Token, j.Generation = &l.Owner, &l.Value, &l.Token, &l.Generation
			j.Since, j.Expires = jsonTime(l.Since), jsonTime(l.Expires)
		}
		return printJSON(w, j)
	}
	if l.Token == 0 {
		_, err := fmt.Fprintln(w, "no leader")
		return err
	}
	_, err := fmt.Fprintf(w, "leader %q, value %q, token %d, since %s, expires %s\n",
		l.Owner, l.Value, l.Token, timeText(l.Since), timeText(l.Expires))
	return err
}
