package e2e_test

import (
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// The multi-process election and semaphore tests run their workers with
// these settings.
const (
	chaosTTL = 2 * time.Second
	// chaosPoll is the workers' backoff maximum, the longest a waiter or
	// follower sleeps between reads: one poll interval at most.
	chaosPoll = 500 * time.Millisecond
	// chaosBound is how soon the protocol replaces a crashed holder: its
	// last write came before the crash, it expires TTL + 1 s after that
	// write by the server's clock, the Date header hides up to a second of
	// it, and a waiter reads within a poll interval of that. The tests
	// only report it: on a loaded machine a process may be scheduled late,
	// so they fail only past chaosLiveness. The exact figures are
	// bench/figures' (simulated time).
	chaosBound = chaosTTL + 2*time.Second + chaosPoll
	// chaosLiveness is how long a test waits for a new holder before it
	// fails: a liveness check, not a latency figure.
	chaosLiveness = chaosBound + 30*time.Second
)

// chaosRun is how long the election and semaphore process tests run: 15 s
// by default, for CI, and a minute with DIMUTEX_SOAK=1.
func chaosRun() time.Duration {
	if soak() {
		return time.Minute
	}
	return 15 * time.Second
}

// Five processes campaign with Election.Run on one election while the test
// kills the leader (SIGKILL, then a restart) or pauses it (SIGSTOP, then
// SIGCONT once another leads), in turn, every one to three seconds. Every
// leader logs, while it leads, that its leadership is still valid (see
// lockworker's elect.go). Then: at most one valid leader at any moment,
// tokens increase from leader to leader, every crash or pause is followed
// by a new leader, and a paused leader, resumed, reports its loss. How
// soon a new leader came is logged against TTL + 2 s + one poll interval,
// not asserted: that is a figure (bench/figures), and a loaded machine
// delays processes.
func TestElectionProcesses(t *testing.T) {
	t.Parallel()
	bin := buildLockworker(t)
	backend.Each(t, func(t *testing.T, b *backend.Backend) { testElectionChaos(t, b, bin) })
}

func testElectionChaos(t *testing.T, b *backend.Backend, bin string) {
	const procs = 5
	srv := b.Start(t)
	out := filepath.Join(t.TempDir(), "leaders.jsonl")
	f := newFleet(t, bin, procs, func(i int) []string {
		return workerArgs(srv.URL, srv.Bucket, "leader", "-mode=elect", "-id", strconv.Itoa(i),
			"-ttl", chaosTTL.String(), "-backoff-max", chaosPoll.String(), "-out", out)
	})

	type lead struct {
		worker int
		token  int64
		start  time.Time
	}
	leading := map[int]lead{} // worker: its leadership, as its stdout says
	latest := lead{worker: -1}
	handle := func(e fleetEvent) {
		fields := strings.Fields(e.line)
		switch {
		case e.line == "":
			f.unexpectedExit(e)
		case fields[0] == "leading" && len(fields) == 3:
			token, _ := strconv.ParseInt(fields[1], 10, 64)
			ns, _ := strconv.ParseInt(fields[2], 10, 64)
			l := lead{worker: e.worker, token: token, start: time.Unix(0, ns)}
			leading[e.worker] = l
			if token > latest.token {
				latest = l
			}
		case fields[0] == "lost":
			delete(leading, e.worker)
		}
	}
	// await handles events until cond holds or d has passed.
	await := func(d time.Duration, cond func() bool) bool {
		timeout := time.After(d)
		for !cond() {
			select {
			case e := <-f.events:
				handle(e)
			case <-timeout:
				return cond()
			}
		}
		return true
	}
	never := func() bool { return false }

	if !await(30*time.Second, func() bool { return latest.worker >= 0 }) {
		t.Fatal("no leader within 30 s")
	}
	var crashes, pauses []time.Duration
	late := 0 // new leaders later than chaosBound
	end := time.Now().Add(chaosRun())
	// Run for chaosRun, and on until both a crash and a pause were seen
	// through (a slow machine may need longer), within a hard limit.
	hardEnd := end.Add(2 * time.Minute)
	for kill := true; time.Now().Before(end) || (len(crashes) == 0 || len(pauses) == 0) && time.Now().Before(hardEnd); kill = !kill {
		await(time.Second+rand.N(2*time.Second), never)
		old := latest
		if _, ok := leading[old.worker]; !ok {
			continue // between leaders
		}
		var at time.Time
		if kill {
			at = f.kill(old.worker)
			delete(leading, old.worker)
		} else {
			at = f.signal(old.worker, syscall.SIGSTOP)
		}
		if !await(chaosLiveness, func() bool { return latest.token > old.token }) {
			t.Fatalf("no new leader within %v of %s the leader (worker %d, token %d)", chaosLiveness, verb(kill), old.worker, old.token)
		}
		took := latest.start.Sub(at)
		if took > chaosBound {
			late++
		}
		if kill {
			crashes = append(crashes, took)
			f.restart(old.worker)
			continue
		}
		pauses = append(pauses, took)
		await(rand.N(time.Second), never)
		f.signal(old.worker, syscall.SIGCONT)
		// Resumed, it finds its leadership gone and campaigns again.
		if !await(chaosLiveness, func() bool { return leading[old.worker].token != old.token }) {
			t.Errorf("worker %d, resumed, did not report the loss of its leadership (token %d)", old.worker, old.token)
		}
	}
	f.stopAll()

	vs := readValidity(t, out)
	gaps := checkExclusive(t, "election", vs)
	if len(vs) < len(crashes)+len(pauses)+1 {
		t.Errorf("%d leaderships logged after %d crashes and %d pauses", len(vs), len(crashes), len(pauses))
	}
	if len(crashes) == 0 || len(pauses) == 0 {
		t.Errorf("%d crashes and %d pauses: the run was too short to test both", len(crashes), len(pauses))
	}
	t.Logf("%d processes, TTL %v, %v: %d leaderships, no two valid at once; a new leader after a crash in %s, after a pause in %s (protocol bound %v, exceeded %d times: scheduling); gaps between valid leaderships %s",
		procs, chaosTTL, chaosRun(), len(vs), spread(crashes), spread(pauses), chaosBound, late, spread(gaps))
}

func verb(kill bool) string {
	if kill {
		return "killing"
	}
	return "pausing"
}
