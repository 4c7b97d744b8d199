package dimutex_test

// Trace events: each is emitted once, when it happens, with the lock's name
// and the lease's token where it has one; and a Trace that is unset, or
// whose fields are nil, costs nothing.

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/dimutextest"
	"github.com/dimutex/dimutex/gcsjson"
)

// events records every event of a Trace. The lists are written by the
// goroutines where events happen; read them through get.
type events struct {
	mu  sync.Mutex
	log eventLog
}

type eventLog struct {
	requests      []dimutex.RequestEvent
	acquired      []dimutex.AcquireEvent
	refreshed     []dimutex.RefreshEvent
	refreshFailed []dimutex.RefreshFailedEvent
	lost          []dimutex.LossEvent
	released      []dimutex.ReleaseEvent
}

func record[E any](mu *sync.Mutex, list *[]E) func(E) {
	return func(e E) {
		mu.Lock()
		defer mu.Unlock()
		*list = append(*list, e)
	}
}

// option returns the WithTrace option that records into ev.
func (ev *events) option() dimutex.Option {
	return dimutex.WithTrace(&dimutex.Trace{
		Request:       record(&ev.mu, &ev.log.requests),
		Acquired:      record(&ev.mu, &ev.log.acquired),
		Refreshed:     record(&ev.mu, &ev.log.refreshed),
		RefreshFailed: record(&ev.mu, &ev.log.refreshFailed),
		Lost:          record(&ev.mu, &ev.log.lost),
		Released:      record(&ev.mu, &ev.log.released),
	})
}

// get returns a copy of the events so far.
func (ev *events) get() eventLog {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	l := ev.log
	return eventLog{slices.Clone(l.requests), slices.Clone(l.acquired), slices.Clone(l.refreshed),
		slices.Clone(l.refreshFailed), slices.Clone(l.lost), slices.Clone(l.released)}
}

// reset forgets the events so far.
func (ev *events) reset() {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.log = eventLog{}
}

// Request: every HTTP request, retries included, with its operation,
// attempt number, status or transport error, duration, whether a failed
// write may have landed, and whether it is retried; Token is the lease's
// for the lease's own requests, 0 for an acquisition's.
func TestTraceRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		ev := &events{}
		m := w.mutex("traced", ev.option(), dimutex.WithRefreshInterval(0))
		lat := 50 * time.Millisecond
		w.f.next(isCreate,
			dimutextest.Fault{Kind: dimutextest.FailBefore, Status: http.StatusServiceUnavailable, Latency: lat},
			dimutextest.Fault{Latency: lat})
		l, err := m.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []dimutex.RequestEvent{
			{Lock: ref("traced"), Op: "insert", Attempt: 1, Status: 503, Duration: lat, MayHaveApplied: true, Retry: true},
			{Lock: ref("traced"), Op: "insert", Attempt: 2, Status: 200, Duration: lat},
		}
		if !equalEvents(ev.get().requests, want) {
			t.Errorf("TryAcquire's requests:\n%+v\nwant\n%+v", ev.get().requests, want)
		}

		// A refresh whose answer is lost: the reset, the retry's 412, the
		// read that finds our lease, the write at the adopted generation.
		ev.reset()
		w.f.next(isCAS, resetAfter)
		if err := l.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		tok := l.Token()
		reqs := ev.get().requests
		if len(reqs) != 4 {
			t.Fatalf("Refresh's requests: %+v", reqs)
		}
		if reset := reqs[0]; !errors.Is(reset.Err, syscall.ECONNRESET) || reset.Status != 0 {
			t.Errorf("the reset's event has Err %v, Status %d; want ECONNRESET, 0", reset.Err, reset.Status)
		}
		reqs[0].Err = nil
		want = []dimutex.RequestEvent{
			{Lock: ref("traced"), Token: tok, Op: "insert", Attempt: 1, MayHaveApplied: true, Retry: true},
			{Lock: ref("traced"), Token: tok, Op: "insert", Attempt: 2, Status: 412},
			{Lock: ref("traced"), Token: tok, Op: "get", Attempt: 1, Status: 200},
			{Lock: ref("traced"), Token: tok, Op: "insert", Attempt: 1, Status: 200},
		}
		if !equalEvents(reqs, want) {
			t.Errorf("Refresh's requests:\n%+v\nwant\n%+v", reqs, want)
		}

		// Inspect's read, a waiter's, a semaphore's list, and the release.
		ev.reset()
		m.Inspect(ctx)
		w.mutex("traced", ev.option()).TryAcquire(ctx)
		s := w.semaphore("pool", 2, ev.option())
		sl, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		release(t, l)
		want = []dimutex.RequestEvent{
			{Lock: ref("traced"), Op: "get", Attempt: 1, Status: 200},
			{Lock: ref("traced"), Op: "insert", Attempt: 1, Status: 412},
			{Lock: ref("traced"), Op: "get", Attempt: 1, Status: 200},
			{Lock: ref("pool/slot-"), Op: "list", Attempt: 1, Status: 200},
			{Lock: ref(w.srv.Objects(bucket, "pool/")[0].Name), Op: "insert", Attempt: 1, Status: 200},
			{Lock: ref("traced"), Token: tok, Op: "delete", Attempt: 1, Status: 204},
		}
		if !equalEvents(ev.get().requests, want) {
			t.Errorf("requests:\n%+v\nwant\n%+v", ev.get().requests, want)
		}
		release(t, sl)
	})
}

