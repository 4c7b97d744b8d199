package dimutex_test

// Resilience: every request the library makes under Google's retry
// conformance cases, writes whose answers are lost, hung requests, GCS's
// rate limit, and releases that fail until the lease's deadline. Faults
// come from dimutextest, in virtual time.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/dimutextest"
	"github.com/dimutex/dimutex/gcsjson"
)

// Google's retry conformance cases, applied to every request the library
// makes: conditionally idempotent calls survive [503,503], [reset,reset]
// and [reset,503]; 400 and 401 are returned at once, after one attempt.
func TestRetryConformance(t *testing.T) {
	// An op prepares its state, then the faults are armed for the requests
	// that match, then do runs the call under test and cleans up.
	type op struct {
		name    string
		match   func(*dimutextest.Request) bool
		prepare func(w *world, m *dimutex.Mutex) *dimutex.Lease
		do      func(ctx context.Context, w *world, m *dimutex.Mutex, l *dimutex.Lease) error
	}
	tryAcquireAndRelease := func(ctx context.Context, _ *world, m *dimutex.Mutex, _ *dimutex.Lease) error {
		l, err := m.TryAcquire(ctx)
		if err == nil {
			l.Release(ctx)
		}
		return err
	}
	held := func(w *world, m *dimutex.Mutex) *dimutex.Lease { return acquire(w.t, m) }
	ops := []op{
		{
			name: "acquire: insert ifGenerationMatch=0", match: isCreate,
			prepare: func(*world, *dimutex.Mutex) *dimutex.Lease { return nil },
			do:      tryAcquireAndRelease,
		},
		{
			name: "takeover: insert ifGenerationMatch=expired", match: isCAS,
			prepare: func(w *world, _ *dimutex.Mutex) *dimutex.Lease {
				w.srv.PutObject(bucket, "conf", nil, map[string]string{"dimutex-lease": "stale", "dimutex-ttl": "1000"})
				time.Sleep(3 * time.Second) // 1 s TTL + 1 s margin, by whole seconds
				return nil
			},
			do: tryAcquireAndRelease,
		},
		{
			name: "refresh: insert ifGenerationMatch=current", match: isCAS, prepare: held,
			do: func(ctx context.Context, _ *world, _ *dimutex.Mutex, l *dimutex.Lease) error {
				defer l.Release(ctx)
				return l.Refresh(ctx)
			},
		},
		{
			name: "inspect: get", match: isGet, prepare: held,
			do: func(ctx context.Context, _ *world, m *dimutex.Mutex, l *dimutex.Lease) error {
				defer l.Release(ctx)
				st, err := m.Inspect(ctx)
				if err == nil && !st.Held {
					return errors.New("Inspect says free")
				}
				return err
			},
		},
		{
			name: "release: delete ifGenerationMatch=current", match: isDelete, prepare: held,
			do: func(ctx context.Context, _ *world, _ *dimutex.Mutex, l *dimutex.Lease) error {
				err := l.Release(ctx)
				if err != nil {
					l.Release(ctx) // clean up after a 4xx
				}
				return err
			},
		},
		{
			name: "force release: delete ifGenerationMatch=read", match: isDelete, prepare: held,
			do: func(ctx context.Context, _ *world, m *dimutex.Mutex, l *dimutex.Lease) error {
				defer l.Release(ctx) // lost by now, or cleaning up
				st, err := m.Inspect(ctx)
				if err != nil {
					return err
				}
				return m.ForceRelease(ctx, st.Generation)
			},
		},
		{
			name: "semaphore acquire: list", match: isList,
			prepare: func(*world, *dimutex.Mutex) *dimutex.Lease { return nil },
			do: func(ctx context.Context, w *world, _ *dimutex.Mutex, _ *dimutex.Lease) error {
				l, err := w.semaphore("conf-sem", 3).TryAcquire(ctx)
				if err == nil {
					l.Release(ctx)
				}
				return err
			},
		},
	}
	cases := []struct {
		name   string
		faults []dimutextest.Fault
		code   int // 0: the call succeeds; else it fails with this status after one attempt
	}{
		{"503,503", []dimutextest.Fault{status503, status503}, 0},
		{"reset,reset", []dimutextest.Fault{resetBefore, resetBefore}, 0},
		{"reset,503", []dimutextest.Fault{resetBefore, status503}, 0},
		{"400", []dimutextest.Fault{status400}, http.StatusBadRequest},
		{"401", []dimutextest.Fault{status401}, http.StatusUnauthorized},
	}
	for _, o := range ops {
		for _, c := range cases {
			t.Run(o.name+"/"+c.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					w := newWorld(t)
					m := w.mutex("conf", dimutex.WithRefreshInterval(0))
					l := o.prepare(w, m)
					w.f.next(o.match, c.faults...)
					err := o.do(context.Background(), w, m, l)
					if n := w.f.count(); n != len(c.faults) {
						t.Errorf("%d faults injected, want %d", n, len(c.faults))
					}
					if c.code == 0 {
						if err != nil {
							t.Errorf("did not survive %s: %v", c.name, err)
						}
						return
					}
					var ge *gcsjson.Error
					if !errors.As(err, &ge) || ge.Code != c.code || ge.Attempts != 1 {
						t.Errorf("got %v, want a %d after one attempt", err, c.code)
					}
				})
			})
		}
	}
}

