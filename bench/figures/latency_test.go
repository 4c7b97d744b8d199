package figures_test

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/bench/internal/emu"
)

// The election's latencies: failover (the leader crashes → a follower's
// Campaign returns), handover (the leader resigns → a follower's Campaign
// returns) and observe (a change → each observer yields it), with 1 and 16
// observers.
//
// TestElectionLatency measures them on dimutextest in synctest bubbles:
// virtual time, so the figures are the protocol's own, exact and the same
// on every run. TestElectionLatencyRealTime measures the same scenarios in
// real time, over HTTP on fake-gcs-server in this process, when
// DIMUTEX_FIGURES_REALTIME=1 (about 3 minutes):
//
//	cd bench && GOWORK=off go test -v -count=1 -run TestElectionLatency ./figures
//	cd bench && GOWORK=off DIMUTEX_FIGURES_REALTIME=1 go test -v -count=1 -run TestElectionLatencyRealTime ./figures
//
// A crash is simulated in process: the leader's transport starts failing
// every request at once, so the leader never writes again, as if its
// process had died. The library's defaults hold otherwise (refresh every
// TTL/3, backoff 100 ms to 5 s).

// crashSwitch is a client's transport that, once crashed, fails every
// request without sending it.
type crashSwitch struct {
	next http.RoundTripper
	dead atomic.Bool
}

var errCrashed = errors.New("figures: the client has crashed")

func (c *crashSwitch) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.dead.Load() {
		return nil, errCrashed
	}
	return c.next.RoundTrip(req)
}

// env is where a scenario's clients send their requests: the in-memory
// GCS of a world, or an emulator over HTTP.
type env struct {
	endpoint, bucket string
	transport        func(tag string) http.RoundTripper // one client's
}

func (w *world) env() env {
	return env{w.srv.URL(), bucket, func(tag string) http.RoundTripper {
		return &tagTransport{tag: tag, next: w.srv.Transport(), w: w}
	}}
}