// equalEvents compares request events, ignoring Duration when the wanted
// one is 0.
func equalEvents(got, want []dimutex.RequestEvent) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g := got[i]
		if want[i].Duration == 0 {
			g.Duration = 0
		}
		if g != want[i] {
			return false
		}
	}
	return true
}

// Acquired: the lock and token, how long the call waited, the reads and
// writes it spent, and for a takeover whose expired lease it replaced. For
// a Semaphore the lock is the slot taken; for an Election, the election.
func TestTraceAcquired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		ev := &events{}

		l := acquire(t, w.mutex("lock", ev.option(), dimutex.WithOwner("first")))
		if want := (dimutex.AcquireEvent{Lock: ref("lock"), Token: l.Token(), Owner: "first", Writes: 1}); len(ev.get().acquired) != 1 || ev.get().acquired[0] != want {
			t.Errorf("free lock: %+v, want %+v", ev.get().acquired, want)
		}

		// A waiter: its reads and writes as the log counts them.
		ev.reset()
		got := make(chan *dimutex.Lease)
		start := time.Now()
		go func() { got <- acquire(t, w.mutex("lock", ev.option(), w.as("waiter"), dimutex.WithOwner("second"))) }()
		time.Sleep(3 * time.Second)
		release(t, l)
		l2 := <-got
		reqs := w.requests("waiter")
		var reads, writes int
		for _, r := range reqs {
			if r.Op == "get" {
				reads++
			} else {
				writes++
			}
		}
		want := dimutex.AcquireEvent{Lock: ref("lock"), Token: l2.Token(), Owner: "second", Waited: time.Since(start), Reads: reads, Writes: writes}
		if len(ev.get().acquired) != 1 || ev.get().acquired[0] != want || writes != 2 {
			t.Errorf("after waiting: %+v, want %+v", ev.get().acquired, want)
		}
		release(t, l2)

		// A takeover of an expired lease.
		ev.reset()
		crashed := acquire(t, w.mutex("lock", dimutex.WithOwner("crashed"), dimutex.WithTTL(10*time.Second), dimutex.WithRefreshInterval(0)))
		l3 := acquire(t, w.mutex("lock", ev.option(), dimutex.WithOwner("heir")))
		if len(ev.get().acquired) != 1 {
			t.Fatalf("takeover: %+v", ev.get().acquired)
		}
		e := ev.get().acquired[0]
		if !e.TookOver || e.PreviousOwner != "crashed" || e.PreviousToken != crashed.Token() || e.Token != l3.Token() ||
			e.PreviousExpiry < 0 || e.PreviousExpiry > time.Second || e.Writes != 2 {
			t.Errorf("takeover: %+v; want TookOver from crashed (token %d), which expired under a second ago", e, crashed.Token())
		}
		release(t, l3)

		// Election and Semaphore.
		ev.reset()
		el, err := w.election("e", ev.option(), dimutex.WithOwner("leader")).Campaign(ctx, "v")
		if err != nil {
			t.Fatal(err)
		}
		sl, err := w.semaphore("pool", 3, ev.option(), dimutex.WithOwner("worker")).TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slot := w.srv.Objects(bucket, "pool/")[0].Name
		wantAll := []dimutex.AcquireEvent{
			{Lock: ref("e"), Token: el.Token(), Owner: "leader", Writes: 1},
			{Lock: ref(slot), Token: sl.Token(), Owner: "worker", Reads: 1, Writes: 1},
		}
		if len(ev.get().acquired) != 2 || ev.get().acquired[0] != wantAll[0] || ev.get().acquired[1] != wantAll[1] {
			t.Errorf("Campaign and a Semaphore: %+v, want %+v", ev.get().acquired, wantAll)
		}
		release(t, el)
		release(t, sl)
	})
}

