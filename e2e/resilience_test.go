package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/e2e/internal/backend"
	"github.com/dimutex/dimutex/e2e/internal/faultproxy"
	"github.com/dimutex/dimutex/e2e/internal/gcstest"
	"github.com/dimutex/dimutex/gcsjson"
)

// faultyEnv puts a fault-injecting proxy between the library and the
// server. The proxy enforces DELETE preconditions as real GCS does on a
// backend that does not (fake-gcs-server). Its Mutexes go through the proxy,
// with quick retries.
type faultyEnv struct {
	*env
	proxy *faultproxy.Proxy
	front *httptest.Server
}

func newFaultyEnv(t *testing.T, b *backend.Backend, seed uint64) *faultyEnv {
	t.Helper()
	e := newEnv(t, b)
	p := faultproxy.New(e.srv.URL, proxyOptions(b, seed)...)
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	t.Cleanup(func() { p.Close() }) // runs first: releases hung requests
	e.endpoint = front.URL
	e.opts = []dimutex.Option{
		dimutex.WithBackoff(5*time.Millisecond, 50*time.Millisecond),
		dimutex.WithAttemptTimeout(300 * time.Millisecond),
	}
	return &faultyEnv{env: e, proxy: p, front: front}
}

// faults adds rules so that the next requests that match get these faults,
// in order.
func (f *faultyEnv) faults(match faultproxy.Rule, seq ...faultproxy.Fault) {
	for _, fault := range seq {
		r := match
		r.Fault, r.Next = fault, 1
		f.proxy.Add(r)
	}
}

// The library's requests, as rules that match them.
var (
	createReq = faultproxy.Rule{Methods: faultproxy.MethodPost, Query: "ifGenerationMatch=0&"}
	casReq    = faultproxy.Rule{Methods: faultproxy.MethodPost, Match: func(r *http.Request) bool { return r.URL.Query().Get("ifGenerationMatch") != "0" }}
	getReq    = faultproxy.Rule{Methods: faultproxy.MethodGet}
	deleteReq = faultproxy.Rule{Methods: faultproxy.MethodDelete}
)

// proxyOptions are the options of a fault proxy in front of b: the seed, and
// GCS's DELETE preconditions if b lacks them.
func proxyOptions(b *backend.Backend, seed uint64) []faultproxy.Option {
	opts := []faultproxy.Option{faultproxy.WithSeed(seed)}
	if !b.DeletePreconditions {
		opts = append(opts, faultproxy.WithDeletePreconditions())
	}
	return opts
}