// election returns a client of the election name; if crash is not nil, its
// requests go through it.
func (e env) election(t testing.TB, name, tag string, ttl time.Duration, crash *crashSwitch) *dimutex.Election {
	t.Helper()
	rt := e.transport(tag)
	if crash != nil {
		crash.next = rt
		rt = crash
	}
	el, err := dimutex.NewElection(e.bucket, name, dimutex.WithEndpoint(e.endpoint),
		dimutex.WithHTTPClient(&http.Client{Transport: rt}), dimutex.WithOwner(tag), dimutex.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	return el
}

type win struct {
	lease *dimutex.Lease
	at    time.Time
}

// followers start n clients campaigning on name; each that wins sends its
// lease on the channel.
func (e env) followers(t testing.TB, ctx context.Context, wg *sync.WaitGroup, name string, ttl time.Duration, n int) chan win {
	wins := make(chan win, n)
	for i := range n {
		f := e.election(t, name, fmt.Sprint("follower-", i), ttl, nil)
		wg.Go(func() {
			if l, err := f.Campaign(ctx, ""); err == nil {
				wins <- win{l, time.Now()}
			}
		})
	}
	return wins
}

func awaitWin(t testing.TB, wins chan win, limit time.Duration) win {
	t.Helper()
	select {
	case w := <-wins:
		return w
	case <-time.After(limit):
		t.Fatalf("no new leader within %v", limit)
	}
	return win{}
}

// failoverTrial: a leader and two followers; the leader crashes at a random
// moment of the second TTL of its leadership (so at any phase of its
// refresh cycle, with the followers' backoff grown), and the figure is the
// time from the crash to a follower's Campaign returning.
func failoverTrial(t testing.TB, e env, name string, ttl time.Duration, rng *mrand.Rand) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	crash := &crashSwitch{}
	lease, err := e.election(t, name, "leader", ttl, crash).Campaign(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wins := e.followers(t, ctx, &wg, name, ttl, 2)
	time.Sleep(ttl + time.Duration(rng.Int64N(int64(ttl))))
	at := time.Now()
	crash.dead.Store(true)
	w := awaitWin(t, wins, 3*ttl+30*time.Second)
	took := w.at.Sub(at)
	cancel()
	wg.Wait()
	if err := w.lease.Release(context.Background()); err != nil {
		t.Error(err)
	}
	if lease.Err() == nil {
		t.Errorf("the crashed leader's lease is not lost after a follower took over")
	}
	lease.Release(context.Background()) // lost: sends nothing
	return took
}

// handoverTrial: a leader and a follower that has waited in Campaign for
// wait; the leader resigns (Release), and the figure is the time from the
// call of Release to the follower's Campaign returning.
func handoverTrial(t testing.TB, e env, name string, ttl, wait time.Duration) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lease, err := e.election(t, name, "leader", ttl, nil).Campaign(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wins := e.followers(t, ctx, &wg, name, ttl, 1)
	time.Sleep(wait)
	at := time.Now()
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	w := awaitWin(t, wins, 3*ttl+30*time.Second)
	wg.Wait()
	if err := w.lease.Release(context.Background()); err != nil {
		t.Error(err)
	}
	return w.at.Sub(at)
}

// observeRun: n observers run Observe on name; a leader changes its value
// (Proclaim) or resigns so that a standby waiting in Campaign leads, in
// turn, changes times, gap() apart. The figures are the time from the
// change (Proclaim's return, or the new leader's Campaign's return) to each
// observer yielding it, and the slowest observer per change.
func observeRun(t testing.TB, e env, name string, ttl time.Duration, n, changes int, gap func() time.Duration) (values, leaders, slowest []time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type seen struct {
		token int64
		value string
		at    time.Time
	}
	var mu sync.Mutex
	sightings := make([][]seen, n)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range n {
		o := e.election(t, name, fmt.Sprint("observer-", i), ttl, nil)
		wg.Go(func() {
			for l, err := range o.Observe(ctx) {
				if err != nil {
					t.Errorf("observer %d: %v", i, err)
					return
				}
				mu.Lock()
				sightings[i] = append(sightings[i], seen{l.Token, l.Value, time.Now()})
				mu.Unlock()
			}
		})
	}
	// latencies waits until every observer has yielded a leader that
	// matches, and returns how long after at each did.
	latencies := func(at time.Time, match func(seen) bool) []time.Duration {
		limit := time.Now().Add(ttl + 30*time.Second)
		for {
			var ds []time.Duration
			mu.Lock()
			for i := range n {
				for _, s := range sightings[i] {
					if match(s) {
						ds = append(ds, s.at.Sub(at))
						break
					}
				}
			}
			mu.Unlock()
			if len(ds) == n {
				return ds
			}
			if time.Now().After(limit) {
				t.Fatalf("%d of %d observers saw the change within %v", len(ds), n, ttl+30*time.Second)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	standby := func(i int) chan win {
		c := make(chan win, 1)
		el := e.election(t, name, fmt.Sprint("leader-", i), ttl, nil)
		wg.Go(func() {
			if l, err := el.Campaign(ctx, fmt.Sprint("value-0-of-", i)); err == nil {
				c <- win{l, time.Now()}
			}
		})
		return c
	}
	first := awaitWin(t, standby(0), 30*time.Second)
	lease := first.lease
	latencies(first.at, func(s seen) bool { return s.token == lease.Token() })
	next := 1
	waiting := standby(next)
	for change := range changes {
		time.Sleep(gap())
		var ds []time.Duration
		if change%2 == 0 {
			v := fmt.Sprint("value-", change+1)
			if err := lease.Proclaim(ctx, v); err != nil {
				t.Fatal(err)
			}
			at, tok := time.Now(), lease.Token()
			ds = latencies(at, func(s seen) bool { return s.token == tok && s.value == v })
			values = append(values, ds...)
		} else {
			if err := lease.Release(ctx); err != nil {
				t.Fatal(err)
			}
			w := awaitWin(t, waiting, 3*ttl+30*time.Second)
			lease = w.lease
			tok := lease.Token()
			ds = latencies(w.at, func(s seen) bool { return s.token == tok })
			leaders = append(leaders, ds...)
			next++
			waiting = standby(next)
		}
		slowest = append(slowest, slices.Max(ds))
	}
	cancel()
	if err := lease.Release(context.Background()); err != nil {
		t.Error(err)
	}
	return values, leaders, slowest
}

// latencyTable accumulates rows of latency figures.
type latencyTable struct{ b strings.Builder }

func newLatencyTable() *latencyTable {
	lt := &latencyTable{}
	fmt.Fprintln(&lt.b, "| TTL | figure | samples | min | median | p90 | max | median of the runs' medians (range) | protocol bound |")
	fmt.Fprintln(&lt.b, "|--:|---|--:|--:|--:|--:|--:|--:|---|")
	return lt
}

// rowRuns adds a row of the samples of several runs: the pooled samples'
// quantiles and, with more than one run, the median of the runs' medians
// and their range.
func (lt *latencyTable) rowRuns(ttl time.Duration, figure string, runs [][]time.Duration, bound string) {
	var s, meds []time.Duration
	for _, r := range runs {
		r = slices.Clone(r)
		slices.Sort(r)
		if len(r) > 0 {
			meds = append(meds, medianOf(r))
		}
		s = append(s, r...)
	}
	slices.Sort(s)
	slices.Sort(meds)
	if len(s) == 0 {
		fmt.Fprintf(&lt.b, "| %v | %s | 0 | | | | | | %s |\n", ttl, figure, bound)
		return
	}
	runMeds := "–"
	if len(meds) > 1 {
		runMeds = fmt.Sprintf("%s (%s … %s)", fmtDur(medianOf(meds)), fmtDur(meds[0]), fmtDur(meds[len(meds)-1]))
	}
	q := func(p float64) string { return fmtDur(s[min(len(s)-1, int(p*float64(len(s))))]) }
	fmt.Fprintf(&lt.b, "| %v | %s | %d | %s | %s | %s | %s | %s | %s |\n", ttl, figure, len(s),
		fmtDur(s[0]), fmtDur(medianOf(s)), q(0.9), fmtDur(s[len(s)-1]), runMeds, bound)
}

func medianOf(s []time.Duration) time.Duration {
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtDur(d time.Duration) string {
	if d >= 10*time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	}
	return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + " ms"
}

func failoverBound(ttl time.Duration) string {
	return fmt.Sprintf("TTL + 1 s − TTL/3 … TTL + 2 s + 100 ms = %s … %s",
		fmtDur(ttl+time.Second-ttl/3), fmtDur(ttl+2*time.Second+dimutex.DefaultMinBackoff))
}

const pollBound = "≤ backoff max (5 s) + a round trip"

// TestElectionLatency runs every figure 5 times (runs differ: the
// library's backoff jitter is random), each time with 40 trials or
// changes.
func TestElectionLatency(t *testing.T) {
	const runs, trials, changes = 5, 40, 40
	lt := newLatencyTable()
	for _, ttl := range []time.Duration{2 * time.Second, 15 * time.Second, dimutex.DefaultTTL} {
		failover, handover := make([][]time.Duration, runs), make([][]time.Duration, runs)
		for run := range runs {
			for i := range trials {
				seed := uint64(run*1000+i) + uint64(ttl)
				synctest.Test(t, func(t *testing.T) {
					w := newWorld(t, seed)
					rng := mrand.New(mrand.NewPCG(seed, 1))
					failover[run] = append(failover[run], failoverTrial(t, w.env(), "failover", ttl, rng))
				})
				synctest.Test(t, func(t *testing.T) {
					w := newWorld(t, seed+1)
					rng := mrand.New(mrand.NewPCG(seed, 2))
					// The follower has waited 1 s to 60 s: any state of its backoff.
					wait := time.Second + time.Duration(rng.Int64N(int64(59*time.Second)))
					handover[run] = append(handover[run], handoverTrial(t, w.env(), "handover", ttl, wait))
				})
			}
		}
		// In virtual time the bounds are exact, but for the round trips
		// (at most 60 ms each): checked.
		for _, d := range slices.Concat(failover...) {
			if lo, hi := ttl+time.Second-ttl/3, ttl+2*time.Second+dimutex.DefaultMinBackoff+200*time.Millisecond; d < lo || d > hi {
				t.Errorf("TTL %v: a failover took %v, outside [%v, %v]", ttl, d, lo, hi)
			}
		}
		checkPoll(t, "handover", handover)
		lt.rowRuns(ttl, "failover: the leader crashes → a follower's Campaign returns", failover, failoverBound(ttl))
		lt.rowRuns(ttl, "handover: the leader's Release is called → the follower's Campaign returns (follower waited 1–60 s)", handover, pollBound)
	}
	ttl := dimutex.DefaultTTL
	for _, n := range []int{1, 16} {
		values, leaders, slowest := make([][]time.Duration, runs), make([][]time.Duration, runs), make([][]time.Duration, runs)
		for run := range runs {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, uint64(run*100+n))
				rng := mrand.New(mrand.NewPCG(uint64(run*100+n), 7))
				// Changes 1 s to 30 s apart: any state of the observers' backoff.
				gap := func() time.Duration { return time.Second + time.Duration(rng.Int64N(int64(29*time.Second))) }
				values[run], leaders[run], slowest[run] = observeRun(t, w.env(), "observed", ttl, n, changes, gap)
			})
		}
		checkPoll(t, "observe", slowest)
		label := fmt.Sprintf("observe, %d observer%s", n, map[bool]string{true: "", false: "s"}[n == 1])
		lt.rowRuns(ttl, label+": Proclaim returns → Observe yields the value", values, pollBound)
		lt.rowRuns(ttl, label+": a new leader's Campaign returns → Observe yields it", leaders, pollBound)
		if n > 1 {
			lt.rowRuns(ttl, label+": the slowest observer, per change", slowest, pollBound)
		}
	}
	t.Logf("Election latency in virtual time (synctest, dimutextest; a round trip of 20–60 ms); %d runs of %d trials per failover and handover row, of %d changes (half values, half leaders) per observe row, changes 1–30 s apart:\n\n%s",
		runs, trials, changes, lt.b.String())
}

// checkPoll checks that a change was seen within one poll interval at most
// (the backoff maximum, 5 s) and a few round trips.
func checkPoll(t *testing.T, what string, runs [][]time.Duration) {
	t.Helper()
	for _, d := range slices.Concat(runs...) {
		if hi := dimutex.DefaultMaxBackoff + 200*time.Millisecond; d > hi {
			t.Errorf("%s took %v, beyond %v", what, d, hi)
		}
	}
}

// TestElectionLatencyRealTime measures the scenarios of TestElectionLatency
// in real time on fake-gcs-server, TTL 2 s: DIMUTEX_FIGURES_RUNS runs
// (default 3) of DIMUTEX_FIGURES_TRIALS trials (default 10) of each. Beside
// each figure, the same scenario with the same parameters in virtual time
// (synctest, dimutextest, a round trip of 20–60 ms), as the protocol's own
// figure, and the ratio of the two medians.
func TestElectionLatencyRealTime(t *testing.T) {
	if os.Getenv("DIMUTEX_FIGURES_REALTIME") != "1" {
		t.Skip("set DIMUTEX_FIGURES_REALTIME=1 to measure the election's latency in real time (about 4 minutes a run)")
	}
	runs, trials := 3, 10
	if n, err := strconv.Atoi(os.Getenv("DIMUTEX_FIGURES_RUNS")); err == nil && n > 0 {
		runs = n
	}
	if n, err := strconv.Atoi(os.Getenv("DIMUTEX_FIGURES_TRIALS")); err == nil && n > 0 {
		trials = n
	}
	srv, err := emu.StartInProcess(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	live := env{srv.URL, emu.Bucket, func(string) http.RoundTripper { return http.DefaultTransport.(*http.Transport).Clone() }}
	const ttl = 2 * time.Second
	handoverWait := func(rng *mrand.Rand) time.Duration {
		return time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
	}
	observeGap := func(rng *mrand.Rand) func() time.Duration {
		return func() time.Duration {
			return 1500*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond)))
		}
	}
	type figure struct {
		name, bound string
		real, sim   [][]time.Duration
	}
	figs := map[string]*figure{}
	var order []string
	add := func(name, bound string, sim bool, run int, ds []time.Duration) {
		f := figs[name]
		if f == nil {
			f = &figure{name: name, bound: bound, real: make([][]time.Duration, runs), sim: make([][]time.Duration, runs)}
			figs[name] = f
			order = append(order, name)
		}
		if sim {
			f.sim[run] = append(f.sim[run], ds...)
		} else {
			f.real[run] = append(f.real[run], ds...)
		}
	}
	const (
		failoverName = "failover: the leader crashes → a follower's Campaign returns"
		handoverName = "handover: the leader's Release is called → the follower's Campaign returns (follower waited 1–3 s)"
	)
	// scenarios runs every scenario once in e, trials times; name makes
	// the objects' names unique on a shared server.
	scenarios := func(t testing.TB, e env, sim bool, run int, rng *mrand.Rand, newEnv func() env) {
		for i := range trials {
			if newEnv != nil {
				e = newEnv()
			}
			add(failoverName, failoverBound(ttl), sim, run, []time.Duration{failoverTrial(t, e, fmt.Sprint("failover-", run, "-", i), ttl, rng)})
			add(handoverName, pollBound, sim, run, []time.Duration{handoverTrial(t, e, fmt.Sprint("handover-", run, "-", i), ttl, handoverWait(rng))})
		}
		for _, n := range []int{1, 16} {
			if newEnv != nil {
				e = newEnv()
			}
			values, leaders, slowest := observeRun(t, e, fmt.Sprint("observed-", run, "-", n), ttl, n, 2*trials, observeGap(rng))
			label := fmt.Sprintf("observe, %d observer%s", n, map[bool]string{true: "", false: "s"}[n == 1])
			add(label+": Proclaim returns → Observe yields the value", pollBound, sim, run, values)
			add(label+": a new leader's Campaign returns → Observe yields it", pollBound, sim, run, leaders)
			if n > 1 {
				add(label+": the slowest observer, per change", pollBound, sim, run, slowest)
			}
		}
	}
	for run := range runs {
		scenarios(t, live, false, run, mrand.New(mrand.NewPCG(uint64(run), 2)), nil)
		// The same in virtual time: one bubble, a fresh world per trial.
		synctest.Test(t, func(t *testing.T) {
			var worlds []*world
			scenarios(t, env{}, true, run, mrand.New(mrand.NewPCG(uint64(run), 3)), func() env {
				w := newWorld(t, uint64(run*1000+len(worlds)))
				worlds = append(worlds, w)
				return w.env()
			})
		})
	}
	var b strings.Builder
	fmt.Fprintln(&b, "| figure | real: samples | real: min | real: median | real: p90 | real: max | real: median of run medians (range) | virtual: median | real ÷ virtual (medians) | protocol bound |")
	fmt.Fprintln(&b, "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, name := range order {
		f := figs[name]
		r, v := slices.Concat(f.real...), slices.Concat(f.sim...)
		slices.Sort(r)
		slices.Sort(v)
		var meds []time.Duration
		for _, x := range f.real {
			x = slices.Clone(x)
			slices.Sort(x)
			meds = append(meds, medianOf(x))
		}
		slices.Sort(meds)
		q := func(p float64) time.Duration { return r[min(len(r)-1, int(p*float64(len(r))))] }
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s (%s … %s) | %s | %.2f | %s |\n", name, len(r),
			fmtDur(r[0]), fmtDur(medianOf(r)), fmtDur(q(0.9)), fmtDur(r[len(r)-1]),
			fmtDur(medianOf(meds)), fmtDur(meds[0]), fmtDur(meds[len(meds)-1]),
			fmtDur(medianOf(v)), float64(medianOf(r))/float64(medianOf(v)), f.bound)
	}
	t.Logf("Election latency in real time on fake-gcs-server (in process, 127.0.0.1), TTL %v, library defaults otherwise; %d runs of %d trials per failover and handover row, of %d changes per observe row (1.5–3 s apart); beside it the same scenarios in virtual time (synctest, dimutextest, a round trip of 20–60 ms):\n\n%s",
		ttl, runs, trials, 2*trials, b.String())
}
