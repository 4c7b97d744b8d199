package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode"

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
// `release`, `list`, `leader`, `run -n`, the read that `run` makes before
// it waits, and the final release. The library retries transient failures
// (such as a refused connection) until its context ends, so without a
// bound a misconfigured endpoint would hang these forever. The commands'
// --timeout replaces it (for run: shortens it).
const callTimeout = 30 * time.Second

const mainHelp = `dimutex runs a command while holding a distributed lock: one object in
Google Cloud Storage, gs://BUCKET/NAME. Everyone who names the same object
shares one lock. It also runs a command under a semaphore of N slots, shows
who leads an election, and lists the locks under a prefix.

Usage:
  dimutex run [flags] BUCKET NAME -- COMMAND [ARGS...]
  dimutex status [--json] [--slots N] [flags] BUCKET NAME
  dimutex release --force [--token N] [flags] BUCKET NAME
  dimutex list [--json] [flags] BUCKET [PREFIX]
  dimutex leader [--json] [--watch] [flags] BUCKET NAME
  dimutex version
  dimutex help [COMMAND]

Run 'dimutex help COMMAND' for a command's flags.

Flags of every command but version and help:
  --endpoint URL  the JSON API root, such as https://storage.googleapis.com
                  (the default); HOST:PORT means http://HOST:PORT, as in
                  STORAGE_EMULATOR_HOST, which this overrides
  -v              log requests, retries and lease events to stderr

A request that fails for a transient reason (a refused connection, a
timeout, a 5xx or 429 answer) is retried. status, release, list, leader,
run -n, and the read that run makes before it waits give up after 30s
without an answer (exit 125); their --timeout D changes that (for run: it
can only shorten it).

Environment:
  STORAGE_EMULATOR_HOST           use the emulator at HOST:PORT (plain http,
                                  no credentials)
  GOOGLE_APPLICATION_CREDENTIALS  a credentials file; without it, gcloud's
                                  application-default credentials, then the
                                  GCE metadata server

Exit status:
  0      success; status: the lock is free (or its lease has expired), or
         a slot of the semaphore is; release: released, or it was already
         free; leader: there is a leader; leader --watch: stopped by
         SIGINT or SIGTERM
  1      the lock is held: run -n found it held (the semaphore full), or
         run --timeout expired; status: it is held, every slot is held, or
         NAME is not a dimutex lock; release: refused (the holder's token is
         not --token, the lock changed after it was read, or NAME is not a
         dimutex lock); leader: no leader
  2      usage error: bad flag or argument, missing --, bad duration,
         invalid bucket or object name, a value over its limit
  75     run: the lease was lost while the command ran; the command was
         terminated (or had finished but may not have run alone)
  125    dimutex itself failed: GCS, network (no answer in time) or
         credentials (run: including a failed release after the command
         ended); run and leader: NAME is not a dimutex lock; run and
         status --slots: the semaphore is held with another size
  126    run: the command was found but could not be executed
  127    run: the command was not found
  128+N  run: dimutex got signal N while waiting for the lock
  other  run: the command's own exit status (128+N if it died of signal N)
`