// Google's retry conformance cases, applied to every request the library
// makes: conditionally idempotent calls survive [503,503], [reset,reset] and
// [reset,503]; 400 and 401 are returned at once, after one attempt.
func TestRetryConformance(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		type op struct {
			name  string
			match faultproxy.Rule
			// prepare runs before the faults are armed; do is the operation.
			prepare func(f *faultyEnv, m *dimutex.Mutex) any
			do      func(ctx context.Context, m *dimutex.Mutex, state any) error
		}
		ops := []op{
			{
				name: "acquire: insert ifGenerationMatch=0", match: createReq,
				prepare: func(*faultyEnv, *dimutex.Mutex) any { return nil },
				do:      tryAcquireAndRelease,
			},
			{
				name: "takeover: insert ifGenerationMatch=stale", match: casReq,
				prepare: func(f *faultyEnv, _ *dimutex.Mutex) any {
					if _, err := f.raw.Insert(context.Background(), f.srv.Bucket, "conf", 0, gcsjson.Write{
						Metadata: map[string]string{"dimutex-lease": "stale", "dimutex-ttl": "1"},
					}); err != nil {
						f.t.Fatal(err)
					}
					time.Sleep(2100 * time.Millisecond) // 1 ms TTL + 1 s margin, by whole seconds
					return nil
				},
				do: tryAcquireAndRelease,
			},
			{
				name: "refresh: insert ifGenerationMatch=current", match: casReq,
				prepare: func(f *faultyEnv, m *dimutex.Mutex) any { return acquire(f.t, m) },
				do: func(ctx context.Context, _ *dimutex.Mutex, l any) error {
					defer l.(*dimutex.Lease).Release(ctx)
					return l.(*dimutex.Lease).Refresh(ctx)
				},
			},
			{
				name: "inspect: get", match: getReq,
				prepare: func(f *faultyEnv, m *dimutex.Mutex) any { return acquire(f.t, m) },
				do: func(ctx context.Context, m *dimutex.Mutex, l any) error {
					defer l.(*dimutex.Lease).Release(ctx)
					st, err := m.Inspect(ctx)
					if err == nil && !st.Held {
						return errors.New("Inspect says free")
					}
					return err
				},
			},
			{
				name: "release: delete ifGenerationMatch=current", match: deleteReq,
				prepare: func(f *faultyEnv, m *dimutex.Mutex) any { return acquire(f.t, m) },
				do: func(ctx context.Context, _ *dimutex.Mutex, l any) error {
					err := l.(*dimutex.Lease).Release(ctx)
					if err != nil {
						l.(*dimutex.Lease).Release(ctx) // clean up after a 4xx
					}
					return err
				},
			},
			{
				name: "force release: delete ifGenerationMatch=read", match: deleteReq,
				prepare: func(f *faultyEnv, m *dimutex.Mutex) any { return acquire(f.t, m) },
				do: func(ctx context.Context, m *dimutex.Mutex, l any) error {
					defer l.(*dimutex.Lease).Release(ctx) // lost by now, or cleaning up
					return m.ForceRelease(ctx, f0(m.Inspect(ctx)).Generation)
				},
			},
		}
		cases := []struct {
			name   string
			faults []faultproxy.Fault
			code   int // 0: the call succeeds; else it fails with this status after one attempt
		}{
			{"503,503", []faultproxy.Fault{faultproxy.Status503, faultproxy.Status503}, 0},
			{"reset,reset", []faultproxy.Fault{faultproxy.ResetBefore, faultproxy.ResetBefore}, 0},
			{"reset,503", []faultproxy.Fault{faultproxy.ResetBefore, faultproxy.Status503}, 0},
			{"400", []faultproxy.Fault{faultproxy.Status400}, http.StatusBadRequest},
			{"401", []faultproxy.Fault{faultproxy.Status401}, http.StatusUnauthorized},
		}
		for _, o := range ops {
			for _, c := range cases {
				t.Run(o.name+"/"+c.name, func(t *testing.T) {
					t.Parallel()
					f := newFaultyEnv(t, b, 1)
					m := f.mutex("conf", nil)
					state := o.prepare(f, m)
					f.proxy.ResetStats()
					f.faults(o.match, c.faults...)
					err := o.do(ctxT(t), m, state)
					injected := f.proxy.Stats().FaultsTotal()
					if injected < len(c.faults) && c.code == 0 {
						t.Fatalf("only %d of %d faults were injected", injected, len(c.faults))
					}
					if c.code == 0 {
						if err != nil {
							t.Fatalf("did not survive %s: %v", c.name, err)
						}
						return
					}
					var ge *gcsjson.Error
					if !errors.As(err, &ge) || ge.Code != c.code || ge.Attempts != 1 {
						t.Fatalf("got %v, want a %d after one attempt", err, c.code)
					}
				})
			}
		}
	})
}

func f0[T any](v T, _ error) T { return v }

func tryAcquireAndRelease(ctx context.Context, m *dimutex.Mutex, _ any) error {
	l, err := m.TryAcquire(ctx)
	if err == nil {
		l.Release(ctx)
	}
	return err
}

