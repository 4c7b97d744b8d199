package dimutex_test

// Leader election: a Mutex whose lease is the leadership, and whose holder
// publishes a value that followers read with one request or observe.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/gcsjson"
)

// Among N campaigners exactly one leads at a time; the others wait with
// reads and take over as each leader resigns, without waiting for its TTL,
// until every one of them has led.
func TestElectionOneLeaderAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		const n = 5
		var (
			inside   atomic.Int32
			mu       sync.Mutex
			led      []string
			tokens   []int64
			resigned time.Time
			wg       sync.WaitGroup
		)
		for i := range n {
			e := w.election("leader", dimutex.WithOwner(fmt.Sprint("node-", i)))
			wg.Go(func() {
				l, err := e.Campaign(context.Background(), fmt.Sprint("value-", i))
				if err != nil {
					t.Error(err)
					return
				}
				if k := inside.Add(1); k != 1 {
					t.Errorf("%d leaders at once", k)
				}
				mu.Lock()
				if !resigned.IsZero() {
					if handoff := time.Since(resigned); handoff > dimutex.DefaultMaxBackoff {
						t.Errorf("node-%d took over %v after the last leader resigned, want within a poll interval", i, handoff)
					}
				}
				led = append(led, fmt.Sprint("node-", i))
				tokens = append(tokens, l.Token())
				mu.Unlock()
				if got, err := e.Leader(context.Background()); err != nil || got.Token != l.Token() || got.Value != fmt.Sprint("value-", i) {
					t.Errorf("node-%d leads, but Leader = %+v, %v", i, got, err)
				}
				time.Sleep(2 * time.Second)
				inside.Add(-1)
				mu.Lock()
				resigned = time.Now()
				mu.Unlock()
				if err := l.Release(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if len(led) != n {
			t.Errorf("%d of %d campaigners led: %v", len(led), n, led)
		}
		for i := 1; i < len(tokens); i++ {
			if tokens[i] <= tokens[i-1] {
				t.Errorf("tokens do not increase from leader to leader: %v", tokens)
			}
		}
	})
}

// Leader reads the leader with one request: owner, value, token, when it
// acquired the leadership, and when it lapses by server time. Nobody leads
// when the object is missing or its lease has expired (ErrNoLeader); an
// object that is not a lock is ErrNotALock.
func TestElectionLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		const ttl = 30 * time.Second
		observer := w.election("e", w.as("observer"))
		one := func(what string) {
			t.Helper()
			if got := summary(w.requests("observer")); got != "get=1" {
				t.Errorf("%s: Leader sent %s, want get=1", what, got)
			}
			w.srv.ClearRequests()
		}

		_, err := observer.Leader(ctx)
		if !errors.Is(err, dimutex.ErrNoLeader) || err.Error() != "dimutex: no leader in "+ref("e") {
			t.Errorf("Leader of a missing election = %v, want ErrNoLeader", err)
		}
		one("no object")

		time.Sleep(300 * time.Millisecond)
		l, err := w.election("e", dimutex.WithOwner("node-1"), dimutex.WithTTL(ttl)).Campaign(ctx, "10.0.0.1:8080")
		if err != nil {
			t.Fatal(err)
		}
		since := w.srv.Now()
		check := func(what string, value string, updated time.Time) {
			t.Helper()
			// Read in a later second than the write: see
			// TestLeaderExpiresInTheSecondOfTheWrite for the same second.
			time.Sleep(time.Second)
			w.srv.ClearRequests()
			got, err := observer.Leader(ctx)
			obj, _ := w.object("e")
			switch {
			case err != nil:
				t.Errorf("%s: Leader = %v", what, err)
			case got.Owner != "node-1" || got.Value != value || got.Token != l.Token() || got.Generation != obj.Generation:
				t.Errorf("%s: Leader = %+v, want node-1 publishing %q with token %d at generation %d", what, got, value, l.Token(), obj.Generation)
			case !got.Since.Equal(since):
				t.Errorf("%s: Since = %v, want the acquisition's server time %v", what, got.Since, since)
			case !got.Expires.Equal(updated.Add(ttl + dimutex.Margin)):
				t.Errorf("%s: Expires = %v, want the last write + TTL + margin = %v", what, got.Expires, updated.Add(ttl+dimutex.Margin))
			}
			one(what)
		}
		check("after Campaign", "10.0.0.1:8080", since)
		time.Sleep(ttl / 3) // past a background refresh
		refreshed := since.Add(ttl / 3)
		check("after a refresh", "10.0.0.1:8080", refreshed)
		if err := l.Proclaim(ctx, "10.0.0.2:8080"); err != nil {
			t.Fatal(err)
		}
		check("after Proclaim", "10.0.0.2:8080", w.srv.Now())
		release(t, l)
		if _, err := observer.Leader(ctx); !errors.Is(err, dimutex.ErrNoLeader) {
			t.Errorf("Leader after the leader resigned = %v, want ErrNoLeader", err)
		}
		one("after resigning")

		// A leader that stops refreshing: its object stays, but once its
		// lease has expired by server time, nobody leads.
		crashed, err := w.election("e", dimutex.WithOwner("node-2"), dimutex.WithTTL(ttl), dimutex.WithRefreshInterval(0)).Campaign(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		<-crashed.Done()
		if _, err := observer.Leader(ctx); err != nil {
			t.Errorf("Leader right at the lapsed leader's deadline = %v, want it still leading by server time (margin)", err)
		}
		time.Sleep(2 * time.Second)
		w.srv.ClearRequests()
		_, err = observer.Leader(ctx)
		if !errors.Is(err, dimutex.ErrNoLeader) || !strings.Contains(err.Error(), `the lease of "node-2"`) || !strings.Contains(err.Error(), "expired") {
			t.Errorf("Leader of an expired lease = %v, want ErrNoLeader saying it expired", err)
		}
		one("expired")

		w.srv.PutObject(bucket, "e", []byte("not a lock"), nil)
		if _, err := observer.Leader(ctx); !errors.Is(err, dimutex.ErrNotALock) {
			t.Errorf("Leader of an object that is not a lock = %v, want ErrNotALock", err)
		}
		one("not a lock")
	})
}