// A write that was applied but whose answer was lost (the connection reset
// after the write, or the answer cut short) is recognised as ours by its
// lease id: an acquisition is adopted without waiting out its own TTL, a
// refresh is not mistaken for a loss, a release reports success.
func TestLostResponse(t *testing.T) {
	for _, fault := range []dimutextest.Fault{resetAfter, truncate} {
		t.Run(fault.Kind.String()+"/acquire", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				m := w.mutex("lost", dimutex.WithTTL(time.Minute))
				w.f.next(isCreate, fault)
				start := time.Now()
				l, err := m.Acquire(context.Background())
				if err != nil {
					t.Fatalf("Acquire after a lost answer: %v", err)
				}
				if took := time.Since(start); took > time.Second {
					t.Errorf("Acquire took %v: it waited for its own lock", took)
				}
				if obj, _ := w.object("lost"); obj.Generation != l.Token() {
					t.Errorf("token %d is not the object's generation %d", l.Token(), obj.Generation)
				}
				// The create (applied, answer lost), its retry (412), a read
				// that finds our lease id.
				if got := summary(w.requests("")); got != "insert=2 get=1" {
					t.Errorf("Acquire sent %s, want insert=2 get=1", got)
				}
				if n := w.f.count(); n != 1 {
					t.Errorf("%d faults injected, want 1", n)
				}
				release(t, l)
			})
		})
		t.Run(fault.Kind.String()+"/refresh", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				ctx := context.Background()
				l := acquire(t, w.mutex("lost", dimutex.WithRefreshInterval(0)))
				w.srv.ClearRequests()
				w.f.next(isCAS, fault)
				if err := l.Refresh(ctx); err != nil {
					t.Fatalf("Refresh after a lost answer: %v", err)
				}
				if l.Err() != nil {
					t.Fatalf("lease ended: %v", l.Err())
				}
				// The refresh (applied, answer lost), its retry (412), a read
				// that finds our lease at a new generation, a refresh of that.
				if got := summary(w.requests("")); got != "insert=3 get=1" {
					t.Errorf("Refresh sent %s, want insert=3 get=1", got)
				}
				if obj, _ := w.object("lost"); obj.Metadata["dimutex-token"] != fmt.Sprint(l.Token()) {
					t.Errorf("object not ours: %v", obj.Metadata)
				}
				if err := l.Refresh(ctx); err != nil {
					t.Fatalf("second Refresh: %v", err)
				}
				release(t, l)
			})
		})
		t.Run(fault.Kind.String()+"/release", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				l := acquire(t, w.mutex("lost"))
				w.srv.ClearRequests()
				w.f.next(isDelete, fault)
				if err := l.Release(context.Background()); err != nil {
					t.Fatalf("Release whose answer was lost = %v, want nil", err)
				}
				if l.Err() != dimutex.ErrAlreadyReleased {
					t.Errorf("Err = %v, want ErrAlreadyReleased", l.Err())
				}
				if _, ok := w.object("lost"); ok {
					t.Error("the lock object survived Release")
				}
				// The delete (applied, answer lost), its retry (404), a read.
				if got := summary(w.requests("")); got != "get=1 delete=2" {
					t.Errorf("Release sent %s, want get=1 delete=2", got)
				}
			})
		})
	}
}

