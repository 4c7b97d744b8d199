package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/gcsjson"
)

const runHelp = `Usage: dimutex run [flags] BUCKET NAME -- COMMAND [ARGS...]

Acquire the lock gs://BUCKET/NAME, waiting while someone else holds it; run
COMMAND with dimutex's stdin, stdout and stderr; release the lock when the
command exits, and exit with its status. While the command runs, the lease
is refreshed in the background every TTL/3.

With --slots N, take one slot of the semaphore NAME of N slots instead, so
that at most N commands run at once. Each slot is a lock of its own, the
object NAME/slot-000 and on; everyone who uses the semaphore must give the
same N: while live slots are held with another size, run refuses (exit
125). -n, --timeout and the exit statuses work as for a lock; a full
semaphore is "held".

With --value S, the lease publishes S while the command runs, for
'dimutex leader' and 'dimutex status' to show: run --value is how a
process campaigns in a leader election (the lock's holder leads).

Signals and job control: the command runs in its own process group (in the
terminal's foreground when dimutex is). SIGINT, SIGTERM, SIGHUP and SIGQUIT
sent to dimutex are passed on to that group; the lock is released once the
command has exited. On Linux, Ctrl-Z, bg, fg and & work as for the command
alone: when it stops, dimutex stops too, and continues it when continued
(a stopped job does not refresh its lease). If dimutex is killed, even by
SIGKILL, a watchdog process kills the command's process group. A script
without a #! line runs with /bin/sh. See docs/cli-processes.md.

If the lease is lost while the command runs (refreshes failed until the TTL
ran out, or someone ran 'dimutex release --force'), the command's process
group gets SIGTERM, then SIGKILL after --grace, and dimutex exits 75.

If NAME holds an object that dimutex did not write (no lease metadata),
run refuses at once, with status 125: dimutex never overwrites it, so pick
another NAME.

Flags:
  -n, --no-wait   fail at once, with status 1, if the lock is held (with
                  --slots: if every slot is)
  --timeout D     give up waiting after D, with status 1 (default: wait
                  as long as it takes)
  --ttl D         how long the lease lives without a refresh, from 1s to
                  24h (default 1m0s); a crashed holder's lock frees itself
                  about TTL + 1s after its last refresh
  --grace D       after the lease is lost, how long to wait between SIGTERM
                  and SIGKILL (default 10s)
  --owner S       who holds the lock, as 'dimutex status' shows it: at most
                  512 bytes of UTF-8 without control characters (default
                  "HOSTNAME/PID COMMAND")
  --value S       publish S while the command runs: at most 1024 bytes of
                  UTF-8 (default: none)
  --slots N       take a slot of the semaphore NAME of N slots (1 to 1000)
  --endpoint URL  the JSON API root (overrides STORAGE_EMULATOR_HOST);
                  HOST:PORT means http://HOST:PORT
  -v              log requests, retries and lease events to stderr

D is a Go duration, such as 90s, 5m or 1h30m.

Before it waits, run reads the lock once. That read, and the one attempt
of -n, give up after 30s without an answer from GCS (exit 125), or after
--timeout if that is shorter. (If a write of -n may have landed
unanswered, up to 5s more go to removing the lock it may have made.)

The command's environment also has:
  DIMUTEX_LOCK           gs://BUCKET/NAME
  DIMUTEX_TOKEN          the fencing token: unique to this holding and, in
                         practice, larger for each later holder; give it to
                         what the lock protects, so that it can refuse the
                         writes of a holder whose lease has ended (with
                         --slots: the slot's token)
  DIMUTEX_LEASE_EXPIRES  the lease's deadline when the command started, RFC
                         3339 UTC (dimutex keeps extending it)
  DIMUTEX_OWNER          the --owner string
  DIMUTEX_VALUE          the --value string ("" if none)

Exit status: the command's own, or 1 (held with -n, or --timeout expired),
2 (usage), 75 (lease lost), 125 (GCS or credential failure, NAME is not a
dimutex lock, a semaphore size mismatch, or the lock not released after the
command ended), 126 (command not executable), 127 (command not found),
128+N (signal N while waiting).
`