// Leader.Expires is documented as the leader's last write + TTL + margin,
// by the server's clock. A read in the same second as that write gets a
// Date header earlier than the write (Date counts whole seconds); Expires
// must still be the write's time + TTL + margin.
func TestLeaderExpiresInTheSecondOfTheWrite(t *testing.T) {
	var early time.Duration
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		const ttl = 30 * time.Second
		time.Sleep(300 * time.Millisecond)
		e := w.election("e", dimutex.WithTTL(ttl))
		l, err := e.Campaign(ctx, "v")
		if err != nil {
			t.Fatal(err)
		}
		defer release(t, l)
		wrote := w.srv.Now()
		got, err := e.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		early = wrote.Add(ttl + dimutex.Margin).Sub(got.Expires)
	})
	if early != 0 {
		t.Errorf("Expires is %v off the last write + TTL + margin", early)
	}
}

// observation is one value an Observe sequence yielded, and when.
type observation struct {
	at  time.Time
	l   dimutex.Leader
	err error
}

// observe ranges over e.Observe(ctx) on a goroutine; the channel is closed
// when the sequence ends.
func observe(ctx context.Context, e *dimutex.Election) <-chan observation {
	c := make(chan observation, 100)
	go func() {
		defer close(c)
		for l, err := range e.Observe(ctx) {
			c <- observation{time.Now(), l, err}
		}
	}()
	return c
}

// Observe yields the current leader, then each change in order, once: a
// new value, no leader after a resignation, a new leader, no leader after
// its lease expired. Refreshes yield nothing. Each change is seen within a
// poll interval. The observer only reads, and the sequence ends when ctx
// ends, or when the caller stops iterating.
func TestElectionObserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx, stop := context.WithCancel(context.Background())
		observer := w.election("e", w.as("observer"))
		seen := observe(ctx, observer)
		var changes []time.Time // when each expected yield became true
		changes = append(changes, time.Now())

		time.Sleep(time.Second)
		a, err := w.election("e", dimutex.WithOwner("a"), dimutex.WithTTL(30*time.Second)).Campaign(context.Background(), "v1")
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, time.Now())
		time.Sleep(24 * time.Second) // two refreshes
		if err := a.Proclaim(context.Background(), "v2"); err != nil {
			t.Fatal(err)
		}
		changes = append(changes, time.Now())

		// A second observer, started now, yields the current leader first;
		// it ends when its caller stops iterating.
		time.Sleep(time.Second)
		for l, err := range w.election("e", w.as("observer")).Observe(context.Background()) {
			if err != nil || l.Owner != "a" || l.Value != "v2" || l.Token != a.Token() {
				t.Errorf("a new observer's first yield = %+v, %v; want a publishing v2", l, err)
			}
			break
		}

		time.Sleep(5 * time.Second)
		release(t, a)
		changes = append(changes, time.Now())
		time.Sleep(10 * time.Second)
		b, err := w.election("e", dimutex.WithOwner("b"), dimutex.WithTTL(10*time.Second), dimutex.WithRefreshInterval(0)).Campaign(context.Background(), "b1")
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, time.Now())
		// b stops refreshing: its lease expires by server time, TTL + 1 s to
		// TTL + 2 s after its write.
		changes = append(changes, time.Now().Add(10*time.Second+dimutex.Margin))
		time.Sleep(30 * time.Second)
		stop()
		var got []observation
		for o := range seen {
			got = append(got, o)
		}

		want := []dimutex.Leader{
			{},
			{Owner: "a", Value: "v1", Token: a.Token()},
			{Owner: "a", Value: "v2", Token: a.Token()},
			{},
			{Owner: "b", Value: "b1", Token: b.Token()},
			{},
		}
		if len(got) != len(want) {
			t.Fatalf("Observe yielded %d values, want %d: %+v", len(got), len(want), got)
		}
		for i, o := range got {
			l := o.l
			if o.err != nil || l.Owner != want[i].Owner || l.Value != want[i].Value || l.Token != want[i].Token {
				t.Errorf("yield %d = %+v, %v; want %+v", i, l, o.err, want[i])
			}
			if l.Token == 0 && l != (dimutex.Leader{}) {
				t.Errorf("yield %d: no leader is not the zero Leader: %+v", i, l)
			}
			if late := o.at.Sub(changes[i]); late < 0 || late > dimutex.DefaultMaxBackoff+time.Second {
				t.Errorf("yield %d came %v after the change, want within a poll interval", i, late)
			}
		}
		for _, r := range w.requests("observer") {
			if r.Method != http.MethodGet {
				t.Errorf("an observer sent %s %s", r.Method, r.Op)
			}
		}
	})
}

