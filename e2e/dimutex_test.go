package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/e2e/internal/backend"
	"github.com/dimutex/dimutex/e2e/internal/gcstest"
	"github.com/dimutex/dimutex/gcsjson"
)

func TestLockAndUnlock(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		for _, name := range []string{"lock", "sub/path/to/lock", "trailing/"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, b)
				ctx := ctxT(t)
				m := e.mutex(name, nil, dimutex.WithOwner("tester"), dimutex.WithTTL(7*time.Second))

				l, err := m.TryAcquire(ctx)
				if err != nil {
					t.Fatalf("TryAcquire: %v", err)
				}
				if l.Err() != nil || l.Token() <= 0 {
					t.Fatalf("fresh lease: Err=%v Token=%d", l.Err(), l.Token())
				}
				obj := e.object(name)
				if obj == nil || obj.Name != name {
					t.Fatalf("lock object %q not stored under its name: %+v", name, obj)
				}
				if obj.Generation != l.Token() {
					t.Errorf("token %d is not the acquiring generation %d", l.Token(), obj.Generation)
				}
				want := map[string]string{"dimutex-owner": "tester", "dimutex-ttl": "7000"}
				for k, v := range want {
					if obj.Metadata[k] != v {
						t.Errorf("metadata %s = %q, want %q", k, obj.Metadata[k], v)
					}
				}
				if len(obj.Metadata["dimutex-lease"]) != 32 {
					t.Errorf("dimutex-lease %q is not 128 bits of hex", obj.Metadata["dimutex-lease"])
				}
				if obj.CacheControl != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", obj.CacheControl)
				}

				if err := l.Release(ctx); err != nil {
					t.Fatalf("Release: %v", err)
				}
				select {
				case <-l.Done():
				default:
					t.Fatal("Done not closed after Release")
				}
				if !errors.Is(l.Err(), dimutex.ErrAlreadyReleased) {
					t.Errorf("Err after Release = %v, want ErrAlreadyReleased", l.Err())
				}
				if e.object(name) != nil {
					t.Error("lock object still exists after Release")
				}
			})
		}
	})
}

func TestCannotLockTwice(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		ctx := ctxT(t)
		m1 := e.mutex("twice", nil, dimutex.WithOwner("first"))
		m2 := e.mutex("twice", nil, dimutex.WithOwner("second"))
		l, err := m1.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(ctx)
		for _, tc := range []struct {
			name string
			m    *dimutex.Mutex
		}{
			{"same Mutex", m1},
			{"another Mutex", m2},
		} {
			_, err := tc.m.TryAcquire(ctx)
			if !errors.Is(err, dimutex.ErrAlreadyAcquired) {
				t.Fatalf("%s: TryAcquire on a held lock = %v, want ErrAlreadyAcquired", tc.name, err)
			}
			if !strings.Contains(err.Error(), `"first"`) {
				t.Errorf("%s: error %q does not name the holder", tc.name, err)
			}
		}
	})
}

func TestCannotUnlockTwice(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		ctx := ctxT(t)
		rec := &gcstest.Recorder{}
		l := acquire(t, e.mutex("unlock-twice", rec))
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		rec.Reset()
		for range 2 {
			if err := l.Release(ctx); !errors.Is(err, dimutex.ErrAlreadyReleased) {
				t.Fatalf("second Release = %v, want ErrAlreadyReleased", err)
			}
			if err := l.Refresh(ctx); !errors.Is(err, dimutex.ErrAlreadyReleased) {
				t.Fatalf("Refresh after Release = %v, want ErrAlreadyReleased", err)
			}
		}
		if n := len(rec.Requests()); n != 0 {
			t.Errorf("a released lease sent %d requests: %v", n, rec.Requests())
		}
	})
}