// Refreshed: each successful refresh (background, Refresh, Proclaim), with
// its latency (retries included) and attempts.
func TestTraceRefreshed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		ev := &events{}
		const ttl = 30 * time.Second
		l := acquire(t, w.mutex("lock", ev.option(), dimutex.WithTTL(ttl)))
		w.f.next(isCAS, dimutextest.Fault{Latency: 20 * time.Millisecond})
		time.Sleep(ttl/3 + time.Second)
		want := dimutex.RefreshEvent{Lock: ref("lock"), Token: l.Token(), Latency: 20 * time.Millisecond, Attempts: 1, Background: true}
		if len(ev.get().refreshed) != 1 || ev.get().refreshed[0] != want {
			t.Errorf("background refresh: %+v, want %+v", ev.get().refreshed, want)
		}

		ev.reset()
		w.f.next(isCAS, dimutextest.Fault{Kind: dimutextest.FailBefore, Status: 503, Latency: 20 * time.Millisecond})
		start := time.Now()
		if err := l.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Proclaim(ctx, "v"); err != nil {
			t.Fatal(err)
		}
		wantAll := []dimutex.RefreshEvent{
			{Lock: ref("lock"), Token: l.Token(), Latency: time.Since(start), Attempts: 2},
			{Lock: ref("lock"), Token: l.Token(), Attempts: 1},
		}
		if len(ev.get().refreshed) != 2 || ev.get().refreshed[0] != wantAll[0] || ev.get().refreshed[1] != wantAll[1] {
			t.Errorf("Refresh and Proclaim: %+v, want %+v", ev.get().refreshed, wantAll)
		}
		if ev.get().refreshed[0].Latency < 20*time.Millisecond {
			t.Errorf("Refresh's latency %v does not include its failed attempt", ev.get().refreshed[0].Latency)
		}
		release(t, l)
	})
}

// RefreshFailed: a background refresh that failed with an error that is
// not a loss (a 403), counted, with the time until the next try and the
// time left; the lease then recovers.
func TestTraceRefreshFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ev := &events{}
		const ttl = 30 * time.Second
		l := acquire(t, w.mutex("lock", ev.option(), dimutex.WithTTL(ttl)))
		w.f.next(isCAS, status403, status403)
		time.Sleep(ttl / 2)
		if len(ev.get().refreshFailed) != 2 {
			t.Fatalf("RefreshFailed events: %+v, want 2", ev.get().refreshFailed)
		}
		for i, e := range ev.get().refreshFailed {
			var ge *gcsjson.Error
			switch {
			case e.Lock != ref("lock") || e.Token != l.Token() || e.Failures != i+1:
				t.Errorf("event %d: %+v", i, e)
			case !errors.As(e.Err, &ge) || ge.Code != http.StatusForbidden || errors.Is(e.Err, dimutex.ErrLost):
				t.Errorf("event %d: Err %v, want the 403", i, e.Err)
			case e.RetryIn <= 0 || e.RetryIn > dimutex.DefaultMinBackoff<<i:
				t.Errorf("event %d: RetryIn %v", i, e.RetryIn)
			case e.Left <= ttl*2/3-time.Second || e.Left > ttl*2/3:
				t.Errorf("event %d: Left %v, want about 2/3 of the TTL", i, e.Left)
			}
		}
		if len(ev.get().refreshed) != 1 || !ev.get().refreshed[0].Background || ev.get().lost != nil || l.Err() != nil {
			t.Errorf("the lease did not recover: refreshed %+v, lost %+v, Err %v", ev.get().refreshed, ev.get().lost, l.Err())
		}
		release(t, l)
	})
}