const versionHelp = `Usage: dimutex version

Print the version of dimutex.
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
	case "list":
		return cmdList(rest, stdout, stderr)
	case "leader":
		return cmdLeader(rest, stdout, stderr)
	case "version", "-version", "--version":
		return cmdVersion(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		return cmdHelp(rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "dimutex: unknown command %q; run 'dimutex help'\n", cmd)
	return exitUsage
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && isHelpFlag(args[0]):
		fmt.Fprint(stdout, versionHelp)
		return exitOK
	case len(args) > 0:
		return parseFailed("version", versionHelp, usagef("unexpected argument %q", args[0]), stdout, stderr)
	}
	fmt.Fprintf(stdout, "dimutex %s (%s, %s/%s)\n", version.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

func isHelpFlag(s string) bool {
	switch s {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
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
	case "list":
		return listHelp, true
	case "leader":
		return leaderHelp, true
	case "version":
		return versionHelp, true
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

// registerTimeout adds --timeout D, the bound on a command's requests, to
// fs.
func registerTimeout(fs *flag.FlagSet, d *time.Duration) {
	fs.DurationVar(d, "timeout", callTimeout, "give up after D without an answer")
}

// checkTimeout refuses a --timeout that is not positive.
func checkTimeout(d time.Duration) error {
	if d <= 0 {
		return usagef("--timeout %v must be positive", d)
	}
	return nil
}

// endpointURL returns --endpoint as the library takes it: like
// STORAGE_EMULATOR_HOST, HOST:PORT without a scheme means http://HOST:PORT.
func (c *common) endpointURL() string {
	if c.endpoint != "" && !strings.Contains(c.endpoint, "://") {
		return "http://" + c.endpoint
	}
	return c.endpoint
}

// options returns the library's options for the common flags: the
// endpoint, credentials, and with -v a debug logger and a trace, both on
// stderr.
func (c *common) options(stderr io.Writer) []dimutex.Option {
	var opts []dimutex.Option
	ep := c.endpointURL()
	if ep != "" {
		opts = append(opts, dimutex.WithEndpoint(ep))
	}
	if c.verbose {
		log := newVerboseLogger(stderr)
		opts = append(opts, dimutex.WithLogger(log), dimutex.WithTrace(newTrace(log)))
	}
	// People who cannot write Go get every kind of Application Default
	// Credentials, workload identity federation included, at the cost of a
	// larger binary. (A bad endpoint is the constructor's to report.)
	if e, err := auth.ResolveEndpoint(ep, os.Getenv); err == nil && e.Authenticated() {
		opts = append(opts, dimutex.WithTokenSource(auth.ApplicationDefault()))
	}
	return opts
}

// newMutex returns the Mutex for gs://bucket/name with the common options
// and opts. Its errors match dimutex.ErrInvalidConfig.
func (c *common) newMutex(bucket, name string, stderr io.Writer, opts ...dimutex.Option) (*dimutex.Mutex, error) {
	return dimutex.NewGCS(bucket, name, append(c.options(stderr), opts...)...)
}

// newVerboseLogger returns the logger of -v: one line of text per record,
// at debug level and above, on w.
func newVerboseLogger(w io.Writer) *slog.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.String(a.Key, a.Value.Time().Format("15:04:05.000"))
			}
			return a
		},
	})
	return slog.New(h)
}

// newTrace returns the trace of -v: it logs each request and each event of
// a lease to log, at debug level.
func newTrace(log *slog.Logger) *dimutex.Trace {
	debug := func(msg string, attrs ...slog.Attr) {
		log.LogAttrs(context.Background(), slog.LevelDebug, msg, attrs...)
	}
	return &dimutex.Trace{
		Request: func(e dimutex.RequestEvent) {
			attrs := []slog.Attr{slog.String("op", e.Op), slog.String("object", e.Lock)}
			if e.Status != 0 {
				attrs = append(attrs, slog.Int("status", e.Status))
			}
			if e.Err != nil {
				attrs = append(attrs, slog.String("error", e.Err.Error()))
			}
			attrs = append(attrs, slog.Int("attempt", e.Attempt), slog.Duration("duration", e.Duration))
			if e.Token != 0 {
				attrs = append(attrs, slog.Int64("token", e.Token))
			}
			if e.MayHaveApplied {
				attrs = append(attrs, slog.Bool("may_have_applied", true))
			}
			if e.Retry {
				attrs = append(attrs, slog.Bool("retry", true))
			}
			debug("request", attrs...)
		},
		Acquired: func(e dimutex.AcquireEvent) {
			attrs := []slog.Attr{slog.String("lock", e.Lock), slog.Int64("token", e.Token), slog.String("owner", e.Owner),
				slog.Duration("waited", e.Waited), slog.Int("reads", e.Reads), slog.Int("writes", e.Writes)}
			if e.TookOver {
				attrs = append(attrs, slog.String("took_over_from", e.PreviousOwner), slog.Int64("previous_token", e.PreviousToken),
					slog.Duration("expired_ago", e.PreviousExpiry))
			}
			debug("acquired", attrs...)
		},
		Refreshed: func(e dimutex.RefreshEvent) {
			debug("refreshed", slog.String("lock", e.Lock), slog.Int64("token", e.Token),
				slog.Duration("latency", e.Latency), slog.Int("attempts", e.Attempts), slog.Bool("background", e.Background))
		},
		RefreshFailed: func(e dimutex.RefreshFailedEvent) {
			debug("refresh failed", slog.String("lock", e.Lock), slog.Int64("token", e.Token), slog.String("error", e.Err.Error()),
				slog.Int("failures", e.Failures), slog.Duration("retry_in", e.RetryIn), slog.Duration("left", e.Left))
		},
		Lost: func(e dimutex.LossEvent) {
			debug("lost", slog.String("lock", e.Lock), slog.Int64("token", e.Token), slog.String("reason", string(e.Reason)),
				slog.String("error", e.Err.Error()), slog.Duration("held", e.Held))
		},
		Released: func(e dimutex.ReleaseEvent) {
			attrs := []slog.Attr{slog.String("lock", e.Lock), slog.Int64("token", e.Token), slog.Duration("held", e.Held)}
			if e.Err != nil {
				attrs = append(attrs, slog.String("error", e.Err.Error()))
			}
			debug("released", attrs...)
		},
	}
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
	all := args
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, flagError(fs, all, err)
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

var (
	undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	needsArgument = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
	invalidValue  = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-+([^:]*): (.*)$`)
)