func TestExpiredTakeover(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		ctx := ctxT(t)
		const ttl = time.Second
		holderRec := &gcstest.Recorder{}
		holder := e.mutex("expiry", holderRec, dimutex.WithTTL(ttl), dimutex.WithRefreshInterval(0))
		waiter := e.mutex("expiry", nil, dimutex.WithTTL(ttl), dimutex.WithBackoff(20*time.Millisecond, 200*time.Millisecond))

		old := acquire(t, holder)
		start := time.Now()
		if _, err := waiter.TryAcquire(ctx); !errors.Is(err, dimutex.ErrAlreadyAcquired) {
			t.Fatalf("TryAcquire on a live lease = %v, want ErrAlreadyAcquired", err)
		}
		next := acquire(t, waiter)
		defer next.Release(ctx)
		took := time.Since(start)
		if took < ttl {
			t.Errorf("took over after %v, before the TTL %v ran out", took, ttl)
		}
		if took > ttl+4*time.Second {
			t.Errorf("took over after %v; want about TTL + 1s", took)
		}
		if next.Token() <= old.Token() {
			t.Errorf("new token %d is not greater than the expired one %d", next.Token(), old.Token())
		}
		// The expired holder learned it by its own deadline and does not write.
		<-old.Done()
		if !errors.Is(old.Err(), dimutex.ErrLost) {
			t.Errorf("expired holder's Err = %v, want ErrLost", old.Err())
		}
		holderRec.Reset()
		if err := old.Release(ctx); !errors.Is(err, dimutex.ErrLost) {
			t.Errorf("Release of an expired lease = %v, want ErrLost", err)
		}
		if err := old.Refresh(ctx); !errors.Is(err, dimutex.ErrLost) {
			t.Errorf("Refresh of an expired lease = %v, want ErrLost", err)
		}
		if reqs := holderRec.Requests(); len(reqs) != 0 {
			t.Errorf("the lost lease sent requests: %v", reqs)
		}
		if obj := e.object("expiry"); obj == nil || obj.Generation != next.Token() {
			t.Errorf("the new holder's object was disturbed: %+v", obj)
		}
	})
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		tests := []struct {
			name    string
			refresh time.Duration // 0: the test calls Refresh itself
		}{
			{"explicit Refresh", 0},
			{"background refresh", 250 * time.Millisecond},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, b)
				ctx := ctxT(t)
				const ttl = 1500 * time.Millisecond
				m := e.mutex("refresh", nil, dimutex.WithTTL(ttl), dimutex.WithRefreshInterval(tc.refresh))
				other := e.mutex("refresh", nil, dimutex.WithTTL(ttl))
				l := acquire(t, m)
				firstGen := l.Token()
				firstDeadline := l.Deadline()
				// Hold for twice the TTL, refreshing as we go.
				for end := time.Now().Add(2 * ttl); time.Now().Before(end); {
					time.Sleep(ttl / 3)
					if tc.refresh == 0 {
						if err := l.Refresh(ctx); err != nil {
							t.Fatalf("Refresh: %v", err)
						}
					}
					if _, err := other.TryAcquire(ctx); !errors.Is(err, dimutex.ErrAlreadyAcquired) {
						t.Fatalf("another process could acquire a refreshed lease: %v", err)
					}
				}
				if l.Err() != nil {
					t.Fatalf("refreshed lease ended: %v", l.Err())
				}
				obj := e.object("refresh")
				if obj.Generation == firstGen {
					t.Error("refresh did not write a new generation")
				}
				if obj.Metadata["dimutex-token"] != fmt.Sprint(firstGen) || l.Token() != firstGen {
					t.Errorf("token changed across refreshes: lease %d, object %q, want %d",
						l.Token(), obj.Metadata["dimutex-token"], firstGen)
				}
				if !l.Deadline().After(firstDeadline) {
					t.Error("refresh did not move the deadline")
				}
				if err := l.Release(ctx); err != nil {
					t.Fatalf("Release after refreshes: %v", err)
				}
			})
		}
	})
}

