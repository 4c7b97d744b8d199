package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/auth"
	"github.com/dimutex/dimutex/gcsjson"
	"github.com/dimutex/dimutex/internal/version"
)

// Exit statuses. They follow flock(1) for a held lock (1), the flag package
// and most Unix tools for usage errors (2), sysexits.h for a lost lease
// (EX_TEMPFAIL: the work was cut short and may be retried), and env(1) and
// timeout(1) for failures of the wrapper itself and of starting the command
// (125, 126, 127). Any other status of `run` is the command's own.
const (
	exitOK            = 0
	exitHeld          = 1
	exitUsage         = 2
	exitLost          = 75
	exitFailed        = 125
	exitNotExecutable = 126
	exitNotFound      = 127
	exitSignalBase    = 128
)

// callTimeout bounds a call that does not wait for the lock: `status`,
// `release`, `run -n`, the read that `run` makes before it waits, and the
// final release. The library retries transient failures (such as a refused
// connection) until its context ends, so without a bound a misconfigured
// endpoint would hang these forever.
const callTimeout = 30 * time.Second

const mainHelp = `dimutex runs a command while holding a distributed lock: one object in
Google Cloud Storage, gs://BUCKET/NAME. Everyone who names the same object
shares one lock.

Usage:
  dimutex run [flags] BUCKET NAME -- COMMAND [ARGS...]
  dimutex status [--json] [flags] BUCKET NAME
  dimutex release --force [--token N] [flags] BUCKET NAME
  dimutex version
  dimutex help [COMMAND]

Run 'dimutex help COMMAND' for a command's flags.

Flags of every command:
  --endpoint URL  the JSON API root, such as https://storage.googleapis.com
                  (the default); it overrides STORAGE_EMULATOR_HOST
  -v              log requests, retries and lease events to stderr

Environment:
  STORAGE_EMULATOR_HOST           use the emulator at HOST:PORT (plain http,
                                  no credentials)
  GOOGLE_APPLICATION_CREDENTIALS  a credentials file; without it, gcloud's
                                  application-default credentials, then the
                                  GCE metadata server

Exit status:
  0      success; status: the lock is free (or its lease has expired);
         release: released, or it was already free
  1      the lock is held: run -n found it held, or run --timeout expired;
         status: it is held; release: refused (the holder's token is not
         --token, or the lock changed after it was read)
  2      usage error: bad flag or argument, missing --, bad duration,
         invalid bucket or object name
  75     run: the lease was lost while the command ran; the command was
         terminated (or had finished but may not have run alone)
  125    dimutex itself failed: GCS, network or credentials
  126    run: the command was found but could not be executed
  127    run: the command was not found
  128+N  run: dimutex got signal N while waiting for the lock
  other  run: the command's own exit status (128+N if it died of signal N)
`

// run is the whole program: it runs the command that args names and returns
// the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "dimutex: missing command")
		fmt.Fprint(stderr, mainHelp)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(rest, stdin, stdout, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "release":
		return cmdRelease(rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "dimutex %s (%s, %s/%s)\n", version.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "-help", "--help":
		return cmdHelp(rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "dimutex: unknown command %q; run 'dimutex help'\n", cmd)
	return exitUsage
}

func cmdHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, mainHelp)
		return exitOK
	}
	if h, ok := commandHelp(args[0]); ok && len(args) == 1 {
		fmt.Fprint(stdout, h)
		return exitOK
	}
	fmt.Fprintf(stderr, "dimutex: help: unknown command %q; run 'dimutex help'\n", strings.Join(args, " "))
	return exitUsage
}

// commandHelp returns the help text of a command.
func commandHelp(name string) (string, bool) {
	switch name {
	case "run":
		return runHelp, true
	case "status":
		return statusHelp, true
	case "release":
		return releaseHelp, true
	case "version":
		return "Usage: dimutex version\n\nPrint the version of dimutex.\n", true
	case "help":
		return mainHelp, true
	}
	return "", false
}

// common holds the flags that every command takes.
type common struct {
	endpoint string
	verbose  bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.endpoint, "endpoint", "", "JSON API root URL")
	fs.BoolVar(&c.verbose, "v", false, "log to stderr")
}

