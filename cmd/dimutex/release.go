package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/gcsjson"
)

const releaseHelp = `Usage: dimutex release --force [--token N] [flags] BUCKET NAME

Delete the lock gs://BUCKET/NAME whoever holds it: a way out when its
holder is known to be dead and waiting for its TTL is not an option. If the
holder is alive, it loses its lease at its next refresh, and 'dimutex run'
then terminates its command (exit 75); until then two holders may overlap.

release reads the lock and deletes exactly the version it read, so a lock
acquired or refreshed in between is never removed: that is reported, with
status 1, and you can look again with 'dimutex status'. It deletes only
dimutex locks: an object at NAME without dimutex's lease metadata is
refused (status 1) and left alone. A semaphore's slot is a lock of its own,
NAME/slot-000 and on.

Flags:
  --force         required: say that you mean it
  --token N       release only if the holder's fencing token is N (as shown
                  by 'dimutex status', or DIMUTEX_TOKEN in its command)
  --timeout D     give up after D without an answer from GCS (default 30s)
  --endpoint URL  the JSON API root (overrides STORAGE_EMULATOR_HOST)
  -v              log requests and retries to stderr

Exit status: 0 released, or the lock was already free (nothing to do);
1 refused: the holder's token is not N, the lock changed after it was
read, or NAME is not a dimutex lock; 2 usage (also without --force);
125 failure.
`

// releaseArgs are the parsed arguments of `dimutex release`.
type releaseArgs struct {
	common
	force        bool
	token        int64
	tokenSet     bool
	timeout      time.Duration
	bucket, name string
}

func (a *releaseArgs) flags() *flag.FlagSet {
	fs := newFlagSet("release")
	fs.BoolVar(&a.force, "force", false, "required")
	fs.Int64Var(&a.token, "token", 0, "expected fencing token")
	registerTimeout(fs, &a.timeout)
	a.common.register(fs)
	return fs
}

func parseRelease(args []string) (*releaseArgs, error) {
	a := new(releaseArgs)
	fs := a.flags()
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if a.bucket, a.name, err = lockArgs(pos); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) { a.tokenSet = a.tokenSet || f.Name == "token" })
	switch {
	case !a.force:
		return nil, usagef("refusing without --force: deleting a lock that someone holds lets a second holder in while the first still runs; check 'dimutex status %s %s' first", a.bucket, a.name)
	case a.tokenSet && a.token <= 0:
		return nil, usagef("--token %d must be positive", a.token)
	}
	if err := checkTimeout(a.timeout); err != nil {
		return nil, err
	}
	return a, nil
}

// cmdRelease is `dimutex release`.
func cmdRelease(args []string, stdout, stderr io.Writer) int {
	a, err := parseRelease(args)
	if err != nil {
		return parseFailed("release", releaseHelp, err, stdout, stderr)
	}
	m, err := a.newMutex(a.bucket, a.name, stderr)
	if err != nil {
		return configFailed("release", err, &a.common, a.bucket, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	st, err := m.Inspect(ctx)
	switch {
	case err != nil:
		return failedWithin(stderr, "reading "+m.String(), err, a.bucket, a.timeout)
	case st.NotALock:
		fmt.Fprintf(stderr, "dimutex: %s is not a dimutex lock (an object without dimutex's lease metadata, generation %d); release deletes only dimutex locks, so nothing was deleted\n",
			m, st.Generation)
		return exitHeld
	case !st.Exists:
		fmt.Fprintf(stdout, "%s is already free; nothing to release\n", m)
		return exitOK
	case a.tokenSet && st.Token != a.token:
		fmt.Fprintf(stderr, "dimutex: %s is held by %q with token %d, not %d; nothing was deleted (check 'dimutex status %s %s')\n",
			m, st.Owner, st.Token, a.token, a.bucket, a.name)
		return exitHeld
	}
	err = m.ForceRelease(ctx, st.Generation)
	var nl *dimutex.NotALockError
	switch {
	case err == nil:
		was := "held by"
		if !st.Held {
			was = "an expired lease of"
		}
		fmt.Fprintf(stdout, "released %s (was %s %q, token %d)\n", m, was, st.Owner, st.Token)
		return exitOK
	case errors.Is(err, dimutex.ErrChanged):
		fmt.Fprintf(stderr, "dimutex: %s changed after it was read (acquired or refreshed); nothing was deleted; check 'dimutex status %s %s' and retry\n",
			m, a.bucket, a.name)
		return exitHeld
	case gcsjson.IsNotFound(err):
		fmt.Fprintf(stdout, "%s is already free (it was released as it was read); nothing to release\n", m)
		return exitOK
	case errors.As(err, &nl):
		fmt.Fprintf(stderr, "dimutex: %s; release deletes only dimutex locks, so nothing was deleted\n", notALockText(nl))
		return exitHeld
	}
	return failedWithin(stderr, "releasing "+m.String(), err, a.bucket, a.timeout)
}