// Background refreshes whose answers are lost or refused do not end the
// lease.
func TestBackgroundRefreshSurvivesFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		l := acquire(t, w.mutex("bg", dimutex.WithTTL(30*time.Second)))
		w.f.next(isCAS, resetAfter, truncate, status503, resetAfter, resetBefore)
		time.Sleep(65 * time.Second) // six refreshes
		if l.Err() != nil {
			t.Fatalf("lease ended: %v", l.Err())
		}
		if n := w.f.count(); n != 5 {
			t.Errorf("%d faults injected, want 5", n)
		}
		if obj, _ := w.object("bg"); obj.Updated.Before(w.srv.Now().Add(-10 * time.Second)) {
			t.Errorf("the last refresh landed at %v, more than a refresh interval ago", obj.Updated)
		}
		release(t, l)
	})
}

// A request that hangs is abandoned after WithAttemptTimeout and retried;
// the lease then dates itself from the hung attempt, which may have landed.
// A lease's requests never run past its deadline: when every refresh hangs,
// Refresh reports the loss exactly at the deadline.
func TestAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		const ttl, attempt = 10 * time.Second, 2 * time.Second
		m := w.mutex("slow", dimutex.WithTTL(ttl), dimutex.WithRefreshInterval(0), dimutex.WithAttemptTimeout(attempt))
		w.f.next(isCreate, hang)
		start := time.Now()
		l, err := m.Acquire(context.Background())
		if err != nil {
			t.Fatalf("Acquire after a hung attempt: %v", err)
		}
		if took := time.Since(start); took < attempt || took > attempt+dimutex.DefaultMinBackoff {
			t.Errorf("Acquire took %v, want the attempt timeout %v plus one backoff", took, attempt)
		}
		if got := l.Deadline(); !got.Equal(start.Add(ttl)) {
			t.Errorf("Deadline = start + %v, want start + TTL (%v): the hung attempt may have landed", got.Sub(start), ttl)
		}
		// Every refresh hangs: the lease is lost at its deadline, not later.
		w.f.always(isCAS, hang)
		deadline := l.Deadline()
		err = l.Refresh(context.Background())
		if !errors.Is(err, dimutex.ErrLost) || !strings.Contains(err.Error(), "deadline") {
			t.Fatalf("Refresh that hangs until the deadline = %v, want ErrLost at the deadline", err)
		}
		if late := time.Since(deadline); late != 0 {
			t.Errorf("loss reported %v after the deadline", late)
		}
		if l.Err() != dimutex.ErrLost {
			t.Errorf("Err = %v, want ErrLost", l.Err())
		}
	})
}