// Sixteen processes' worth of Mutexes race for one lock; a counter proves
// that one holds it at a time, and the tokens increase from holder to holder.
func TestConcurrentAcquire(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		const workers, rounds = 16, 20
		var (
			inside atomic.Int32
			mu     sync.Mutex
			tokens []int64
			wg     sync.WaitGroup
		)
		for w := range workers {
			m := e.mutex("contended", nil, dimutex.WithOwner(fmt.Sprint("worker-", w)),
				dimutex.WithBackoff(2*time.Millisecond, 40*time.Millisecond))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					l, err := m.Acquire(ctxT(t))
					if err != nil {
						t.Error(err)
						return
					}
					if n := inside.Add(1); n != 1 {
						t.Errorf("%d holders at once", n)
					}
					mu.Lock()
					tokens = append(tokens, l.Token())
					mu.Unlock()
					time.Sleep(time.Millisecond)
					inside.Add(-1)
					if err := l.Release(context.Background()); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if len(tokens) != workers*rounds {
			t.Fatalf("%d acquisitions, want %d", len(tokens), workers*rounds)
		}
		if !slices.IsSorted(tokens) || len(slices.Compact(slices.Clone(tokens))) != len(tokens) {
			t.Errorf("tokens are not distinct and increasing in acquisition order: %v", tokens)
		}
	})
}

// Someone else overwrites or deletes the lock: the holder notices within a
// refresh interval, closes Done with ErrLost, and cancels Do's ctx.
func TestLossDetection(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		const interval = 200 * time.Millisecond
		const slack = 1500 * time.Millisecond
		interfere := map[string]func(e *env, name string, gen int64) error{
			"overwritten": func(e *env, name string, gen int64) error {
				_, err := e.raw.Insert(context.Background(), e.srv.Bucket, name, gen, gcsjson.Write{
					Metadata: map[string]string{"dimutex-lease": "intruder", "dimutex-owner": "intruder", "dimutex-ttl": "60000"},
				})
				return err
			},
			"deleted": func(e *env, name string, gen int64) error {
				return e.raw.Delete(context.Background(), e.srv.Bucket, name, gen)
			},
		}
		for what, meddle := range interfere {
			for _, viaDo := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/Do=%v", what, viaDo), func(t *testing.T) {
					t.Parallel()
					e := newEnv(t, b)
					m := e.mutex("lossy", nil, dimutex.WithTTL(5*time.Second), dimutex.WithRefreshInterval(interval))
					check := func(l *dimutex.Lease, ctx context.Context) {
						if err := meddle(e, "lossy", e.object("lossy").Generation); err != nil {
							t.Fatal(err)
						}
						start := time.Now()
						select {
						case <-l.Done():
						case <-time.After(interval + slack):
							t.Fatalf("Done not closed within %v of the lock being %s", interval+slack, what)
						}
						t.Logf("loss signalled %v after the lock was %s, %v before the lease's deadline",
							time.Since(start).Round(time.Millisecond), what, time.Until(l.Deadline()).Round(time.Millisecond))
						if !errors.Is(l.Err(), dimutex.ErrLost) {
							t.Errorf("Err = %v, want ErrLost", l.Err())
						}
						if ctx != nil {
							<-ctx.Done()
							if !errors.Is(context.Cause(ctx), dimutex.ErrLost) {
								t.Errorf("Do's ctx cause = %v, want ErrLost", context.Cause(ctx))
							}
						}
					}
					if !viaDo {
						l := acquire(t, m)
						check(l, nil)
						err := l.Release(context.Background())
						if !errors.Is(err, dimutex.ErrLost) || !strings.Contains(err.Error(), map[string]string{
							"overwritten": `taken by "intruder"`, "deleted": "deleted by someone else"}[what]) {
							t.Errorf("Release after loss = %v, want ErrLost saying why", err)
						}
						if l.Err() != dimutex.ErrLost {
							t.Errorf("Err() = %v, want exactly ErrLost", l.Err())
						}
						return
					}
					// Do's fn cannot see its Lease, so the test finds it by the
					// token the object carries and watches fn's ctx.
					err := m.Do(ctxT(t), func(ctx context.Context) error {
						if err := meddle(e, "lossy", e.object("lossy").Generation); err != nil {
							t.Fatal(err)
						}
						select {
						case <-ctx.Done():
						case <-time.After(interval + slack):
							t.Fatalf("Do's ctx not cancelled within %v of the lock being %s", interval+slack, what)
						}
						if !errors.Is(context.Cause(ctx), dimutex.ErrLost) {
							t.Errorf("Do's ctx cause = %v, want ErrLost", context.Cause(ctx))
						}
						return ctx.Err()
					})
					if !errors.Is(err, dimutex.ErrLost) || !errors.Is(err, context.Canceled) {
						t.Errorf("Do = %v, want fn's context.Canceled joined with ErrLost", err)
					}
				})
			}
		}
	})
}