// A permanent error (a missing bucket, an object that is not a lock, a
// refusal) is yielded last: the sequence ends after it.
func TestElectionObservePermanentError(t *testing.T) {
	tests := []struct {
		name    string
		bucket  string
		prepare func(w *world)
		is      error
		says    string
	}{
		{"missing bucket", "no-such-bucket", func(*world) {}, gcsjson.ErrNotFound, `bucket "no-such-bucket" does not exist`},
		{"not a lock", bucket, func(w *world) { w.srv.PutObject(bucket, "e", []byte("x"), nil) }, dimutex.ErrNotALock, "is not a dimutex lock"},
		{"forbidden", bucket, func(w *world) { w.f.always(anyRequest, status403) }, nil, "403 Forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				tc.prepare(w)
				e, err := dimutex.NewElection(tc.bucket, "e", w.base(nil)...)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
				defer cancel()
				var got []observation
				for o := range observe(ctx, e) {
					got = append(got, o)
				}
				if ctx.Err() != nil {
					t.Error("the sequence ran until ctx ended")
				}
				if len(got) != 1 || got[0].l != (dimutex.Leader{}) || got[0].err == nil ||
					tc.is != nil && !errors.Is(got[0].err, tc.is) || !strings.Contains(got[0].err.Error(), tc.says) {
					t.Errorf("Observe yielded %+v, want one error saying %q", got, tc.says)
				}
			})
		})
	}
	t.Run("a leader, then an object that is not a lock", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			l, err := w.election("e").Campaign(context.Background(), "v")
			if err != nil {
				t.Fatal(err)
			}
			seen := observe(context.Background(), w.election("e"))
			if o := <-seen; o.err != nil || o.l.Token != l.Token() {
				t.Errorf("first yield %+v, want the leader", o)
			}
			w.srv.PutObject(bucket, "e", []byte("x"), nil)
			if o := <-seen; !errors.Is(o.err, dimutex.ErrNotALock) {
				t.Errorf("second yield %+v, want ErrNotALock", o)
			}
			if o, ok := <-seen; ok {
				t.Errorf("a yield after the permanent error: %+v", o)
			}
			<-l.Done() // lost at its next refresh: overwritten
			if !errors.Is(l.Release(context.Background()), dimutex.ErrLost) {
				t.Error("the leader whose lock was overwritten did not lose its lease")
			}
		})
	})
}