// defaultGrace is the default of --grace.
const defaultGrace = 10 * time.Second

// maxOwnerCommand bounds the command name in the default owner.
const maxOwnerCommand = 64

// runArgs are the parsed arguments of `dimutex run`.
type runArgs struct {
	common
	noWait       bool
	timeout      time.Duration
	ttl          time.Duration
	grace        time.Duration
	owner        string
	value        string
	slots        int
	bucket, name string
	command      []string
}

func (a *runArgs) flags() *flag.FlagSet {
	fs := newFlagSet("run")
	fs.BoolVar(&a.noWait, "n", false, "fail at once if held")
	fs.BoolVar(&a.noWait, "no-wait", false, "fail at once if held")
	fs.DurationVar(&a.timeout, "timeout", 0, "give up waiting after D")
	fs.DurationVar(&a.ttl, "ttl", dimutex.DefaultTTL, "lease TTL")
	fs.DurationVar(&a.grace, "grace", defaultGrace, "time between SIGTERM and SIGKILL")
	fs.StringVar(&a.owner, "owner", "", "holder description")
	fs.StringVar(&a.value, "value", "", "value to publish")
	fs.IntVar(&a.slots, "slots", 0, "semaphore size")
	a.common.register(fs)
	return fs
}

// parseRun parses the arguments of `dimutex run`.
func parseRun(args []string) (*runArgs, error) {
	a := new(runArgs)
	fs := a.flags()
	// Split at the first "--" ourselves: the flag package would also stop
	// at BUCKET, and everything after "--" belongs to the command even if
	// it looks like a flag.
	i := slices.Index(args, "--")
	if i < 0 {
		if _, err := parseArgs(fs, args); err != nil {
			return nil, err
		}
		return nil, usagef("missing -- before the command")
	}
	pos, err := parseArgs(fs, args[:i])
	if err != nil {
		return nil, err
	}
	if a.bucket, a.name, err = lockArgs(pos); err != nil {
		return nil, err
	}
	a.command = args[i+1:]
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case len(a.command) == 0 || a.command[0] == "":
		return nil, usagef("missing the command after --")
	case set["timeout"] && a.timeout <= 0:
		return nil, usagef("--timeout %v must be positive (omit it to wait as long as it takes, or use -n)", a.timeout)
	case a.grace < 0:
		return nil, usagef("--grace %v must not be negative", a.grace)
	case set["slots"] && a.slots < 1:
		return nil, usagef("--slots %d: it must be from 1 to %d", a.slots, dimutex.MaxSlots)
	}
	if a.owner == "" {
		a.owner = defaultOwner(a.command[0])
	}
	return a, nil
}

// cmdRun is `dimutex run`.
func cmdRun(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a, err := parseRun(args)
	if err != nil {
		return parseFailed("run", runHelp, err, stdout, stderr)
	}
	opts := append(a.options(stderr), dimutex.WithTTL(a.ttl), dimutex.WithOwner(a.owner))
	if a.value != "" {
		opts = append(opts, dimutex.WithValue(a.value))
	}
	// For a semaphore, m only names it, in messages and DIMUTEX_LOCK.
	m, err := dimutex.NewGCS(a.bucket, a.name, opts...)
	if err != nil {
		return configFailed("run", err, &a.common, a.bucket, stderr)
	}
	var t target = &lockTarget{m}
	if a.slots > 0 {
		sem, err := dimutex.NewSemaphore(a.bucket, a.name, a.slots, opts...)
		if err != nil {
			return configFailed("run", err, &a.common, a.bucket, stderr)
		}
		t = &semaphoreTarget{sem: sem, bucket: a.bucket, name: a.name, opts: opts}
	}
	// Find the command before taking the lock, so that a typo does not
	// make everyone else wait.
	path, err := exec.LookPath(a.command[0])
	if err != nil {
		return startFailed(stderr, a.command[0], err)
	}

	// Catch the signals from now on: while waiting they cancel the wait,
	// and while the command runs they are passed on to it.
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, forwardedSignals()...)
	defer signal.Stop(sigc)

	lease, code := acquire(a, t, sigc, stderr)
	if lease == nil {
		return code
	}
	return supervise(a, m, lease, path, sigc, stdin, stdout, stderr)
}