// A holder that stops refreshing without releasing is taken over after its
// TTL, by the server's clock.
func TestAbandonedHolder(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		const ttl = time.Second
		abandoned := acquire(t, e.mutex("abandoned", nil, dimutex.WithTTL(ttl), dimutex.WithRefreshInterval(0)))
		start := time.Now()
		heir := acquire(t, e.mutex("abandoned", nil, dimutex.WithBackoff(20*time.Millisecond, 100*time.Millisecond)))
		defer heir.Release(context.Background())
		if took := time.Since(start); took < ttl || took > ttl+4*time.Second {
			t.Errorf("takeover after %v, want between TTL %v and TTL + 4s", took, ttl)
		}
		if heir.Token() <= abandoned.Token() {
			t.Errorf("heir's token %d not above the abandoned %d", heir.Token(), abandoned.Token())
		}
	})
}

// Names that need escaping round-trip through the path and the query.
func TestWeirdNames(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		ctx := ctxT(t)
		names := []string{
			"a/b/c", "with space", "plus+sign", "question?mark", "hash#tag",
			"percent%20literal", "ünïcødé/名前", "semi;colon=eq&amp", "a/../b",
			"trailing/", "./dot", "..a", "tab\there", "emoji 🔒", strings.Repeat("x", 1024),
		}
		for _, name := range names {
			m := e.mutex(name, nil)
			l, err := m.TryAcquire(ctx)
			if err != nil {
				t.Errorf("%q: TryAcquire: %v", name, err)
				continue
			}
			if obj := e.object(name); obj == nil || obj.Name != name {
				t.Errorf("%q: stored as %+v", name, obj)
			}
			if err := l.Refresh(ctx); err != nil {
				t.Errorf("%q: Refresh: %v", name, err)
			}
			if st, err := m.Inspect(ctx); err != nil || !st.Held {
				t.Errorf("%q: Inspect = %+v, %v", name, st, err)
			}
			if err := l.Release(ctx); err != nil {
				t.Errorf("%q: Release: %v", name, err)
			}
			if obj := e.object(name); obj != nil {
				t.Errorf("%q: still exists after Release", name)
			}
		}
	})
}