// flagError rewrites an error of the flag package in the command line's
// terms: it names a flag as the user spelled it (the package always says
// "-ttl", for --ttl too), and says what a value should look like.
func flagError(fs *flag.FlagSet, args []string, err error) error {
	msg := err.Error()
	if m := undefinedFlag.FindStringSubmatch(msg); m != nil {
		return usagef("unknown flag %s", spelling(args, m[1]))
	}
	if m := needsArgument.FindStringSubmatch(msg); m != nil {
		return usagef("%s needs a value", spelling(args, m[1]))
	}
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		value, uerr := strconv.Unquote(m[1])
		if uerr != nil {
			value = m[1]
		}
		name, reason := m[2], m[3]
		flagName := spelling(args, name)
		var kind any
		if f := fs.Lookup(name); f != nil {
			if g, ok := f.Value.(flag.Getter); ok {
				kind = g.Get()
			}
		}
		switch kind.(type) {
		case time.Duration:
			return usagef("%s %s: %s", flagName, showValue(value), durationProblem(value))
		case int, int64, uint, uint64:
			return usagef("%s %s: not a whole number", flagName, showValue(value))
		case bool:
			return usagef("%s takes no value (%s=%s: %s)", flagName, flagName, showValue(value), reason)
		}
		return usagef("%s %s: %s", flagName, showValue(value), reason)
	}
	return &usageError{msg: msg}
}

// spelling returns how the user wrote the flag name in args: "-n",
// "--ttl", or "-ttl". A flag not found there is named with two dashes, or
// one for a one-letter flag.
func spelling(args []string, name string) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		a, _, _ = strings.Cut(a, "=")
		if a == "-"+name || a == "--"+name {
			return a
		}
	}
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// showValue returns a value as a message shows it: as is, or quoted if it
// is empty or holds anything but letters, digits and ".+-:/_".
func showValue(v string) string {
	if v == "" || strings.ContainsFunc(v, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(".+-:/_", r)
	}) {
		return strconv.Quote(v)
	}
	return v
}

// durationProblem says what is wrong with v, which is not a Go duration.
func durationProblem(v string) string {
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return fmt.Sprintf("missing a unit; did you mean %ss?", v)
	}
	return "not a duration; write a number and a unit, such as 90s, 5m or 1h30m"
}

