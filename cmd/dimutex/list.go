package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/dimutex/dimutex"
)

const listHelp = `Usage: dimutex list [--json] [flags] BUCKET [PREFIX]

List the objects of gs://BUCKET whose names start with PREFIX (all of them
without PREFIX), with one objects-list request per 1,000 objects, and say
what each is: a lock, a semaphore's slot (NAME/slot-000 and on) or an
election are each a lock object. Objects that are not dimutex locks are
marked, not hidden. It never writes. A free lock has no object, so a listed
object's state is one of:

  held        a live lease
  expired     a lease that has run out: the next acquire takes it over
  not-a-lock  an object without dimutex's lease metadata, which dimutex
              never overwrites or deletes

It prints a header and one line per object, sorted by name:

  NAME  STATE  OWNER  TOKEN  VALUE  EXPIRES IN

OWNER and VALUE are quoted; EXPIRES IN is the time until a waiter may take
the lock over, by server time, including the 1s margin (as 'dimutex
status' says 'expires in'), or how long ago an expired lease ran out, such
as "3s ago"; "-" stands for none. With no object under the prefix it
prints "no objects under gs://BUCKET/PREFIX" instead.

Flags:
  --json          print one JSON object instead (below)
  --timeout D     give up after D without an answer from GCS (default 30s)
  --endpoint URL  the JSON API root (overrides STORAGE_EMULATOR_HOST)
  -v              log requests and retries to stderr

JSON fields (fields may be added, never removed or changed):
  bucket   string  BUCKET
  prefix   string  PREFIX ("" if none)
  objects  array   one object per listed object, sorted by name, with the
                   fields of 'dimutex status --json' ("lock" is
                   gs://BUCKET/OBJECT, "state" is "held", "expired" or
                   "not-a-lock"); [] if none

Listing is a Class A operation on GCS, priced like a write.

Exit status: 0 listed (whatever the objects' states); 2 usage; 125 failure
(such as a missing bucket).
`

// listArgs are the parsed arguments of `dimutex list`.
type listArgs struct {
	common
	json           bool
	timeout        time.Duration
	bucket, prefix string
}

func (a *listArgs) flags() *flag.FlagSet {
	fs := newFlagSet("list")
	fs.BoolVar(&a.json, "json", false, "print JSON")
	registerTimeout(fs, &a.timeout)
	a.common.register(fs)
	return fs
}

func parseList(args []string) (*listArgs, error) {
	a := new(listArgs)
	pos, err := parseArgs(a.flags(), args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) == 1 && strings.HasPrefix(pos[0], "gs://"):
		return nil, usagef("give the bucket and the prefix as two arguments, not %q", pos[0])
	case len(pos) == 0:
		return nil, usagef("missing BUCKET")
	case len(pos) > 2:
		return nil, usagef("unexpected argument %q after BUCKET PREFIX", pos[2])
	}
	a.bucket = pos[0]
	if len(pos) == 2 {
		a.prefix = pos[1]
	}
	if err := checkTimeout(a.timeout); err != nil {
		return nil, err
	}
	return a, nil
}

// listJSON is the documented output of `list --json`.
type listJSON struct {
	Bucket  string       `json:"bucket"`
	Prefix  string       `json:"prefix"`
	Objects []statusJSON `json:"objects"`
}

// cmdList is `dimutex list`.
func cmdList(args []string, stdout, stderr io.Writer) int {
	a, err := parseList(args)
	if err != nil {
		return parseFailed("list", listHelp, err, stdout, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	where := "gs://" + a.bucket + "/" + a.prefix
	sts, err := dimutex.List(ctx, a.bucket, a.prefix, a.options(stderr)...)
	switch {
	case errors.Is(err, dimutex.ErrInvalidConfig):
		return configFailed("list", err, &a.common, a.bucket, stderr)
	case err != nil:
		return failedWithin(stderr, "listing "+where, err, a.bucket, a.timeout)
	}
	if a.json {
		j := listJSON{Bucket: a.bucket, Prefix: a.prefix, Objects: make([]statusJSON, len(sts))}
		for i, st := range sts {
			j.Objects[i] = newStatusJSON("gs://"+a.bucket+"/"+st.Name, st)
		}
		if err := printJSON(stdout, j); err != nil {
			return failed(stderr, "encoding the list", err, a.bucket)
		}
		return exitOK
	}
	if len(sts) == 0 {
		fmt.Fprintf(stdout, "no objects under %s\n", where)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tOWNER\tTOKEN\tVALUE\tEXPIRES IN")
	for _, st := range sts {
		owner, token, value, expires := "-", "-", "-", "-"
		if !st.NotALock {
			owner = strconv.Quote(st.Owner)
			token = strconv.FormatInt(st.Token, 10)
			if st.Value != "" {
				value = strconv.Quote(st.Value)
			}
			if st.Held {
				expires = roundDuration(st.ExpiresIn).String()
			} else {
				expires = roundDuration(-st.ExpiresIn).String() + " ago"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", objectName(st.Name), stateOf(st), owner, token, value, expires)
	}
	if err := tw.Flush(); err != nil {
		return failed(stderr, "printing the list", err, a.bucket)
	}
	return exitOK
}

// objectName returns an object's name as a column shows it: as is, or
// quoted if it holds spaces or characters that are not printable.
func objectName(name string) string {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return strconv.Quote(name)
	}
	return name
}