// target is what run acquires: a lock, or a slot of a semaphore.
type target interface {
	// String names it in messages: "gs://bucket/name".
	String() string
	// what names what is waited for: the lock, or "a slot of" it.
	what() string
	Acquire(ctx context.Context) (*dimutex.Lease, error)
	TryAcquire(ctx context.Context) (*dimutex.Lease, error)
	// peek reads it once, and reports whether it is held (every slot,
	// for a semaphore) and by whom. Its error is a failed read, or what
	// acquiring would give too: ErrNotALock, ErrSizeMismatch.
	peek(ctx context.Context) (held bool, holders string, err error)
}

// lockTarget is a lock.
type lockTarget struct{ *dimutex.Mutex }

func (t *lockTarget) what() string { return t.String() }

func (t *lockTarget) peek(ctx context.Context) (bool, string, error) {
	st, err := t.Inspect(ctx)
	switch {
	case err != nil:
		return false, "", err
	case st.NotALock:
		return false, "", &dimutex.NotALockError{Lock: t.String(), Generation: st.Generation, Size: -1}
	}
	holders := fmt.Sprintf("it is held by %q (token %d) for up to %v more", st.Owner, st.Token, roundDuration(st.ExpiresIn))
	if st.TTLCapped {
		holders += fmt.Sprintf(" (its stored TTL is missing or unusable, so it is judged as %v)", dimutex.MaxTTL)
	}
	return st.Held, holders, nil
}

// semaphoreTarget is a slot of a semaphore.
type semaphoreTarget struct {
	sem          *dimutex.Semaphore
	bucket, name string
	opts         []dimutex.Option
}

func (t *semaphoreTarget) String() string { return t.sem.String() }
func (t *semaphoreTarget) what() string   { return "a slot of " + t.sem.String() }

func (t *semaphoreTarget) Acquire(ctx context.Context) (*dimutex.Lease, error) {
	return t.sem.Acquire(ctx)
}

func (t *semaphoreTarget) TryAcquire(ctx context.Context) (*dimutex.Lease, error) {
	return t.sem.TryAcquire(ctx)
}

func (t *semaphoreTarget) peek(ctx context.Context) (bool, string, error) {
	s, err := readSemaphore(ctx, t.bucket, t.name, t.sem.Size(), t.opts)
	if err != nil {
		return false, "", err
	}
	if s.blocked != nil {
		return false, "", s.blocked
	}
	return s.full(), s.describeHolders(), nil
}

// signalled is the cause of a wait cut short by a signal.
type signalled struct{ sig os.Signal }

// Error names the signal.
func (s *signalled) Error() string {
	if n, ok := s.sig.(syscall.Signal); ok {
		return fmt.Sprintf("stopped by signal %d (%v)", int(n), n)
	}
	return "stopped by " + s.sig.String()
}

// acquire takes the lock as the flags say. It returns the lease, or nil and
// the exit status after reporting why not.
func acquire(a *runArgs, t target, sigc <-chan os.Signal, stderr io.Writer) (*dimutex.Lease, int) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case sig := <-sigc:
			cancel(&signalled{sig})
		case <-stop:
		}
	}()
	lease, code := acquireCtx(ctx, a, t, stderr)
	close(stop)
	<-watched
	var s *signalled
	if errors.As(context.Cause(ctx), &s) {
		if lease != nil {
			// The signal came as the lock was taken: do not start.
			rctx, rcancel := context.WithTimeout(context.Background(), callTimeout)
			defer rcancel()
			if err := lease.Release(rctx); err != nil {
				fmt.Fprintf(stderr, "dimutex: releasing %s: %s; it frees itself within %v\n", t, trim(err), a.ttl)
			}
		}
		fmt.Fprintf(stderr, "dimutex: %s while waiting for %s; the command was not started\n", s, t)
		return nil, signalExit(s.sig)
	}
	return lease, code
}