// A write that was applied but whose answer was lost (the connection reset,
// or the body cut short) is recognised as ours by its lease id.
func TestLostResponse(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		for _, fault := range []faultproxy.Fault{faultproxy.ResetAfter, faultproxy.Truncate} {
			t.Run(fault.String()+"/acquire", func(t *testing.T) {
				t.Parallel()
				f := newFaultyEnv(t, b, 2)
				ctx := ctxT(t)
				m := f.mutex("lost", nil, dimutex.WithTTL(time.Minute))
				f.faults(createReq, fault)
				start := time.Now()
				l, err := m.Acquire(ctx)
				if err != nil {
					t.Fatalf("Acquire after a lost answer: %v", err)
				}
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("Acquire took %v: it waited for its own lock", took)
				}
				if obj := f.object("lost"); obj.Generation != l.Token() {
					t.Errorf("token %d is not the object's generation %d", l.Token(), obj.Generation)
				}
				if got := f.proxy.Stats().FaultsTotal(); got != 1 {
					t.Fatalf("%d faults injected, want 1", got)
				}
				if err := l.Release(ctx); err != nil {
					t.Fatal(err)
				}
			})
			t.Run(fault.String()+"/refresh", func(t *testing.T) {
				t.Parallel()
				f := newFaultyEnv(t, b, 3)
				ctx := ctxT(t)
				m := f.mutex("lost", nil, dimutex.WithRefreshInterval(0))
				l := acquire(t, m)
				f.faults(casReq, fault)
				if err := l.Refresh(ctx); err != nil {
					t.Fatalf("Refresh after a lost answer: %v", err)
				}
				if l.Err() != nil {
					t.Fatalf("lease ended: %v", l.Err())
				}
				if obj := f.object("lost"); obj.Metadata["dimutex-token"] != fmt.Sprint(l.Token()) {
					t.Errorf("object not ours: %v", obj.Metadata)
				}
				if err := l.Refresh(ctx); err != nil {
					t.Fatalf("second Refresh: %v", err)
				}
				if err := l.Release(ctx); err != nil {
					t.Fatalf("Release: %v", err)
				}
			})
			t.Run(fault.String()+"/release", func(t *testing.T) {
				t.Parallel()
				f := newFaultyEnv(t, b, 4)
				ctx := ctxT(t)
				l := acquire(t, f.mutex("lost", nil))
				f.faults(deleteReq, fault)
				if err := l.Release(ctx); err != nil {
					t.Fatalf("Release whose answer was lost = %v, want nil", err)
				}
				if !errors.Is(l.Err(), dimutex.ErrAlreadyReleased) {
					t.Errorf("Err = %v", l.Err())
				}
				if f.object("lost") != nil {
					t.Error("the lock object survived Release")
				}
				if got := f.proxy.Stats().FaultsTotal(); got != 1 {
					t.Fatalf("%d faults injected, want 1", got)
				}
			})
		}
	})
}

// Background refreshes whose answers are lost do not end the lease.
func TestBackgroundRefreshSurvivesFaults(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		f := newFaultyEnv(t, b, 5)
		l := acquire(t, f.mutex("bg", nil, dimutex.WithTTL(1500*time.Millisecond), dimutex.WithRefreshInterval(300*time.Millisecond)))
		f.faults(casReq, faultproxy.ResetAfter, faultproxy.Truncate, faultproxy.Status503, faultproxy.ResetAfter)
		time.Sleep(3 * time.Second)
		if l.Err() != nil {
			t.Fatalf("lease ended: %v", l.Err())
		}
		if got := f.proxy.Stats().FaultsTotal(); got != 4 {
			t.Errorf("%d faults injected, want 4", got)
		}
		if err := l.Release(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	})
}

// A request that hangs past the attempt timeout is retried, and a lease's
// requests never run past its deadline.
func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		f := newFaultyEnv(t, b, 6)
		ctx := ctxT(t)
		m := f.mutex("slow", nil, dimutex.WithTTL(2*time.Second), dimutex.WithRefreshInterval(0))
		f.faults(createReq, faultproxy.Hang)
		l, err := m.Acquire(ctx)
		if err != nil {
			t.Fatalf("Acquire after a hung attempt: %v", err)
		}
		// Every refresh hangs: the lease is lost at its deadline, not later.
		f.proxy.Add(faultproxy.Rule{Methods: faultproxy.MethodPost, Fault: faultproxy.Hang})
		deadline := l.Deadline()
		err = l.Refresh(ctx)
		if !errors.Is(err, dimutex.ErrLost) {
			t.Fatalf("Refresh that hangs until the deadline = %v, want ErrLost", err)
		}
		late := time.Since(deadline)
		if late > 200*time.Millisecond {
			t.Errorf("loss signalled %v after the deadline", late)
		}
		t.Logf("every refresh hung: loss signalled %v after the deadline", late.Round(time.Millisecond))
	})
}