// Lost: once per lost lease, with why (deleted, taken, overwritten,
// deadline) and how long it was held. Released: once per lease ended by
// Release, with a nil Err, or ErrNotReleased if the lock was left to
// expire. A lost lease is never also released.
func TestTraceLostAndReleased(t *testing.T) {
	intruder := map[string]string{"dimutex-lease": "0123456789abcdef0123456789abcdef", "dimutex-owner": "intruder", "dimutex-ttl": "60000"}
	const ttl = 30 * time.Second
	tests := []struct {
		name   string
		opts   []dimutex.Option
		meddle func(w *world)
		reason dimutex.LossReason
		held   time.Duration
	}{
		{"deleted", nil, func(w *world) { w.srv.DeleteObject(bucket, "lock") }, dimutex.LossDeleted, ttl / 3},
		{"taken", nil, func(w *world) { w.srv.PutObject(bucket, "lock", nil, intruder) }, dimutex.LossTaken, ttl / 3},
		{"overwritten", nil, func(w *world) { w.srv.PutObject(bucket, "lock", nil, nil) }, dimutex.LossOverwritten, ttl / 3},
		{"deadline", []dimutex.Option{dimutex.WithRefreshInterval(0)}, func(*world) {}, dimutex.LossDeadline, ttl},
	}
	for _, tc := range tests {
		t.Run("lost/"+tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				ev := &events{}
				l := acquire(t, w.mutex("lock", append([]dimutex.Option{ev.option(), dimutex.WithTTL(ttl)}, tc.opts...)...))
				time.Sleep(time.Second)
				tc.meddle(w)
				<-l.Done()
				rerr := l.Release(context.Background())
				l.Refresh(context.Background())
				if len(ev.get().lost) != 1 || ev.get().released != nil {
					t.Fatalf("Lost %+v, Released %+v; want one Lost", ev.get().lost, ev.get().released)
				}
				e := ev.get().lost[0]
				if e.Lock != ref("lock") || e.Token != l.Token() || e.Reason != tc.reason || e.Held != tc.held ||
					!errors.Is(e.Err, dimutex.ErrLost) || rerr == nil || e.Err.Error() != rerr.Error() {
					t.Errorf("Lost = %+v, want reason %q after %v", e, tc.reason, tc.held)
				}
			})
		})
	}
	t.Run("released", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			ev := &events{}
			l := acquire(t, w.mutex("lock", ev.option()))
			time.Sleep(5 * time.Second)
			release(t, l)
			l.Release(context.Background())
			want := dimutex.ReleaseEvent{Lock: ref("lock"), Token: l.Token(), Held: 5 * time.Second}
			if len(ev.get().released) != 1 || ev.get().released[0] != want || ev.get().lost != nil {
				t.Errorf("Released %+v, Lost %+v; want %+v", ev.get().released, ev.get().lost, want)
			}
		})
	})
	t.Run("not released", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			ev := &events{}
			l := acquire(t, w.mutex("lock", ev.option(), dimutex.WithTTL(ttl)))
			time.Sleep(5 * time.Second)
			w.f.always(anyRequest, status503)
			if err := l.Release(context.Background()); !errors.Is(err, dimutex.ErrNotReleased) {
				t.Fatalf("Release = %v", err)
			}
			if len(ev.get().released) != 1 || ev.get().lost != nil {
				t.Fatalf("Released %+v, Lost %+v; want one Released", ev.get().released, ev.get().lost)
			}
			// Released before the first refresh: the deadline is TTL after
			// the acquisition.
			e := ev.get().released[0]
			if e.Lock != ref("lock") || e.Token != l.Token() || e.Held != ttl || !errors.Is(e.Err, dimutex.ErrNotReleased) {
				t.Errorf("Released = %+v, want ErrNotReleased after %v", e, ttl)
			}
		})
	})
}