func acquireCtx(ctx context.Context, a *runArgs, t target, stderr io.Writer) (*dimutex.Lease, int) {
	// The calls that do not wait are bounded, so that a wrong endpoint or
	// a dead network is reported rather than waited on.
	bound := callTimeout
	if a.timeout > 0 {
		bound = min(bound, a.timeout)
	}
	if a.noWait {
		tctx, cancel := context.WithTimeout(ctx, bound)
		defer cancel()
		lease, err := t.TryAcquire(tctx)
		switch {
		case err == nil:
			return lease, exitOK
		case ctx.Err() != nil:
			return nil, exitFailed // a signal, which acquire reports
		case errors.Is(err, dimutex.ErrAlreadyAcquired):
			fmt.Fprintf(stderr, "dimutex: %s; retry later or drop -n to wait\n", trim(err))
			return nil, exitHeld
		}
		return nil, acquireFailed(stderr, a, "acquiring "+t.what(), err, bound)
	}

	wctx := ctx
	if a.timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	// One bounded read first: Acquire retries transient failures for as
	// long as it waits, so a wrong endpoint or a dead network would
	// otherwise look like a lock that is never freed.
	pctx, cancel := context.WithTimeout(wctx, callTimeout)
	held, holders, err := t.peek(pctx)
	cancel()
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, exitFailed
	case err != nil:
		return nil, acquireFailed(stderr, a, "reading "+t.String(), err, bound)
	}
	if held && a.verbose {
		fmt.Fprintf(stderr, "dimutex: waiting for %s: %s\n", t.what(), holders)
	}
	lease, err := t.Acquire(wctx)
	switch {
	case err == nil:
		return lease, exitOK
	case ctx.Err() != nil:
		return nil, exitFailed
	case wctx.Err() != nil:
		return nil, timedOut(a, t, stderr)
	}
	return nil, acquireFailed(stderr, a, "acquiring "+t.what(), err, 0)
}

// acquireFailed reports why the lock cannot be acquired, other than that it
// is held, and returns exit status 125.
func acquireFailed(stderr io.Writer, a *runArgs, what string, err error, bound time.Duration) int {
	var nl *dimutex.NotALockError
	switch {
	case errors.As(err, &nl):
		fmt.Fprintf(stderr, "dimutex: %s; dimutex never overwrites it: pick another NAME\n", notALockText(nl))
		return exitFailed
	case errors.Is(err, dimutex.ErrSizeMismatch):
		fmt.Fprintf(stderr, "dimutex: %s\n", mismatchText(err))
		return exitFailed
	}
	return failedWithin(stderr, what, err, a.bucket, bound)
}

// timedOut reports that --timeout expired, naming the holder if one more
// read succeeds, and returns the exit status.
func timedOut(a *runArgs, t target, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	held, holders, err := t.peek(ctx)
	switch {
	case err != nil:
		return acquireFailed(stderr, a, fmt.Sprintf("gave up waiting for %s after --timeout %v, and then reading it", t.what(), a.timeout), err, callTimeout)
	case held:
		fmt.Fprintf(stderr, "dimutex: gave up waiting for %s after --timeout %v: %s; retry later or raise --timeout\n",
			t.what(), a.timeout, holders)
	default:
		fmt.Fprintf(stderr, "dimutex: gave up waiting for %s after --timeout %v (it has just been freed); retry\n", t.what(), a.timeout)
	}
	return exitHeld
}

