package dimutex

// Scripted schedules for the defects and anomalies the simulation is about:
// each runs in virtual time on the in-memory GCS, deterministically.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex/dimutextest"
)

const testBucket = "dimutex-test"

// newTestMutex returns a Mutex on srv, in memory.
func newTestMutex(t *testing.T, srv *dimutextest.Server, name string, opts ...Option) *Mutex {
	t.Helper()
	m, err := NewGCS(testBucket, name, append([]Option{
		WithEndpoint(srv.URL()), WithHTTPClient(srv.Client()),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A release whose delete lands but whose answer is lost, while a waiter
// takes the freed lock before the retry, is a release, not a loss (the
// retry's 412 finds the waiter's lease). Before the fix, Release reported
// ErrLost: "the lock was taken by "b"".
func TestLandedReleaseIsNotALoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := dimutextest.NewServer(dimutextest.WithBucket(testBucket))
		ctx := context.Background()
		a := newTestMutex(t, srv, "lock", WithOwner("a"), WithTTL(10*time.Second))
		b := newTestMutex(t, srv, "lock", WithOwner("b"), WithTTL(10*time.Second))
		la, err := a.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan *Lease, 1)
		go func() {
			lb, err := b.Acquire(ctx)
			if err != nil {
				t.Error(err)
			}
			got <- lb
		}()
		time.Sleep(time.Second) // b is waiting, polling with reads

		var mu sync.Mutex
		deletes := 0
		srv.SetFaults(func(r *dimutextest.Request) dimutextest.Fault {
			if r.Op != "delete" {
				return dimutextest.Fault{}
			}
			mu.Lock()
			defer mu.Unlock()
			deletes++
			switch deletes {
			case 1: // lands; the answer is lost
				return dimutextest.Fault{Kind: dimutextest.ResetAfter}
			case 2: // the retry arrives after b has taken the lock
				return dimutextest.Fault{Latency: 3 * time.Second}
			}
			return dimutextest.Fault{}
		})
		if err := la.Release(ctx); err != nil {
			t.Errorf("Release = %v, want nil: the delete landed", err)
		}
		if err := la.Err(); !errors.Is(err, ErrAlreadyReleased) {
			t.Errorf("Err = %v, want ErrAlreadyReleased", err)
		}
		lb := <-got
		if lb.Err() != nil {
			t.Errorf("b's lease: %v", lb.Err())
		}
		if deletes != 2 {
			t.Errorf("%d deletes, want 2: the schedule did not happen", deletes)
		}
		lb.Release(ctx)
	})
}

// Do and Release report ErrLost only when the work may have overlapped:
// when fn finished under a valid lease and only the release failed (every
// request answered 503 until the deadline), the error is ErrNotReleased.
func TestFailedReleaseAfterTheWorkIsNotALoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := dimutextest.NewServer(dimutextest.WithBucket(testBucket))
		m := newTestMutex(t, srv, "lock", WithTTL(10*time.Second))
		err := m.Do(context.Background(), func(ctx context.Context) error {
			time.Sleep(1500 * time.Millisecond)
			srv.SetFaults(func(*dimutextest.Request) dimutextest.Fault {
				return dimutextest.Fault{Kind: dimutextest.FailBefore, Status: http.StatusServiceUnavailable}
			})
			return nil
		})
		switch {
		case errors.Is(err, ErrLost):
			t.Fatalf("Do = %v: reported a loss although fn finished under a valid lease", err)
		case !errors.Is(err, ErrNotReleased):
			t.Fatalf("Do = %v, want ErrNotReleased", err)
		}
	})
}

// wallClock is a host's wall clock that can jump ahead of its monotonic
// clock, as it does when the host is suspended and resumed.
type wallClock struct {
	mu    sync.Mutex
	jumps []wallJump
}

type wallJump struct {
	at time.Time // monotonic
	d  time.Duration
}

func (c *wallClock) wall(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := t.Round(0)
	for _, j := range c.jumps {
		if !t.Before(j.at) {
			w = w.Add(j.d)
		}
	}
	return w
}

// suspend makes the host resume now after d of suspension: its wall clock
// and the rest of the world moved on by d, its monotonic clock did not.
func (c *wallClock) suspend(srv *dimutextest.Server, d time.Duration) {
	c.mu.Lock()
	c.jumps = append(c.jumps, wallJump{at: time.Now(), d: d})
	c.mu.Unlock()
	srv.SetClock(time.Until(srv.Now())+d, 1)
}