// fake-gcs-server ignores DELETE preconditions, so the wire is checked instead:
// every write carries ifGenerationMatch, and waiters only read while the
// lock is live.
func TestWireLevel(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		ctx := ctxT(t)
		const waiters = 3
		holderRec := &gcstest.Recorder{}
		holder := e.mutex("wire", holderRec, dimutex.WithTTL(3*time.Second), dimutex.WithRefreshInterval(300*time.Millisecond))
		l := acquire(t, holder)

		recs := make([]*gcstest.Recorder, waiters)
		leases := make(chan *dimutex.Lease, waiters)
		var wg sync.WaitGroup
		for i := range recs {
			recs[i] = &gcstest.Recorder{}
			m := e.mutex("wire", recs[i], dimutex.WithBackoff(10*time.Millisecond, 200*time.Millisecond))
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, err := m.Acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				leases <- w
			}()
		}
		time.Sleep(1500 * time.Millisecond) // several refreshes while they wait
		released := time.Now()
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		for range waiters {
			w := <-leases
			time.Sleep(50 * time.Millisecond)
			if err := w.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()

		all := holderRec.Requests()
		for i, rec := range recs {
			reqs := rec.Requests()
			all = append(all, reqs...)
			var writesWhileLive int
			for _, r := range reqs {
				if r.IsWrite() && r.Start.Before(released) {
					writesWhileLive++
				}
			}
			// One create to learn that the lock is held, then reads only.
			if writesWhileLive != 1 {
				t.Errorf("waiter %d sent %d writes while the lock was live, want 1 (its first attempt): %v", i, writesWhileLive, reqs)
			}
		}
		var refreshes int
		for _, r := range all {
			if r.Authorization {
				t.Errorf("Authorization header sent to the emulator: %v", r)
			}
			switch r.Method {
			case http.MethodPost:
				if !r.Query.Has("ifGenerationMatch") {
					t.Errorf("upload without ifGenerationMatch: %v", r)
				}
				if r.Query.Get("ifGenerationMatch") != "0" {
					refreshes++
				}
			case http.MethodDelete:
				if g := r.Query.Get("ifGenerationMatch"); g == "" || g == "0" {
					t.Errorf("delete without a generation precondition: %v", r)
				}
			case http.MethodGet:
			default:
				t.Errorf("unexpected request %v", r)
			}
		}
		if refreshes < 3 {
			t.Errorf("holder refreshed %d times in 1.5s at a 300ms interval", refreshes)
		}
	})
}

// The protocol's cost, request by request; a change that adds a request
// fails here.
func TestRequestCounts(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		ctx := ctxT(t)
		rec := &gcstest.Recorder{}
		m := e.mutex("counted", rec, dimutex.WithRefreshInterval(0))
		other := e.mutex("counted", rec)
		var l *dimutex.Lease
		steps := []struct {
			name string
			do   func() error
			want string
		}{
			{"uncontended acquire", func() (err error) { l, err = m.Acquire(ctx); return err }, "POST=1"},
			{"refresh", func() error { return l.Refresh(ctx) }, "POST=1"},
			{"TryAcquire on a held lock", func() error {
				_, err := other.TryAcquire(ctx)
				if !errors.Is(err, dimutex.ErrAlreadyAcquired) {
					return fmt.Errorf("got %v, want ErrAlreadyAcquired", err)
				}
				return nil
			}, "POST=1 GET=1"},
			{"inspect", func() error { _, err := m.Inspect(ctx); return err }, "GET=1"},
			{"release", func() error { return l.Release(ctx) }, "DELETE=1"},
			{"uncontended TryAcquire", func() (err error) { l, err = m.TryAcquire(ctx); return err }, "POST=1"},
		}
		for _, s := range steps {
			rec.Reset()
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if got := gcstest.Summary(rec.Requests()); got != s.want {
				t.Errorf("%s sent %s, want %s", s.name, got, s.want)
			}
		}
		l.Release(ctx)
	})
}

func TestDo(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		ctx := ctxT(t)
		m := e.mutex("do", nil)
		boom := errors.New("boom")
		tests := []struct {
			name string
			fn   func(context.Context) error
			want error
		}{
			{"success", func(context.Context) error { return nil }, nil},
			{"fn's error", func(context.Context) error { return boom }, boom},
		}
		for _, tc := range tests {
			var held bool
			err := m.Do(ctx, func(ctx context.Context) error {
				st, err := m.Inspect(ctx)
				held = err == nil && st.Held
				return tc.fn(ctx)
			})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("%s: Do = %v, want %v", tc.name, err, tc.want)
			}
			if !held {
				t.Errorf("%s: the lock was not held while fn ran", tc.name)
			}
			if e.object("do") != nil {
				t.Errorf("%s: Do left the lock behind", tc.name)
			}
		}
		// A cancelled ctx still releases.
		cctx, cancel := context.WithCancel(ctx)
		if err := m.Do(cctx, func(context.Context) error { cancel(); return nil }); err != nil {
			t.Errorf("Do whose ctx was cancelled during fn = %v", err)
		}
		if e.object("do") != nil {
			t.Error("Do with a cancelled ctx left the lock behind")
		}
	})
}