// supervise runs the command under the lease and returns the exit status.
func supervise(a *runArgs, m *dimutex.Mutex, lease *dimutex.Lease, path string, sigc <-chan os.Signal, stdin io.Reader, stdout, stderr io.Writer) int {
	name := a.command[0]
	// The watchdog first: without it the command does not start.
	wd, err := startWatchdog()
	if err != nil {
		fmt.Fprintf(stderr, "dimutex: cannot start the watchdog that ends %s if dimutex dies: %v; the command was not started\n", name, err)
		release(a, m, lease, stderr)
		return exitFailed
	}
	defer wd.wait()
	tty := controllingTerminal(stdin, stdout, stderr)
	defer tty.close()
	jobs := watchJobs(tty)
	defer jobs.stop()
	c, err := startCommand(commandSpec{
		path:   path,
		args:   a.command,
		env:    childEnv(os.Environ(), m, lease, a.owner),
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
		tty:    tty,
	})
	if err != nil {
		tty.reclaim() // the child may have taken the terminal before exec failed
		wd.done()
		code := startFailed(stderr, name, err)
		release(a, m, lease, stderr)
		return code
	}
	if err := wd.watch(c.pid); err != nil {
		fmt.Fprintf(stderr, "dimutex: warning: the watchdog has exited (%v); if dimutex dies, what %s started may outlive the lock\n", err, name)
	}
	jobs.pid = c.pid
	tty.started()

	// pass passes on a signal sent to dimutex.
	pass := func(sig os.Signal) {
		signalGroup(c.cmd.Process, sig)
		if jobs.isStopped() {
			resumeGroup(c.cmd.Process) // as a shell's kill does for a stopped job
		}
	}
	var (
		lost  bool
		done  = lease.Done()
		kill  <-chan time.Time
		timer *time.Timer
	)
loop:
	for {
		select {
		case <-c.exited:
			break loop
		case <-done:
			done = nil
			if !errors.Is(lease.Err(), dimutex.ErrLost) {
				continue
			}
			lost = true
			fmt.Fprintf(stderr, "dimutex: lost the lock %s while %s ran; sending it SIGTERM, and SIGKILL in %v\n", m, name, a.grace)
			signalGroup(c.cmd.Process, sigTerm)
			resumeGroup(c.cmd.Process) // a stopped command acts on it too
			timer = time.NewTimer(a.grace)
			kill = timer.C
		case <-kill:
			kill = nil
			signalGroup(c.cmd.Process, sigKill)
		case sig := <-sigc:
			pass(sig)
		case sig := <-jobs.signals():
			// Signals to pass on go first. A shell's kill %1 sends the
			// stopped job SIGTERM, then SIGCONT, which arrive here in that
			// order but may be picked in the other: the command,
			// continued first, could stop again (reading the terminal
			// from the background), and dimutex with it, SIGTERM unsent.
			for pending := true; pending; {
				select {
				case s := <-sigc:
					pass(s)
				default:
					pending = false
				}
			}
			jobs.handle(sig)
		}
	}
	if timer != nil {
		timer.Stop()
	}
	tty.reclaim()
	status := exitStatus(c.cmd.ProcessState)

	if lost {
		// The lock is gone, so nothing the command left running may go
		// on. A group's id stays reserved while any member lives; if none
		// does, the kill finds nothing (unless, within these
		// microseconds, a new process took the pid and made itself a
		// group leader).
		signalGroup(c.cmd.Process, sigKill)
		wd.done()
		release(a, m, lease, stderr) // waits for the lease's goroutine; ErrLost is not reported
		return exitLost
	}
	wd.done()
	if errors.Is(lease.Err(), dimutex.ErrLost) {
		fmt.Fprintf(stderr, "dimutex: lost the lock %s before %s finished (exit status %d); its work may have overlapped another holder's\n", m, name, status)
		release(a, m, lease, stderr)
		return exitLost
	}
	return releaseAfter(a, m, lease, name, status, stderr)
}