// Run leads, runs fn, and after a loss (fn's ctx is cancelled with cause
// ErrLost) campaigns again and runs fn again; when its ctx ends it resigns
// (the object is deleted) and returns.
func TestElectionRun(t *testing.T) {
	t.Run("re-campaigns after a loss, resigns when ctx ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			e := w.election("run", dimutex.WithTTL(30*time.Second))
			ctx, cancel := context.WithCancel(context.Background())
			var tokens []int64
			second := make(chan struct{})
			done := make(chan error)
			go func() {
				done <- e.Run(ctx, "v", func(fctx context.Context) error {
					l, err := e.Leader(fctx)
					if err != nil {
						t.Errorf("fn runs, but Leader = %v", err)
					}
					tokens = append(tokens, l.Token)
					if len(tokens) == 1 {
						w.srv.DeleteObject(bucket, "run") // an operator's force release
						<-fctx.Done()
						if cause := context.Cause(fctx); !errors.Is(cause, dimutex.ErrLost) || !strings.Contains(cause.Error(), "deleted") {
							t.Errorf("fn's ctx cause = %v, want ErrLost: deleted", cause)
						}
						return fctx.Err()
					}
					close(second)
					<-fctx.Done()
					return fctx.Err()
				})
			}()
			<-second
			if len(tokens) != 2 || tokens[1] == tokens[0] {
				t.Errorf("fn ran with tokens %v, want two leases", tokens)
			}
			if _, ok := w.object("run"); !ok {
				t.Error("Run leads again, but there is no lock object")
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) || errors.Is(err, dimutex.ErrLost) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
			if _, ok := w.object("run"); ok {
				t.Error("Run did not resign: the lock object is still there")
			}
		})
	})
	t.Run("returns fn's error when fn returns while leading", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			boom := errors.New("boom")
			calls := 0
			err := w.election("run").Run(context.Background(), "v", func(context.Context) error {
				calls++
				time.Sleep(time.Minute) // past refreshes
				return boom
			})
			if !errors.Is(err, boom) || calls != 1 {
				t.Errorf("Run = %v after %d calls, want fn's error after 1", err, calls)
			}
			if _, ok := w.object("run"); ok {
				t.Error("Run did not resign")
			}
		})
	})
	t.Run("ctx ends while campaigning", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			l, err := w.election("run").Campaign(context.Background(), "other")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = w.election("run").Run(ctx, "v", func(context.Context) error {
				t.Error("fn ran although another leads")
				return nil
			})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Run = %v, want DeadlineExceeded", err)
			}
			release(t, l)
		})
	})
}

// Proclaim publishes a new value with one write that also refreshes the
// lease; Value and Leader read it, and background refreshes keep it. After
// a loss it returns ErrLost. Any lease can proclaim, and WithValue
// publishes from the acquisition on.
func TestProclaim(t *testing.T) {
	t.Run("election", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			const ttl = 30 * time.Second
			e := w.election("e", dimutex.WithTTL(ttl))
			l, err := e.Campaign(ctx, "v1")
			if err != nil {
				t.Fatal(err)
			}
			if l.Value() != "v1" {
				t.Errorf("Value = %q, want v1", l.Value())
			}
			time.Sleep(time.Second)
			w.srv.ClearRequests()
			if err := l.Proclaim(ctx, "v2"); err != nil {
				t.Fatal(err)
			}
			if got := summary(w.requests("")); got != "insert=1" {
				t.Errorf("Proclaim sent %s, want insert=1", got)
			}
			if !l.Deadline().Equal(time.Now().Add(ttl)) {
				t.Error("Proclaim did not extend the lease")
			}
			time.Sleep(ttl / 3) // a background refresh keeps the value
			for _, want := range []string{"v2", ""} {
				if want == "" {
					if err := l.Proclaim(ctx, ""); err != nil {
						t.Fatal(err)
					}
				}
				got, err := e.Leader(ctx)
				if l.Value() != want || err != nil || got.Value != want || got.Token != l.Token() {
					t.Errorf("Value = %q, Leader = %+v, %v; want %q", l.Value(), got, err, want)
				}
			}
			w.srv.DeleteObject(bucket, "e")
			<-l.Done()
			if err := l.Proclaim(ctx, "v3"); !errors.Is(err, dimutex.ErrLost) {
				t.Errorf("Proclaim after a loss = %v, want ErrLost", err)
			}
			if l.Value() != "" {
				t.Errorf("Value after a refused Proclaim = %q", l.Value())
			}
		})
	})
	t.Run("mutex", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			m := w.mutex("m", dimutex.WithValue("starting"))
			l := acquire(t, m)
			if st, err := m.Inspect(ctx); err != nil || st.Value != "starting" || l.Value() != "starting" {
				t.Errorf("WithValue: Inspect = %+v, %v; Value = %q; want starting", st, err, l.Value())
			}
			if obj, _ := w.object("m"); obj.Metadata["dimutex-value"] != "starting" {
				t.Errorf("the acquiring write stored %v, want dimutex-value starting", obj.Metadata)
			}
			if err := l.Proclaim(ctx, "50% done"); err != nil {
				t.Fatal(err)
			}
			if st, err := m.Inspect(ctx); err != nil || st.Value != "50% done" {
				t.Errorf("after Proclaim: Inspect = %+v, %v", st, err)
			}
			release(t, l)
		})
	})
}