// With GCS's limit of one write per second per object, handoffs still
// complete: a 429 is retried, at least a second later.
func TestRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, dimutextest.WithWriteRateLimit())
		const clients, rounds = 3, 2
		var wg sync.WaitGroup
		for i := range clients {
			m := w.mutex("limited", w.as(fmt.Sprint("client-", i)))
			wg.Go(func() {
				for range rounds {
					l, err := m.Acquire(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					time.Sleep(20 * time.Millisecond)
					if err := l.Release(context.Background()); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		limited := 0
		for i := range clients {
			reqs := w.requests(fmt.Sprint("client-", i))
			for j, r := range reqs[:len(reqs)-1] {
				if r.Status != http.StatusTooManyRequests {
					continue
				}
				limited++
				if gap := reqs[j+1].At.Sub(r.At); gap < gcsjson.RateLimitBackoff {
					t.Errorf("client %d sent its next request %v after a 429", i, gap)
				}
			}
		}
		if limited == 0 {
			t.Error("no request was rate-limited, so this test proves nothing")
		}
		t.Logf("%d writes answered 429; %d handoffs completed", limited, clients*rounds)
	})
}

// A release that fails until the lease's deadline (GCS answers 503) after
// the work is done is not a loss: Do's error and Release's match
// ErrNotReleased, not ErrLost, and Err() is ErrNotReleased. The lock is left
// to expire, and is taken over after its TTL.
func TestReleaseFailsUntilTheDeadline(t *testing.T) {
	const ttl = 10 * time.Second
	t.Run("Do", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			start := time.Now()
			err := w.mutex("lock", dimutex.WithTTL(ttl)).Do(context.Background(), func(ctx context.Context) error {
				time.Sleep(1500 * time.Millisecond)
				w.f.always(anyRequest, status503)
				return nil
			})
			switch {
			case errors.Is(err, dimutex.ErrLost):
				t.Fatalf("Do = %v: reported a loss although fn finished under a valid lease", err)
			case !errors.Is(err, dimutex.ErrNotReleased):
				t.Fatalf("Do = %v, want ErrNotReleased", err)
			}
			if took := time.Since(start); took != ttl {
				t.Errorf("Do returned %v after acquiring, want at the lease's deadline, %v", took, ttl)
			}
		})
	})
	t.Run("Release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			l := acquire(t, w.mutex("lock", dimutex.WithTTL(ttl)))
			deadline := l.Deadline()
			w.f.always(anyRequest, status503)
			err := l.Release(ctx)
			if !errors.Is(err, dimutex.ErrNotReleased) || errors.Is(err, dimutex.ErrLost) {
				t.Fatalf("Release = %v, want ErrNotReleased", err)
			}
			if !time.Now().Equal(deadline) {
				t.Errorf("Release returned %v after the deadline", time.Since(deadline))
			}
			if l.Err() != dimutex.ErrNotReleased {
				t.Errorf("Err = %v, want ErrNotReleased", l.Err())
			}
			w.f.clear()
			if err := l.Release(ctx); !errors.Is(err, dimutex.ErrNotReleased) {
				t.Errorf("a second Release = %v, want ErrNotReleased again", err)
			}
			m := w.mutex("lock")
			if _, err := m.TryAcquire(ctx); !errors.Is(err, dimutex.ErrAlreadyAcquired) {
				t.Errorf("the lock left to expire was free at once: %v", err)
			}
			time.Sleep(2 * time.Second) // TTL + 1 s margin + 1 s of Date's resolution since the last write
			l2, err := m.TryAcquire(ctx)
			if err != nil {
				t.Fatalf("after TTL + 2 s: %v", err)
			}
			release(t, l2)
		})
	})
	t.Run("Release whose ctx ends first", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			l := acquire(t, w.mutex("lock", dimutex.WithTTL(ttl)))
			deadline := l.Deadline()
			w.f.always(anyRequest, status503)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := l.Release(ctx); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, dimutex.ErrNotReleased) {
				t.Fatalf("Release = %v, want the ctx's error", err)
			}
			// No longer refreshed, the lease ends at its deadline, as a
			// failed release, not a loss.
			if at := <-doneAt(l); !at.Equal(deadline) {
				t.Errorf("the lease ended %v after its deadline", at.Sub(deadline))
			}
			if l.Err() != dimutex.ErrNotReleased {
				t.Errorf("Err = %v, want ErrNotReleased", l.Err())
			}
		})
	})
}