// releaseAfter releases the lock after the command exited with status, and
// returns dimutex's exit status: the command's, or 75 if its work may have
// overlapped another holder's, or 125 if the lock could not be released.
func releaseAfter(a *runArgs, m *dimutex.Mutex, lease *dimutex.Lease, name string, status int, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	err := lease.Release(ctx)
	switch {
	case err == nil:
		return status
	case errors.Is(err, dimutex.ErrLost):
		// The lease was lost before Release was called: the library
		// reports a lease that runs out during the release, after the
		// work, as ErrNotReleased. Someone force-released it, or its
		// refreshes failed until it ran out, as the command exited.
		fmt.Fprintf(stderr, "dimutex: %s exited with status %d, but the lease on %s was lost before it was released (%s); its work may have overlapped another holder's\n",
			name, status, m, trim(err))
		return exitLost
	case errors.Is(err, dimutex.ErrNotReleased):
		// The command finished under a valid lease; only the delete
		// failed: until the lease ran out, or for good (a 403, say).
		fmt.Fprintf(stderr, "dimutex: %s exited with status %d under a valid lease, but %s was not released (%s); the lock frees itself within %v%s\n",
			name, status, m, releaseFailure(err), notReleasedWithin(a), releaseHint(err, a.bucket))
		return exitFailed
	}
	fmt.Fprintf(stderr, "dimutex: %s exited with status %d under a valid lease, but releasing %s failed: %s; the lock frees itself within %v%s\n",
		name, status, m, releaseFailure(err), notReleasedWithin(a), releaseHint(err, a.bucket))
	return exitFailed
}

// notReleasedWithin bounds how long a lock that was not released stays
// held: the TTL after the lease's last write, plus a second for the
// server's clock, which counts whole seconds.
func notReleasedWithin(a *runArgs) time.Duration { return a.ttl + time.Second }

// releaseFailure says why a release failed, in the command line's terms:
// GCS's answer, or the library's reason without ErrNotReleased's own text,
// which the messages say in other words.
func releaseFailure(err error) string {
	var ge *gcsjson.Error
	if errors.As(err, &ge) {
		return describe(ge, callTimeout)
	}
	if msg, ok := strings.CutPrefix(err.Error(), dimutex.ErrNotReleased.Error()+": "); ok {
		return msg
	}
	return trim(err)
}

// releaseHint is "; " and what to do about a release that GCS refused for
// good, or "" for a failure that retrying later would not undo either: the
// lock frees itself all the same.
func releaseHint(err error, bucket string) string {
	var ge *gcsjson.Error
	if errors.As(err, &ge) && (ge.Code == http.StatusUnauthorized || ge.Code == http.StatusForbidden) {
		return "; " + hint(err, bucket)
	}
	return ""
}

// release ends a lease whose outcome no longer matters, reporting only a
// failure that leaves the lock held.
func release(a *runArgs, m *dimutex.Mutex, lease *dimutex.Lease, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	err := lease.Release(ctx)
	if err != nil && !errors.Is(err, dimutex.ErrLost) && !errors.Is(err, dimutex.ErrAlreadyReleased) {
		fmt.Fprintf(stderr, "dimutex: releasing %s: %s; the lock frees itself within %v%s\n", m, releaseFailure(err), notReleasedWithin(a), releaseHint(err, a.bucket))
	}
}

// startFailed reports a command that could not be found or started, and
// returns 127 or 126 as a shell would.
func startFailed(stderr io.Writer, name string, err error) int {
	var pe *fs.PathError
	started := errors.As(err, &pe) && pe.Op == "fork/exec"
	switch {
	case started && errors.Is(err, syscall.ENOENT):
		// The file was there when LookPath looked: what exec did not find
		// is its interpreter, most likely.
		if msg, ok := missingInterpreter(pe.Path); ok {
			fmt.Fprintf(stderr, "dimutex: cannot execute %q: %s\n", name, msg)
			return exitNotFound
		}
		fmt.Fprintf(stderr, "dimutex: command %q not found; check its name and $PATH\n", name)
		return exitNotFound
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stderr, "dimutex: command %q not found; check its name and $PATH\n", name)
		return exitNotFound
	case errors.Is(err, exec.ErrDot):
		fmt.Fprintf(stderr, "dimutex: command %q resolves to the current directory through $PATH; write ./%s to run it\n", name, name)
		return exitNotFound
	case started && errors.Is(err, syscall.ENOEXEC):
		fmt.Fprintf(stderr, "dimutex: cannot execute %q: %s\n", name, badFormat(pe.Path))
		return exitNotExecutable
	}
	fmt.Fprintf(stderr, "dimutex: cannot execute %q: %v; check that it is an executable file\n", name, unwrapExec(err))
	return exitNotExecutable
}