// After a host is suspended for longer than the TTL (its monotonic clock
// stops; its wall clock and GCS's do not), the holder does not go on
// trusting its lease: Done closes within about a second of the resume, not
// at the next refresh, and a waiter on another host takes over.
func TestSuspendedHostLosesItsLeaseAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := dimutextest.NewServer(dimutextest.WithBucket(testBucket))
		clock := &wallClock{}
		m := newTestMutex(t, srv, "lock", WithTTL(30*time.Second))
		m.lk.wall = clock.wall
		ctx := context.Background()
		l, err := m.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		clock.suspend(srv, time.Minute)
		resumed := time.Now()
		select {
		case <-l.Done():
		case <-time.After(29 * time.Second):
			t.Fatal("the lease was still trusted after the resume")
		}
		if took := time.Since(resumed); took > wallCheck {
			t.Errorf("Done closed %v after the resume, want within %v", took, wallCheck)
		}
		if !errors.Is(l.Err(), ErrLost) {
			t.Errorf("Err = %v, want ErrLost", l.Err())
		}
		// Another host sees the lease expired by server time.
		other := newTestMutex(t, srv, "lock")
		l2, err := other.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("the other host could not take over: %v", err)
		}
		l2.Release(ctx)
	})
}

// The decided behaviour for each anomaly of the server's clock: a waiter
// trusts server time, but never waits more than TTL + margin, by its own
// monotonic clock, for one version of a lock; it never takes over before
// the holder's deadline.
func TestClockAnomalies(t *testing.T) {
	const ttl = 10 * time.Second
	tests := []struct {
		name string
		// at runs right after the holder's last write.
		at func(srv *dimutextest.Server)
		// faults edits the waiter's answers.
		faults dimutextest.FaultFunc
		// want bounds the takeover, from the holder's last write.
		min, max time.Duration
	}{
		{name: "normal", min: ttl + clockMargin, max: ttl + clockMargin + dateResolution + 200*time.Millisecond},
		{name: "Date missing", faults: editDate(func(h http.Header) { h.Del("Date") }),
			min: ttl + clockMargin, max: ttl + clockMargin + 300*time.Millisecond},
		{name: "Date unparsable", faults: editDate(func(h http.Header) { h.Set("Date", "yesterday") }),
			min: ttl + clockMargin, max: ttl + clockMargin + 300*time.Millisecond},
		{name: "Date goes backwards an hour (updated later than Date)", at: func(srv *dimutextest.Server) {
			srv.SetClock(time.Until(srv.Now())-time.Hour, 1)
		}, min: ttl + clockMargin, max: ttl + clockMargin + 300*time.Millisecond},
		{name: "server clock 5% slow", at: func(srv *dimutextest.Server) {
			srv.SetClock(time.Until(srv.Now()), 0.95)
		}, min: ttl + clockMargin, max: ttl + clockMargin + 300*time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := dimutextest.NewServer(dimutextest.WithBucket(testBucket))
				ctx := context.Background()
				holder := newTestMutex(t, srv, "lock", WithTTL(ttl), WithRefreshInterval(0))
				l, err := holder.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				last := time.Now()
				deadline := l.Deadline()
				if tc.at != nil {
					tc.at(srv)
				}
				if tc.faults != nil {
					srv.SetFaults(tc.faults)
				}
				waiter := newTestMutex(t, srv, "lock", WithTTL(ttl))
				l2, err := waiter.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				took := time.Since(last)
				if time.Now().Before(deadline) {
					t.Errorf("taken over %v before the holder's deadline", time.Until(deadline))
				}
				if took < tc.min || took > tc.max {
					t.Errorf("taken over %v after the holder's last write, want in [%v, %v]", took, tc.min, tc.max)
				}
				l2.Release(ctx)
				<-l.Done()
			})
		})
	}
}

func editDate(edit func(http.Header)) dimutextest.FaultFunc {
	return func(*dimutextest.Request) dimutextest.Fault { return dimutextest.Fault{Header: edit} }
}