// Election.Run and Semaphore.Do emit the same events: Run's loss and
// re-election, its resignation; a slot's acquisition and release.
func TestTraceElectionAndSemaphore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx, cancel := context.WithCancel(context.Background())
		ev := &events{}
		e := w.election("e", ev.option(), dimutex.WithTTL(30*time.Second))
		leading := make(chan struct{}, 2)
		done := make(chan error)
		go func() {
			done <- e.Run(ctx, "v", func(fctx context.Context) error {
				leading <- struct{}{}
				<-fctx.Done()
				return fctx.Err()
			})
		}()
		<-leading
		w.srv.DeleteObject(bucket, "e")
		<-leading
		cancel()
		<-done
		if len(ev.get().acquired) != 2 || len(ev.get().lost) != 1 || len(ev.get().released) != 1 {
			t.Fatalf("Run: acquired %+v, lost %+v, released %+v", ev.get().acquired, ev.get().lost, ev.get().released)
		}
		if ev.get().lost[0].Token != ev.get().acquired[0].Token || ev.get().lost[0].Reason != dimutex.LossDeleted ||
			ev.get().released[0].Token != ev.get().acquired[1].Token || ev.get().released[0].Err != nil || ev.get().acquired[1].Lock != ref("e") {
			t.Errorf("Run: acquired %+v, lost %+v, released %+v", ev.get().acquired, ev.get().lost, ev.get().released)
		}

		ev.reset()
		s := w.semaphore("pool", 2, ev.option())
		if err := s.Do(context.Background(), func(context.Context) error { time.Sleep(time.Second); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(ev.get().acquired) != 1 || len(ev.get().released) != 1 || ev.get().acquired[0].Lock != ev.get().released[0].Lock ||
			ev.get().acquired[0].Token != ev.get().released[0].Token || ev.get().released[0].Held != time.Second {
			t.Errorf("Semaphore.Do: acquired %+v, released %+v", ev.get().acquired, ev.get().released)
		}
	})
}

// hooks is a Trace with every hook set, doing nothing.
func hooks() *dimutex.Trace {
	return &dimutex.Trace{
		Request:       func(dimutex.RequestEvent) {},
		Acquired:      func(dimutex.AcquireEvent) {},
		Refreshed:     func(dimutex.RefreshEvent) {},
		RefreshFailed: func(dimutex.RefreshFailedEvent) {},
		Lost:          func(dimutex.LossEvent) {},
		Released:      func(dimutex.ReleaseEvent) {},
	}
}

// cycler returns one TryAcquire+Release cycle on an in-memory server with
// no request log, with opts.
func cycler(tb testing.TB, opts ...dimutex.Option) func() {
	srv := dimutextest.NewServer(dimutextest.WithBucket(bucket), dimutextest.WithoutRequestLog())
	m, err := dimutex.NewGCS(bucket, "cycle", append([]dimutex.Option{
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()), dimutex.WithOwner("bench"),
	}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	return func() {
		l, err := m.TryAcquire(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			tb.Fatal(err)
		}
	}
}

// A cycle (TryAcquire + Release) on the in-memory server, without a Trace
// and with every hook set.
//
//	go test -run '^$' -bench BenchmarkCycle -benchmem .
func BenchmarkCycle(b *testing.B) {
	for _, bc := range []struct {
		name  string
		trace *dimutex.Trace
	}{
		{"no-trace", nil},
		{"trace", hooks()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cycle := cycler(b, dimutex.WithTrace(bc.trace))
			b.ReportAllocs()
			for b.Loop() {
				cycle()
			}
		})
	}
}

// With no Trace, a nil one, or one whose hooks are all nil, the trace
// machinery allocates nothing: a cycle allocates exactly as often in the
// three cases.
func TestTraceCostsNothingWhenUnset(t *testing.T) {
	const runs = 100
	allocs := func(opts ...dimutex.Option) float64 {
		cycle := cycler(t, opts...)
		cycle() // warm up: the server's bucket map, the Date header
		return testing.AllocsPerRun(runs, cycle)
	}
	// Allocation counts of a cycle are steady but for rare runtime noise:
	// take the least of three measurements.
	least := func(opts ...dimutex.Option) float64 {
		return min(allocs(opts...), allocs(opts...), allocs(opts...))
	}
	none := least()
	nilTrace := least(dimutex.WithTrace(nil))
	empty := least(dimutex.WithTrace(&dimutex.Trace{}))
	withHooks := least(dimutex.WithTrace(hooks()))
	if nilTrace != none || empty != none {
		t.Errorf("allocations per cycle: %v with no Trace, %v with WithTrace(nil), %v with an empty Trace; want all equal", none, nilTrace, empty)
	}
	if withHooks <= none {
		t.Errorf("allocations per cycle: %v with every hook set, %v without; the measurement sees no difference, so it proves nothing", withHooks, none)
	}
	t.Logf("allocations per TryAcquire+Release: %v without a Trace (also with WithTrace(nil) and an empty Trace), %v with every hook set", none, withHooks)
}