// missingInterpreter explains why exec reported "no such file or directory"
// for path, a file that exists: a #! line that names a missing interpreter
// (or ends with a carriage return), or a binary whose dynamic loader is
// missing. ok is false if path does not exist either.
func missingInterpreter(path string) (msg string, ok bool) {
	head, err := fileHead(path)
	if err != nil {
		return "", false
	}
	if line, interp, ok := interpreterLine(head); ok {
		if stripped, cr := strings.CutSuffix(interp, "\r"); cr {
			return fmt.Sprintf("its first line, %q, ends with a carriage return, so its interpreter is %q, which does not exist; convert the file to Unix line endings", line, stripped+"\r"), true
		}
		if _, err := os.Stat(interp); err == nil {
			return fmt.Sprintf("its interpreter %s, named on its first line, could not be started: no such file or directory (is it a script whose own interpreter is missing, or a binary whose dynamic loader is?)", interp), true
		}
		return fmt.Sprintf("its interpreter %s, named on its first line (%s), was not found; install it or fix that line", interp, line), true
	}
	if bytes.HasPrefix(head, []byte("\x7fELF")) {
		return "its dynamic loader (ELF interpreter) was not found: the binary was built for another system or C library", true
	}
	return "exec found no such file or directory, although the file exists", true
}

// badFormat explains why exec reported "exec format error" for path.
func badFormat(path string) string {
	head, _ := fileHead(path)
	if line, interp, ok := interpreterLine(head); ok {
		return fmt.Sprintf("exec format error: its interpreter %s, named on its first line (%s), is not a program this system can run", interp, line)
	}
	return "exec format error: it is not a program for this system (a binary for another architecture or system?)"
}

// unwrapExec drops the exec.Error or fs.PathError wrapping, which repeats
// the command's name.
func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err
}

// Environment variables given to the command.
const (
	envLock    = "DIMUTEX_LOCK"
	envToken   = "DIMUTEX_TOKEN"
	envExpires = "DIMUTEX_LEASE_EXPIRES"
	envOwner   = "DIMUTEX_OWNER"
	envValue   = "DIMUTEX_VALUE"
)

// childEnv returns environ with the lease's variables set, replacing any
// inherited from an enclosing dimutex.
func childEnv(environ []string, m *dimutex.Mutex, lease *dimutex.Lease, owner string) []string {
	ours := []string{envLock, envToken, envExpires, envOwner, envValue}
	env := slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(ours, k)
	})
	return append(env,
		envLock+"="+m.String(),
		envToken+"="+strconv.FormatInt(lease.Token(), 10),
		// Truncating to the second errs early, which is the safe side.
		envExpires+"="+lease.Deadline().UTC().Format(time.RFC3339),
		envOwner+"="+owner,
		envValue+"="+lease.Value(),
	)
}

// defaultOwner is the library's default owner, "hostname/pid", followed by
// the command's name so that `status` says what holds the lock.
func defaultOwner(command string) string {
	return dimutex.DefaultOwner() + " " + printable(filepath.Base(command), maxOwnerCommand)
}

// printable returns s with control characters, which the library refuses in
// an owner, replaced, and cut to at most n bytes.
func printable(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "?") {
		if unicode.IsControl(r) {
			r = '?'
		}
		if b.Len()+len(string(r)) > n {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// roundDuration rounds d for people: to the second, or to the millisecond
// below one second.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second || d <= -time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