// A release that GCS refuses for good (a 403: the credentials may create
// objects but not delete them) ends the lease at once as not released, with
// GCS's error: retrying until the deadline would fail the same way, and
// the work had ended under a valid lease.
func TestReleaseRefused(t *testing.T) {
	const ttl = time.Minute
	t.Run("Release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			l := acquire(t, w.mutex("lock", dimutex.WithTTL(ttl)))
			w.f.always(isDelete, status403)
			start := time.Now()
			err := l.Release(context.Background())
			var ge *gcsjson.Error
			if !errors.Is(err, dimutex.ErrNotReleased) || errors.Is(err, dimutex.ErrLost) || !errors.As(err, &ge) || ge.Code != http.StatusForbidden {
				t.Fatalf("Release = %v, want ErrNotReleased wrapping the 403", err)
			}
			if took := time.Since(start); took != 0 {
				t.Errorf("Release took %v, want no wait for the deadline", took)
			}
			select {
			case <-l.Done():
			default:
				t.Error("the lease has not ended")
			}
			if l.Err() != dimutex.ErrNotReleased {
				t.Errorf("Err = %v, want ErrNotReleased", l.Err())
			}
			// synctest.Test fails if the lease's goroutine is still there.
		})
	})
	t.Run("Do", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			err := w.mutex("lock", dimutex.WithTTL(ttl)).Do(context.Background(), func(ctx context.Context) error {
				w.f.always(isDelete, status403)
				return nil
			})
			if !errors.Is(err, dimutex.ErrNotReleased) || errors.Is(err, dimutex.ErrLost) {
				t.Fatalf("Do = %v, want ErrNotReleased", err)
			}
		})
	})
}

// Once Release has been called, the holder has said its work is done: a
// Refresh or Proclaim must not keep the lock alive, even if the release
// failed.
func TestNoRefreshAfterRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		l := acquire(t, w.mutex("lock", dimutex.WithTTL(10*time.Second)))
		w.f.always(isDelete, status503)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := l.Release(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Release = %v, want the ctx's error", err)
		}
		w.f.clear()
		inserts := func() (n int) {
			for _, r := range w.srv.Requests() {
				if r.Op == "insert" {
					n++
				}
			}
			return n
		}
		before := inserts()
		if err := l.Refresh(context.Background()); !errors.Is(err, dimutex.ErrAlreadyReleased) {
			t.Errorf("Refresh after Release = %v, want ErrAlreadyReleased", err)
		}
		if err := l.Proclaim(context.Background(), "v"); !errors.Is(err, dimutex.ErrAlreadyReleased) {
			t.Errorf("Proclaim after Release = %v, want ErrAlreadyReleased", err)
		}
		if n := inserts() - before; n != 0 {
			t.Errorf("%d writes after Release was called", n)
		}
		if err := l.Release(context.Background()); err != nil {
			t.Errorf("Release again = %v", err)
		}
	})
}

// Refresh and Release heed their ctx while another write of the lease is
// under way (here, writes that hang). Release abandons a background
// refresh, but waits for a caller's; a caller's Refresh still waiting to
// write when Release is called does not write.
func TestLeaseCallsHeedCtxWhileAnotherWriteRuns(t *testing.T) {
	quick := func(t *testing.T, name string, call func(context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := call(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 200*time.Millisecond {
			t.Errorf("%s = %v after %v, want DeadlineExceeded after 200ms", name, err, time.Since(start))
		}
	}
	t.Run("a background refresh hangs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			l := acquire(t, w.mutex("busy", dimutex.WithTTL(30*time.Second), dimutex.WithRefreshInterval(time.Second),
				dimutex.WithAttemptTimeout(time.Minute)))
			w.f.always(isInsert, hang)
			time.Sleep(1500 * time.Millisecond) // the background refresh hangs
			quick(t, "Refresh while the background refresh hangs", l.Refresh)

			done := make(chan error)
			go func() { done <- l.Refresh(context.Background()) }()
			time.Sleep(300 * time.Millisecond)
			release(t, l) // abandons the background refresh
			if err := <-done; !errors.Is(err, dimutex.ErrAlreadyReleased) {
				t.Errorf("the Refresh waiting while Release was called = %v, want ErrAlreadyReleased", err)
			}
		})
	})
	t.Run("a caller's refresh hangs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			l := acquire(t, w.mutex("busy", dimutex.WithTTL(30*time.Second), dimutex.WithRefreshInterval(0),
				dimutex.WithAttemptTimeout(time.Minute)))
			w.f.always(isInsert, hang)
			hung, stop := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- l.Refresh(hung) }()
			time.Sleep(300 * time.Millisecond)
			quick(t, "Release while a caller's Refresh hangs", l.Release)
			w.f.clear()
			stop()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("the hung Refresh = %v, want context.Canceled", err)
			}
			release(t, l)
		})
	})
}