// lockArgs checks that pos is exactly BUCKET NAME.
func lockArgs(pos []string) (bucket, name string, err error) {
	switch {
	case len(pos) == 1 && strings.HasPrefix(pos[0], "gs://"):
		return "", "", usagef("give the bucket and the object name as two arguments, not %q", pos[0])
	case len(pos) == 0:
		return "", "", usagef("missing BUCKET and NAME")
	case len(pos) == 1:
		return "", "", usagef("missing NAME")
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

// optionFlags maps the library's option names to the flags that set them.
var optionFlags = map[string]string{
	"WithTTL":            "--ttl",
	"WithOwner":          "--owner",
	"WithValue":          "--value",
	"WithEndpoint":       "--endpoint",
	"size":               "--slots",
	auth.EmulatorHostEnv: "$" + auth.EmulatorHostEnv,
}

// configFailed reports an error from a constructor, a bad bucket or object
// name or a bad flag value, in the command line's terms, and returns exit
// status 2.
func configFailed(command string, err error, c *common, bucket string, stderr io.Writer) int {
	fmt.Fprintf(stderr, "dimutex: %s: %s\n", command, configText(err, c, bucket))
	return exitUsage
}

// configText describes a constructor's error in the command line's terms:
// the flag or argument, the value as given (shortened), and the reason.
func configText(err error, c *common, bucket string) string {
	var (
		ce *dimutex.ConfigError
		ne *gcsjson.NameError
		ee *auth.EndpointError
	)
	var msg string
	switch {
	case errors.As(err, &ne):
		msg = fmt.Sprintf("invalid %s name %s: %s", ne.Kind, quoteShort(ne.Name), ne.Reason)
		if ne.Kind == "bucket" && strings.HasPrefix(bucket, "gs://") {
			msg += "; give the bucket and the object name as two arguments: BUCKET NAME"
		}
	case errors.As(err, &ee) && ee.Source == auth.EmulatorHostEnv:
		msg = fmt.Sprintf("$%s=%s: %s", ee.Source, shorten(ee.Value), ee.Reason)
	case errors.As(err, &ee):
		v := ee.Value
		if c != nil && c.endpoint != "" {
			v = c.endpoint // as typed, before HOST:PORT became http://HOST:PORT
		}
		msg = fmt.Sprintf("--endpoint %s: %s", shorten(v), ee.Reason)
	case errors.As(err, &ce) && ce.Option == "name":
		msg = fmt.Sprintf("invalid NAME %s: %s", ce.Value, ce.Reason)
	case errors.As(err, &ce):
		name, ok := optionFlags[ce.Option]
		if !ok {
			name = ce.Option
		}
		reason := ce.Reason
		if strings.HasPrefix(reason, "is ") || strings.HasPrefix(reason, "must ") {
			reason = "it " + reason
		}
		msg = fmt.Sprintf("%s %s: %s", name, ce.Value, reason)
	default:
		msg = trim(err)
	}
	return msg
}

// shorten returns s for a message as showValue does, cut to a length a
// person reads.
func shorten(s string) string {
	if len(s) <= maxShown {
		return showValue(s)
	}
	return quoteShort(s)
}

// maxShown bounds the bytes of a value that a message shows.
const maxShown = 64

// quoteShort quotes s for a message, cut to a length a person reads.
func quoteShort(s string) string {
	const max = maxShown
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utfStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}

func utfStart(b byte) bool { return b&0xC0 != 0x80 }

// trim returns err's text without the library's "dimutex: " prefix, which
// the CLI adds itself.
func trim(err error) string {
	return strings.TrimPrefix(err.Error(), "dimutex: ")
}

// failed reports an error of GCS, the network or the credentials, with a hint
// at what to do, and returns exit status 125.
func failed(stderr io.Writer, what string, err error, bucket string) int {
	return failedWithin(stderr, what, err, bucket, 0)
}

// failedWithin is failed for a call bounded by bound (0 if unknown), which
// a message about no answer names.
func failedWithin(stderr io.Writer, what string, err error, bucket string, bound time.Duration) int {
	fmt.Fprintf(stderr, "dimutex: %s: %s; %s\n", what, describe(err, bound), hint(err, bucket))
	return exitFailed
}

// describe says what went wrong in a failed call, without the library's
// layers of prefixes.
func describe(err error, bound time.Duration) string {
	var (
		fe *auth.CredentialsFileError
		ge *gcsjson.Error
	)
	switch {
	case errors.Is(err, auth.ErrNoCredentials):
		return noCredentials()
	case errors.As(err, &fe):
		if fe.Source == auth.CredentialsEnv {
			return fmt.Sprintf("the credentials file $%s=%q: %s", fe.Source, fe.Path, fe.Reason)
		}
		return fmt.Sprintf("gcloud's application-default credentials file %q: %s", fe.Path, fe.Reason)
	case !errors.As(err, &ge):
		return trim(err)
	case ge.Code != 0:
		s := fmt.Sprintf("%d %s", ge.Code, http.StatusText(ge.Code))
		if ge.Reason != "" {
			s += " (" + ge.Reason + ")"
		}
		if ge.Message != "" && ge.Message != http.StatusText(ge.Code) {
			s += ": " + ge.Message
		}
		if ge.Attempts > 1 {
			s += fmt.Sprintf(" [after %d attempts]", ge.Attempts)
		}
		return s
	case errors.Is(ge.Err, context.DeadlineExceeded):
		s := "no answer in time"
		if bound > 0 {
			s = fmt.Sprintf("no answer within %v", bound)
		}
		switch {
		case ge.Attempts > 0 && ge.Message != "":
			s += fmt.Sprintf(" (%d attempts; the last: %s)", ge.Attempts, ge.Message)
		case ge.Attempts > 0:
			s += fmt.Sprintf(" (%d attempts)", ge.Attempts)
		}
		return s
	}
	s := fmt.Sprint(ge.Err)
	if ge.Attempts > 1 {
		s += fmt.Sprintf(" [after %d attempts]", ge.Attempts)
	}
	return s
}

// noCredentials says where credentials were looked for, in the terms of
// someone who runs the command.
func noCredentials() string {
	path := gcloudADCPath()
	why := "not found"
	if _, err := os.Stat(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		why = err.Error()
	}
	return fmt.Sprintf("no Google Cloud credentials found: looked for $%s (not set), gcloud's application-default credentials %q (%s), and the GCE metadata server (not detected)",
		auth.CredentialsEnv, path, why)
}

// gcloudADCPath is where 'gcloud auth application-default login' writes
// its credentials.
func gcloudADCPath() string {
	const f = "application_default_credentials.json"
	if runtime.GOOS == "windows" {
		return filepath.Join(os.Getenv("APPDATA"), "gcloud", f)
	}
	home := os.Getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".config", "gcloud", f)
}

// hint says what an operator can do about a failed request.
func hint(err error, bucket string) string {
	var ge *gcsjson.Error
	switch {
	case errors.Is(err, auth.ErrNoCredentials):
		return "set GOOGLE_APPLICATION_CREDENTIALS to a key file, run 'gcloud auth application-default login', or, for an emulator, set STORAGE_EMULATOR_HOST or give --endpoint HOST:PORT"
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
	case ge.Code == 0 && errors.Is(ge.Err, context.DeadlineExceeded):
		return "check the network (and --endpoint or STORAGE_EMULATOR_HOST, if set), then retry, or give a longer --timeout"
	case ge.Code == 0:
		return "check the network (and --endpoint or STORAGE_EMULATOR_HOST, if set), then retry"
	}
	return "retry later"
}

// notALockText says that a lock's name holds an object that is not a
// dimutex lock. A negative Size means that the size is not known.
func notALockText(err *dimutex.NotALockError) string {
	if err.Size < 0 {
		return fmt.Sprintf("%s is not a dimutex lock: it holds an object (generation %d) without dimutex's lease metadata",
			err.Lock, err.Generation)
	}
	ct := err.ContentType
	if ct == "" {
		ct = "no content type"
	}
	return fmt.Sprintf("%s is not a dimutex lock: it holds an object of %d bytes (%s, generation %d) without dimutex's lease metadata",
		err.Lock, err.Size, ct, err.Generation)
}