// newMutex returns the Mutex for gs://bucket/name with the common options
// and opts. Its errors match dimutex.ErrInvalidConfig.
func (c *common) newMutex(bucket, name string, stderr io.Writer, opts ...dimutex.Option) (*dimutex.Mutex, error) {
	if c.endpoint != "" {
		opts = append(opts, dimutex.WithEndpoint(c.endpoint))
	}
	if c.verbose {
		h := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
		opts = append(opts, dimutex.WithLogger(slog.New(h)))
	}
	// People who cannot write Go get every kind of Application Default
	// Credentials, workload identity federation included, at the cost of a
	// larger binary. (A bad endpoint is NewGCS's to report.)
	if ep, err := auth.ResolveEndpoint(c.endpoint, os.Getenv); err == nil && ep.Authenticated() {
		opts = append(opts, dimutex.WithTokenSource(auth.ApplicationDefault()))
	}
	return dimutex.NewGCS(bucket, name, opts...)
}

// usageError is a mistake in the command line: it is reported with the
// command's usage and exit status 2.
type usageError struct{ msg string }

// Error returns the message.
func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// newFlagSet returns an empty flag set that reports errors to its caller
// rather than printing them, so that every message carries the "dimutex: "
// prefix and the command's own help.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses flags and positional arguments, which may be mixed
// ("status BUCKET NAME --json" works as well as "status --json BUCKET
// NAME"). After "--" everything is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// lockArgs checks that pos is exactly BUCKET NAME.
func lockArgs(pos []string) (bucket, name string, err error) {
	switch {
	case len(pos) == 1 && strings.HasPrefix(pos[0], "gs://"):
		return "", "", usagef("give the bucket and the object name as two arguments, not %q", pos[0])
	case len(pos) < 2:
		return "", "", usagef("missing BUCKET and NAME")
	case len(pos) > 2:
		return "", "", usagef("unexpected argument %q after BUCKET NAME", pos[2])
	}
	return pos[0], pos[1], nil
}

// parseFailed reports a failed parse of a command's arguments and returns
// the exit status: help on stdout for -h, else the error and the usage on
// stderr.
func parseFailed(command, help string, err error, stdout, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, help)
		return exitOK
	}
	synopsis, _, _ := strings.Cut(help, "\n")
	fmt.Fprintf(stderr, "dimutex: %s: %v\n%s\nRun 'dimutex help %s' for the flags and details.\n", command, err, synopsis, command)
	return exitUsage
}

// configFailed reports an error from NewGCS, a bad bucket or object name or
// option, and returns exit status 2.
func configFailed(command string, err error, bucket string, stderr io.Writer) int {
	msg := trim(err)
	if strings.HasPrefix(bucket, "gs://") {
		msg += "; give the bucket and the object name as two arguments: BUCKET NAME"
	}
	fmt.Fprintf(stderr, "dimutex: %s: %s\n", command, msg)
	return exitUsage
}

// trim returns err's text without the library's "dimutex: " prefix, which
// the CLI adds itself.
func trim(err error) string {
	return strings.TrimPrefix(err.Error(), "dimutex: ")
}

// failed reports an error of GCS, the network or the credentials, with a hint
// at what to do, and returns exit status 125.
func failed(stderr io.Writer, what string, err error, bucket string) int {
	fmt.Fprintf(stderr, "dimutex: %s: %s; %s\n", what, trim(err), hint(err, bucket))
	return exitFailed
}

// hint says what an operator can do about a failed request.
func hint(err error, bucket string) string {
	var ge *gcsjson.Error
	switch {
	case errors.Is(err, auth.ErrNoCredentials):
		return "set GOOGLE_APPLICATION_CREDENTIALS, run 'gcloud auth application-default login', or set STORAGE_EMULATOR_HOST for an emulator"
	case errors.Is(err, auth.ErrBadCredentials):
		return "fix or replace the credentials file"
	case errors.Is(err, auth.ErrInsecureTransport), errors.Is(err, auth.ErrInvalidEndpoint):
		return "check --endpoint and STORAGE_EMULATOR_HOST"
	case !errors.As(err, &ge):
		return "check the network and the credentials, then retry"
	case ge.Code == http.StatusUnauthorized || ge.Code == http.StatusForbidden:
		return fmt.Sprintf("check that the credentials may read, create and delete objects in bucket %q (for example roles/storage.objectUser)", bucket)
	case ge.Code == http.StatusNotFound:
		return fmt.Sprintf("check that bucket %q exists", bucket)
	case ge.Code == http.StatusTooManyRequests:
		return "GCS is rate-limiting this object; retry later"
	case ge.Code == 0:
		return "check the network (and --endpoint or STORAGE_EMULATOR_HOST, if set), then retry"
	}
	return "retry later"
}