func TestAcquireGivesUpWhenCtxEnds(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		l := acquire(t, e.mutex("patience", nil))
		defer l.Release(context.Background())
		rec := &gcstest.Recorder{}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := e.mutex("patience", rec).Acquire(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire = %v, want DeadlineExceeded", err)
		}
		reqs := rec.Requests()
		if reqs[0].Method != http.MethodPost || len(reqs) < 2 {
			t.Fatalf("requests %v", reqs)
		}
		for _, r := range reqs[1:] {
			if r.Method != http.MethodGet {
				t.Errorf("a waiter wrote while the lock was live: %v", r)
			}
		}
	})
}

func TestInspect(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		ctx := ctxT(t)
		m := e.mutex("inspected", nil, dimutex.WithOwner("ops"), dimutex.WithTTL(10*time.Second), dimutex.WithRefreshInterval(0))
		if st, err := m.Inspect(ctx); err != nil || st.Held || st.Exists {
			t.Fatalf("free lock: %+v, %v", st, err)
		}
		l := acquire(t, m)
		if err := l.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := m.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		obj := e.object("inspected")
		switch {
		case !st.Held || !st.Exists:
			t.Errorf("held lock reported free: %+v", st)
		case st.Owner != "ops" || st.Token != l.Token() || st.TTL != 10*time.Second:
			t.Errorf("status %+v does not describe the lease (token %d)", st, l.Token())
		case st.Generation != obj.Generation || st.Generation == st.Token:
			t.Errorf("status generation %d, object's %d, token %d", st.Generation, obj.Generation, st.Token)
		case st.ExpiresIn <= 8*time.Second || st.ExpiresIn > 12*time.Second:
			// TTL + 1s margin, + up to 1s because Date is truncated to the second.
			t.Errorf("ExpiresIn = %v, want TTL + 1s to TTL + 2s", st.ExpiresIn)
		case st.ServerTime.IsZero() || st.Acquired.IsZero() || st.Updated.Before(st.Acquired):
			t.Errorf("times: %+v", st)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		// A missing bucket is not a free lock.
		nobucket, err := dimutex.NewGCS("no-such-bucket", "inspected", dimutex.WithEndpoint(e.srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nobucket.Inspect(ctx); !errors.Is(err, gcsjson.ErrNotFound) || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
			t.Errorf("Inspect in a missing bucket = %v, want a not-found error naming the bucket", err)
		}
	})
}

// Release waits for the lease's goroutine; nothing of dimutex stays running.
// Not parallel: parallel tests hold leases of their own.
func TestNoLeakedGoroutines(t *testing.T) {
	backend.EachSerial(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		ctx := ctxT(t)
		m := e.mutex("leaks", nil, dimutex.WithTTL(time.Second), dimutex.WithRefreshInterval(100*time.Millisecond))
		for range 5 {
			l := acquire(t, m)
			time.Sleep(150 * time.Millisecond)
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := m.Do(ctx, func(context.Context) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		// A lost lease stops too.
		l := acquire(t, m)
		if err := e.raw.Delete(ctx, e.srv.Bucket, "leaks", e.object("leaks").Generation); err != nil {
			t.Fatal(err)
		}
		<-l.Done()
		if err := l.Release(ctx); !errors.Is(err, dimutex.ErrLost) {
			t.Fatal(err)
		}
		if n := leaseGoroutines(); n != 0 {
			t.Errorf("%d lease goroutines still running after Release", n)
		}
	})
}

// leaseGoroutines counts the running lease goroutines.
func leaseGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "dimutex.(*Lease).run") {
			n++
		}
	}
	return n
}