// Objects that are not locks, and locks whose stored TTL is unusable, by
// the decided rules: never overwritten or deleted; an unusable TTL is
// judged as MaxTTL, and TryAcquire says so.
func TestForeignObjects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := dimutextest.NewServer(dimutextest.WithBucket(testBucket))
		ctx := context.Background()

		srv.PutObject(testBucket, "data/report.csv", []byte("a,b,c\n"), nil)
		m := newTestMutex(t, srv, "data/report.csv", WithTTL(time.Second))
		for name, try := range map[string]func(context.Context) (*Lease, error){"Acquire": m.Acquire, "TryAcquire": m.TryAcquire} {
			if _, err := try(ctx); !errors.Is(err, ErrNotALock) {
				t.Errorf("%s on a data object = %v, want ErrNotALock", name, err)
			}
		}
		st, err := m.Inspect(ctx)
		if err != nil || !st.NotALock || st.Held {
			t.Errorf("Inspect = %+v, %v; want NotALock", st, err)
		}
		if err := m.ForceRelease(ctx, st.Generation); !errors.Is(err, ErrNotALock) {
			t.Errorf("ForceRelease = %v, want ErrNotALock", err)
		}
		if _, ok := srv.Object(testBucket, "data/report.csv"); !ok {
			t.Fatal("the data object is gone")
		}

		for _, ttl := range []string{"315360000000", "soon", ""} {
			md := map[string]string{keyLease: "0123", keyOwner: "buggy writer", keyTTL: ttl}
			if ttl == "" {
				delete(md, keyTTL)
			}
			srv.PutObject(testBucket, "buggy", nil, md)
			m := newTestMutex(t, srv, "buggy", WithTTL(time.Second))
			_, err := m.TryAcquire(ctx)
			if !errors.Is(err, ErrAlreadyAcquired) || !strings.Contains(err.Error(), "judged as 24h0m0s") {
				t.Errorf("stored TTL %q: TryAcquire = %v, want held, judged by MaxTTL", ttl, err)
			}
			if st, _ := m.Inspect(ctx); !st.TTLCapped || st.TTL != MaxTTL || !st.Held {
				t.Errorf("stored TTL %q: Inspect = %+v", ttl, st)
			}
		}
		time.Sleep(MaxTTL + 2*time.Second)
		m = newTestMutex(t, srv, "buggy")
		l, err := m.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("after MaxTTL: %v", err)
		}
		l.Release(ctx)
	})
}

// tagged sends srv's requests with the header X-Who: who.
type tagged struct {
	who string
	srv *dimutextest.Server
}

func (t tagged) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Who", t.who)
	// Not GetBody: gcsjson would read it as a re-send of the write.
	return t.srv.Transport().RoundTrip(req)
}

// A's acquisition lands unseen, takes so long that its lease runs out, and
// is renewed too late: B has taken the expired lock over, and released it.
// A then creates the lock anew, and its token is that write's generation,
// larger than B's, not the generation of A's first write, which B replaced.
// (The simulation found this, seed 1283.)
func TestTokenOfAnAcquisitionThatStartsAnew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := dimutextest.NewServer(dimutextest.WithBucket(testBucket))
		ctx := context.Background()
		const ttl = 10 * time.Second
		mk := func(who string) *Mutex {
			m, err := NewGCS(testBucket, "lock", WithEndpoint(srv.URL()), WithTTL(ttl), WithOwner(who),
				WithAttemptTimeout(time.Minute), WithHTTPClient(&http.Client{Transport: tagged{who, srv}}))
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		a, b := mk("a"), mk("b")
		var mu sync.Mutex
		var aInserts int
		srv.SetFaults(func(r *dimutextest.Request) dimutextest.Fault {
			if r.Header.Get("X-Who") != "a" || r.Op != "insert" {
				return dimutextest.Fault{}
			}
			mu.Lock()
			defer mu.Unlock()
			aInserts++
			switch aInserts {
			case 1: // lands; the answer is lost
				return dimutextest.Fault{Kind: dimutextest.ResetAfter}
			case 2: // the retry comes after a's lease has run out
				return dimutextest.Fault{Latency: ttl + 500*time.Millisecond}
			case 3: // the renewal comes after b has taken the lock over
				return dimutextest.Fault{Latency: 3 * time.Second}
			}
			return dimutextest.Fault{}
		})
		got := make(chan *Lease)
		go func() {
			l, err := a.Acquire(ctx)
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
		time.Sleep(500 * time.Millisecond)
		lb, err := b.Acquire(ctx) // takes a's expired first write over
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := lb.Release(ctx); err != nil {
			t.Fatal(err)
		}
		la := <-got
		if la.Token() <= lb.Token() {
			t.Errorf("a's token %d is not larger than b's earlier token %d", la.Token(), lb.Token())
		}
		if aInserts != 4 {
			t.Errorf("a sent %d inserts, want 4: the schedule did not happen", aInserts)
		}
		la.Release(ctx)
	})
}