// The proxy answers 429 to every second write on the lock, as GCS would to a
// client above one write per second. Handoffs still complete, and a client
// that got a 429 waits at least a second before its next request.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		f := newFaultyEnv(t, b, 7)
		f.proxy.Add(faultproxy.Rule{Methods: faultproxy.Writes, Fault: faultproxy.Status429, Every: 2})
		const clients, rounds = 3, 2
		recs := make([]*gcstest.Recorder, clients)
		done := make(chan error, clients)
		for i := range recs {
			recs[i] = &gcstest.Recorder{}
			m := f.mutex("limited", recs[i])
			go func() {
				for range rounds {
					l, err := m.Acquire(ctxT(t))
					if err != nil {
						done <- err
						return
					}
					time.Sleep(20 * time.Millisecond)
					if err := l.Release(ctxT(t)); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
		}
		for range clients {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		var limited int
		for i, rec := range recs {
			reqs := rec.Requests()
			for j, r := range reqs[:len(reqs)-1] {
				if r.Status != http.StatusTooManyRequests {
					continue
				}
				limited++
				if gap := reqs[j+1].Start.Sub(r.End); gap < time.Second {
					t.Errorf("client %d sent its next request %v after a 429", i, gap)
				}
			}
		}
		if limited == 0 {
			t.Error("no request was rate-limited")
		}
		t.Logf("%d writes answered 429; %d handoffs completed", f.proxy.Stats().Faults[faultproxy.Status429], clients*rounds)
	})
}

// An Acquire cut short by its context after a write of its landed unseen
// removes that lock, instead of leaving it held by nobody until the TTL.
func TestCancelledAcquireCleansUp(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		f := newFaultyEnv(t, b, 10)
		f.faults(createReq, faultproxy.ResetAfter)                                                               // lands; the answer is lost
		f.proxy.Add(faultproxy.Rule{Methods: createReq.Methods, Query: createReq.Query, Fault: faultproxy.Hang}) // its retry hangs
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		_, err := f.mutex("cancelled", nil, dimutex.WithAttemptTimeout(5*time.Second)).Acquire(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire = %v, want DeadlineExceeded", err)
		}
		if obj := f.object("cancelled"); obj != nil {
			t.Errorf("the cancelled Acquire left its lock behind: %v", obj.Metadata)
		}
	})
}

// Refresh and Release heed their ctx while another write of the lease is
// under way: here, writes that hang. Release abandons a background
// refresh, but waits for a caller's that is writing.
func TestLeaseCallsHeedCtxWhileAnotherWriteRuns(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		f := newFaultyEnv(t, b, 11)
		l := acquire(t, f.mutex("busy", nil, dimutex.WithTTL(4*time.Second), dimutex.WithRefreshInterval(100*time.Millisecond),
			dimutex.WithAttemptTimeout(10*time.Second)))
		// Refreshed by hand only, so that a caller's Refresh writes at once.
		byHand := acquire(t, f.mutex("by-hand", nil, dimutex.WithTTL(4*time.Second), dimutex.WithRefreshInterval(0),
			dimutex.WithAttemptTimeout(10*time.Second)))
		f.proxy.Add(faultproxy.Rule{Methods: faultproxy.MethodPost, Fault: faultproxy.Hang})
		quick := func(name string, call func(context.Context) error) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			if err := call(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
				t.Errorf("%s = %v after %v, want DeadlineExceeded within about 200ms", name, err, time.Since(start))
			}
		}
		time.Sleep(300 * time.Millisecond) // the background refresh now hangs
		quick("Refresh while the background refresh hangs", l.Refresh)

		hung, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); byHand.Refresh(hung) }()
		time.Sleep(300 * time.Millisecond)
		quick("Release while a caller's Refresh hangs", byHand.Release)
		f.proxy.Clear()
		stop()
		<-done
		if err := byHand.Release(ctxT(t)); err != nil {
			t.Fatalf("Release, once nothing hangs: %v", err)
		}
		if err := l.Release(ctxT(t)); err != nil {
			t.Fatalf("Release, abandoning the hung background refresh: %v", err)
		}
	})
}

// A panic in Do's function still releases the lock.
func TestDoReleasesOnPanic(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		m := e.mutex("panicky", nil)
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic did not propagate")
				}
			}()
			m.Do(ctxT(t), func(context.Context) error { panic("boom") })
		}()
		if e.object("panicky") != nil {
			t.Error("the lock survived a panic in Do's function")
		}
	})
}

// An Acquire whose ctx ends during a request reports the ctx's error.
func TestAcquireCtxErrorComesFirst(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		f := newFaultyEnv(t, b, 12)
		l := acquire(t, f.mutex("first", nil))
		defer l.Release(context.Background())
		f.proxy.Add(faultproxy.Rule{Methods: faultproxy.MethodPost, Fault: faultproxy.Latency, Delay: 300 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		_, err := f.mutex("first", nil, dimutex.WithAttemptTimeout(5*time.Second)).TryAcquire(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("TryAcquire = %v, want DeadlineExceeded", err)
		}
	})
}
