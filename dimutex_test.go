package dimutex_test

// The root package's unit tests run on dimutextest, an in-memory GCS, most of
// them inside a testing/synctest bubble: time is virtual, so a test that
// waits for a TTL runs in microseconds and its timings are exact. The tests
// that need an emulator or real processes live in the e2e module.
//
// This file holds the helpers that every test file shares, and the tests of
// the Mutex and its Lease.

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
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/dimutextest"
	"github.com/dimutex/dimutex/gcsjson"
)

// bucket is the bucket every world starts with.
const bucket = "dimutex-test"

// ref returns what errors and events call the object name: gs://bucket/name.
func ref(name string) string { return "gs://" + bucket + "/" + name }

// world is one test's GCS: an in-memory server with the bucket, and the
// locks made on it. Each lock gets its own client, as separate processes
// would have.
type world struct {
	t   testing.TB
	srv *dimutextest.Server
	f   *faults
}

func newWorld(t testing.TB, opts ...dimutextest.Option) *world {
	t.Helper()
	srv := dimutextest.NewServer(append([]dimutextest.Option{dimutextest.WithBucket(bucket)}, opts...)...)
	w := &world{t: t, srv: srv, f: &faults{}}
	srv.SetFaults(w.f.decide)
	return w
}

// base returns the options that point a lock at the server, followed by
// opts (so opts may override the client, as as does).
func (w *world) base(opts []dimutex.Option) []dimutex.Option {
	return append([]dimutex.Option{dimutex.WithEndpoint(w.srv.URL()), dimutex.WithHTTPClient(w.srv.Client())}, opts...)
}

func (w *world) mutex(name string, opts ...dimutex.Option) *dimutex.Mutex {
	w.t.Helper()
	m, err := dimutex.NewGCS(bucket, name, w.base(opts)...)
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

func (w *world) election(name string, opts ...dimutex.Option) *dimutex.Election {
	w.t.Helper()
	e, err := dimutex.NewElection(bucket, name, w.base(opts)...)
	if err != nil {
		w.t.Fatal(err)
	}
	return e
}

func (w *world) semaphore(name string, size int, opts ...dimutex.Option) *dimutex.Semaphore {
	w.t.Helper()
	s, err := dimutex.NewSemaphore(bucket, name, size, w.base(opts)...)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// clientHeader tags a client's requests, so that the request log tells
// whose each one is.
const clientHeader = "X-Test-Client"

// as is the option that makes a lock's requests carry the tag client.
func (w *world) as(client string) dimutex.Option {
	return dimutex.WithHTTPClient(&http.Client{Transport: tagger{client, w.srv.Transport()}})
}

type tagger struct {
	client string
	next   http.RoundTripper
}

func (t tagger) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context()) // a RoundTripper must not change the request
	r.Header.Set(clientHeader, t.client)
	return t.next.RoundTrip(r)
}

// requests returns the requests logged so far; only those of client, if
// client is not empty.
func (w *world) requests(client string) []dimutextest.Request {
	var out []dimutextest.Request
	for _, r := range w.srv.Requests() {
		if client == "" || r.Header.Get(clientHeader) == client {
			out = append(out, r)
		}
	}
	return out
}

// object returns the live object name, and whether there is one.
func (w *world) object(name string) (dimutextest.Object, bool) { return w.srv.Object(bucket, name) }

// summary counts requests by operation, in a fixed order: "insert=1 get=1".
func summary(reqs []dimutextest.Request) string {
	counts := map[string]int{}
	for _, r := range reqs {
		counts[r.Op]++
	}
	var parts []string
	for _, op := range []string{"insert", "get", "delete", "list", "bucket.get", "bucket.insert", ""} {
		if n := counts[op]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", op, n))
		}
	}
	return strings.Join(parts, " ")
}

// faults is a world's fault plan: rules tried in order, each giving the
// requests it matches a scripted sequence of faults, or one fault forever.
type faults struct {
	mu       sync.Mutex
	rules    []*faultRule
	injected int
}

type faultRule struct {
	match  func(*dimutextest.Request) bool
	seq    []dimutextest.Fault // the next matching requests get these, in order
	always *dimutextest.Fault  // or every matching request gets this
}

// next gives the next requests that match the faults of seq, one each, in
// order.
func (f *faults) next(match func(*dimutextest.Request) bool, seq ...dimutextest.Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &faultRule{match: match, seq: seq})
}

// always gives every request that matches the fault.
func (f *faults) always(match func(*dimutextest.Request) bool, fault dimutextest.Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &faultRule{match: match, always: &fault})
}

// clear removes every rule.
func (f *faults) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// count returns how many faults were injected, and starts counting again.
func (f *faults) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.injected
	f.injected = 0
	return n
}

func (f *faults) decide(r *dimutextest.Request) dimutextest.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, rule := range f.rules {
		if !rule.match(r) {
			continue
		}
		switch {
		case rule.always != nil:
			f.injected++
			return *rule.always
		case len(rule.seq) > 0:
			fault := rule.seq[0]
			rule.seq = rule.seq[1:]
			f.injected++
			return fault
		}
	}
	return dimutextest.Fault{}
}

// Request matchers for fault rules.
func isCreate(r *dimutextest.Request) bool {
	return r.Op == "insert" && r.Query.Get("ifGenerationMatch") == "0"
}
func isCAS(r *dimutextest.Request) bool {
	return r.Op == "insert" && r.Query.Get("ifGenerationMatch") != "0"
}
func isInsert(r *dimutextest.Request) bool { return r.Op == "insert" }
func isGet(r *dimutextest.Request) bool    { return r.Op == "get" }
func isDelete(r *dimutextest.Request) bool { return r.Op == "delete" }
func isList(r *dimutextest.Request) bool   { return r.Op == "list" }
func anyRequest(*dimutextest.Request) bool { return true }

// Faults by name.
var (
	status503   = dimutextest.Fault{Kind: dimutextest.FailBefore, Status: http.StatusServiceUnavailable}
	status400   = dimutextest.Fault{Kind: dimutextest.FailBefore, Status: http.StatusBadRequest}
	status401   = dimutextest.Fault{Kind: dimutextest.FailBefore, Status: http.StatusUnauthorized}
	status403   = dimutextest.Fault{Kind: dimutextest.FailBefore, Status: http.StatusForbidden}
	resetBefore = dimutextest.Fault{Kind: dimutextest.ResetBefore}
	resetAfter  = dimutextest.Fault{Kind: dimutextest.ResetAfter}
	truncate    = dimutextest.Fault{Kind: dimutextest.TruncateAfter}
	hang        = dimutextest.Fault{Kind: dimutextest.Hang}
)

// acquire takes m, waiting as long as it takes.
func acquire(t testing.TB, m *dimutex.Mutex) *dimutex.Lease {
	t.Helper()
	l, err := m.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire %v: %v", m, err)
	}
	return l
}

// release releases l, which must succeed.
func release(t testing.TB, l *dimutex.Lease) {
	t.Helper()
	if err := l.Release(context.Background()); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// doneAt returns a channel that receives the time at which l's Done closes.
func doneAt(l *dimutex.Lease) <-chan time.Time {
	c := make(chan time.Time, 1)
	go func() {
		<-l.Done()
		c <- time.Now()
	}()
	return c
}

// A lock is one object: TryAcquire creates it, with the lease's metadata,
// and its generation is the token; Release deletes it and ends the lease.
func TestLockAndUnlock(t *testing.T) {
	for _, name := range []string{"lock", "sub/path/to/lock", "trailing/"} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				ctx := context.Background()
				m := w.mutex(name, dimutex.WithOwner("tester"), dimutex.WithTTL(7*time.Second))
				if got := m.String(); got != ref(name) {
					t.Errorf("String = %q, want %q", got, ref(name))
				}

				l, err := m.TryAcquire(ctx)
				if err != nil {
					t.Fatalf("TryAcquire: %v", err)
				}
				if l.Err() != nil || l.Token() <= 0 {
					t.Fatalf("fresh lease: Err=%v Token=%d", l.Err(), l.Token())
				}
				if got, want := l.Deadline(), time.Now().Add(7*time.Second); !got.Equal(want) {
					t.Errorf("Deadline = %v, want now + TTL = %v", got, want)
				}
				obj, ok := w.object(name)
				if !ok {
					t.Fatalf("no lock object %q", name)
				}
				if obj.Generation != l.Token() {
					t.Errorf("token %d is not the acquiring generation %d", l.Token(), obj.Generation)
				}
				for k, v := range map[string]string{"dimutex-owner": "tester", "dimutex-ttl": "7000"} {
					if obj.Metadata[k] != v {
						t.Errorf("metadata %s = %q, want %q", k, obj.Metadata[k], v)
					}
				}
				if id := obj.Metadata["dimutex-lease"]; len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
					t.Errorf("dimutex-lease %q is not 128 bits of hex", id)
				}
				if _, ok := obj.Metadata["dimutex-token"]; ok {
					t.Errorf("the acquiring write stores a token: %v", obj.Metadata)
				}
				if obj.CacheControl != "no-store" || !strings.HasPrefix(obj.ContentType, "text/plain") {
					t.Errorf("Cache-Control %q, Content-Type %q; want no-store, text/plain", obj.CacheControl, obj.ContentType)
				}
				if want := "dimutex lock held by tester\n"; string(obj.Data) != want {
					t.Errorf("body %q, want %q", obj.Data, want)
				}

				if err := l.Release(ctx); err != nil {
					t.Fatalf("Release: %v", err)
				}
				select {
				case <-l.Done():
				default:
					t.Fatal("Done not closed after Release")
				}
				if l.Err() != dimutex.ErrAlreadyReleased {
					t.Errorf("Err after Release = %v, want ErrAlreadyReleased", l.Err())
				}
				if _, ok := w.object(name); ok {
					t.Error("lock object still exists after Release")
				}
			})
		})
	}
}

// A held lock cannot be taken again, by the same Mutex or another; the
// error names the lock, its holder and its token.
func TestCannotLockTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		m1 := w.mutex("twice", dimutex.WithOwner("first"))
		m2 := w.mutex("twice", dimutex.WithOwner("second"))
		l := acquire(t, m1)
		defer release(t, l)
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
			want := fmt.Sprintf(`dimutex: %s is held by "first" (token %d) for up to `, ref("twice"), l.Token())
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("%s: error %q does not start %q", tc.name, err, want)
			}
		}
	})
}

// A released lease stays released: Release and Refresh say so, and send
// nothing.
func TestCannotReleaseTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		l := acquire(t, w.mutex("unlock-twice"))
		release(t, l)
		w.srv.ClearRequests()
		for range 2 {
			if err := l.Release(ctx); !errors.Is(err, dimutex.ErrAlreadyReleased) {
				t.Fatalf("second Release = %v, want ErrAlreadyReleased", err)
			}
			if err := l.Refresh(ctx); !errors.Is(err, dimutex.ErrAlreadyReleased) {
				t.Fatalf("Refresh after Release = %v, want ErrAlreadyReleased", err)
			}
			if err := l.Proclaim(ctx, "x"); !errors.Is(err, dimutex.ErrAlreadyReleased) {
				t.Fatalf("Proclaim after Release = %v, want ErrAlreadyReleased", err)
			}
		}
		if reqs := w.requests(""); len(reqs) != 0 {
			t.Errorf("a released lease sent %s", summary(reqs))
		}
	})
}

// A holder that stops refreshing loses its lease at its deadline, TTL after
// its last write, and a waiter takes the lock over between TTL + 1 s and
// TTL + 2 s after that write, by the server's clock (whose Date header
// counts whole seconds), with one compare-and-swap on the expired
// generation. The waiter wrote nothing else while the lease was live.
func TestExpiredTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		const ttl = 10 * time.Second
		holder := w.mutex("expiry", w.as("holder"), dimutex.WithTTL(ttl), dimutex.WithRefreshInterval(0))
		waiter := w.mutex("expiry", w.as("waiter"), dimutex.WithTTL(ttl))

		time.Sleep(500 * time.Millisecond) // mid-second, where Date's truncation shows
		old := acquire(t, holder)
		wrote := time.Now()
		oldGen := old.Token()
		lost := doneAt(old)
		if _, err := waiter.TryAcquire(ctx); !errors.Is(err, dimutex.ErrAlreadyAcquired) {
			t.Fatalf("TryAcquire on a live lease = %v, want ErrAlreadyAcquired", err)
		}
		next := acquire(t, waiter)
		defer release(t, next)
		took := time.Since(wrote)
		if took <= ttl+dimutex.Margin || took > ttl+dimutex.Margin+time.Second {
			t.Errorf("taken over %v after the holder's last write, want in (TTL+1s, TTL+2s] = (%v, %v]",
				took, ttl+dimutex.Margin, ttl+dimutex.Margin+time.Second)
		}
		t.Logf("taken over %v after the holder's last write (TTL %v)", took, ttl)

		// The holder stopped trusting its lease at its deadline, before the
		// takeover.
		if at := <-lost; at.Sub(wrote) != ttl {
			t.Errorf("the holder's lease ended %v after its last write, want exactly the TTL %v", at.Sub(wrote), ttl)
		}
		if old.Err() != dimutex.ErrLost {
			t.Errorf("expired holder's Err = %v, want ErrLost", old.Err())
		}
		if next.Token() <= old.Token() {
			t.Errorf("new token %d is not greater than the expired one %d", next.Token(), old.Token())
		}

		// The waiter: one create (412) while the lease was live, reads, then
		// one takeover guarded by the expired generation.
		var writes []dimutextest.Request
		for _, r := range w.requests("waiter") {
			if r.Method != http.MethodGet {
				writes = append(writes, r)
			}
		}
		if len(writes) != 3 || !isCreate(&writes[0]) || !isCreate(&writes[1]) ||
			writes[2].Query.Get("ifGenerationMatch") != fmt.Sprint(oldGen) || writes[2].Status != http.StatusOK {
			t.Errorf("the waiter's writes: %v; want TryAcquire's create, Acquire's create, then a takeover at generation %d", describe(writes), oldGen)
		}

		// The lost lease sends nothing more.
		n := len(w.requests("holder"))
		if err := old.Release(ctx); !errors.Is(err, dimutex.ErrLost) {
			t.Errorf("Release of an expired lease = %v, want ErrLost", err)
		}
		if err := old.Refresh(ctx); !errors.Is(err, dimutex.ErrLost) {
			t.Errorf("Refresh of an expired lease = %v, want ErrLost", err)
		}
		if reqs := w.requests("holder"); len(reqs) != n {
			t.Errorf("the lost lease sent %s", summary(reqs[n:]))
		}
		if obj, _ := w.object("expiry"); obj.Generation != next.Token() {
			t.Errorf("the new holder's object was disturbed: generation %d, want %d", obj.Generation, next.Token())
		}
	})
}

// norm puts a Status's times in UTC, so that Statuses compare with ==
// (the Date header parses into a zone named GMT).
func norm(st dimutex.Status) dimutex.Status {
	st.Acquired, st.Updated, st.ServerTime = st.Acquired.UTC(), st.Updated.UTC(), st.ServerTime.UTC()
	return st
}

// describe lists requests for a failure message.
func describe(reqs []dimutextest.Request) string {
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "\n\t%d %s %s %s?%s -> %d", r.Seq, r.At.Format("15:04:05.000"), r.Method, r.Op, r.Query.Encode(), r.Status)
	}
	return b.String()
}

// A lease is extended in the background every TTL/3, or by Refresh, with
// a compare-and-swap on its current generation that keeps its token; each
// refresh moves the deadline to TTL after the write, and nobody else can
// take the lock meanwhile.
func TestRefresh(t *testing.T) {
	const ttl = 30 * time.Second
	tests := []struct {
		name    string
		refresh time.Duration // 0: the test calls Refresh itself, every TTL/2
		every   time.Duration
	}{
		{"background refresh every TTL/3", -1, ttl / 3},
		{"explicit Refresh", 0, ttl / 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				ctx := context.Background()
				opts := []dimutex.Option{w.as("holder"), dimutex.WithTTL(ttl)}
				if tc.refresh >= 0 {
					opts = append(opts, dimutex.WithRefreshInterval(tc.refresh))
				}
				l := acquire(t, w.mutex("refresh", opts...))
				other := w.mutex("refresh", w.as("other"))
				first := l.Token()
				// Hold for over twice the TTL.
				for range 5 {
					time.Sleep(tc.every)
					if tc.refresh == 0 {
						if err := l.Refresh(ctx); err != nil {
							t.Fatalf("Refresh: %v", err)
						}
					}
					synctest.Wait()
					if got, want := l.Deadline(), time.Now().Add(ttl); !got.Equal(want) {
						t.Errorf("after a refresh, Deadline = %v, want now + TTL = %v", got, want)
					}
					if _, err := other.TryAcquire(ctx); !errors.Is(err, dimutex.ErrAlreadyAcquired) {
						t.Fatalf("another process could acquire a refreshed lease: %v", err)
					}
				}
				if l.Err() != nil || l.Token() != first {
					t.Fatalf("after refreshes: Err %v, token %d (was %d)", l.Err(), l.Token(), first)
				}
				// The holder's writes: the create, then one CAS every interval
				// on the generation of the one before, each keeping the token.
				ins := w.requests("holder")
				if len(ins) != 6 {
					t.Fatalf("the holder sent %s, want insert=6:%s", summary(ins), describe(ins))
				}
				for i, r := range ins[1:] {
					prev := ins[i]
					switch {
					case !isCAS(&r) || r.Query.Get("ifGenerationMatch") != fmt.Sprint(prev.Generation) || r.Status != http.StatusOK:
						t.Errorf("refresh %d: %s ifGenerationMatch=%s -> %d, want a CAS on %d", i+1, r.Op, r.Query.Get("ifGenerationMatch"), r.Status, prev.Generation)
					case r.At.Sub(prev.At) != tc.every:
						t.Errorf("refresh %d came %v after the write before, want %v", i+1, r.At.Sub(prev.At), tc.every)
					case r.Metadata["dimutex-token"] != fmt.Sprint(first) || r.Metadata["dimutex-lease"] != ins[0].Metadata["dimutex-lease"]:
						t.Errorf("refresh %d changed the lease or the token: %v", i+1, r.Metadata)
					}
				}
				release(t, l)
			})
		})
	}
}

// Sixteen processes' worth of Mutexes race for one lock: one holds it at a
// time, and the tokens increase from holder to holder.
func TestConcurrentAcquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		const workers, rounds = 16, 5
		var (
			inside atomic.Int32
			mu     sync.Mutex
			tokens []int64
			wg     sync.WaitGroup
		)
		for i := range workers {
			m := w.mutex("contended", dimutex.WithOwner(fmt.Sprint("worker-", i)))
			wg.Go(func() {
				for range rounds {
					l, err := m.Acquire(context.Background())
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
					time.Sleep(100 * time.Millisecond)
					inside.Add(-1)
					if err := l.Release(context.Background()); err != nil {
						t.Error(err)
						return
					}
				}
			})
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

// Someone else deletes the lock, replaces it with another lease, or
// replaces it with an object that is not a lock: the holder finds out at
// its next refresh, closes Done, ends with exactly ErrLost, says why, and
// cancels Do's ctx with cause ErrLost.
func TestLossDetection(t *testing.T) {
	const ttl, interval = 30 * time.Second, 10 * time.Second
	intruder := map[string]string{"dimutex-lease": "0123456789abcdef0123456789abcdef", "dimutex-owner": "intruder", "dimutex-ttl": "60000"}
	tests := []struct {
		name   string
		meddle func(w *world, name string)
		why    string
	}{
		{"deleted", func(w *world, name string) { w.srv.DeleteObject(bucket, name) }, "deleted by someone else"},
		{"taken by another lease", func(w *world, name string) { w.srv.PutObject(bucket, name, nil, intruder) }, `taken by "intruder"`},
		{"overwritten by an object that is not a lock", func(w *world, name string) { w.srv.PutObject(bucket, name, []byte("data"), nil) }, "not a lock"},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/Lease", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				l := acquire(t, w.mutex("lossy", w.as("holder"), dimutex.WithTTL(ttl), dimutex.WithRefreshInterval(interval)))
				acquired := time.Now()
				lost := doneAt(l)
				time.Sleep(time.Second)
				tc.meddle(w, "lossy")
				if at := <-lost; at.Sub(acquired) != interval {
					t.Errorf("loss signalled %v after acquiring, want at the next refresh, %v", at.Sub(acquired), interval)
				}
				if l.Err() != dimutex.ErrLost {
					t.Errorf("Err() = %v, want exactly ErrLost", l.Err())
				}
				n := len(w.requests("holder"))
				err := l.Release(context.Background())
				if !errors.Is(err, dimutex.ErrLost) || !strings.Contains(err.Error(), tc.why) {
					t.Errorf("Release after the loss = %v, want ErrLost saying %q", err, tc.why)
				}
				if reqs := w.requests("holder"); len(reqs) != n {
					t.Errorf("Release of a lost lease sent %s", summary(reqs[n:]))
				}
			})
		})
		t.Run(tc.name+"/Do", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				m := w.mutex("lossy", dimutex.WithTTL(ttl), dimutex.WithRefreshInterval(interval))
				err := m.Do(context.Background(), func(ctx context.Context) error {
					start := time.Now()
					tc.meddle(w, "lossy")
					<-ctx.Done()
					if took := time.Since(start); took != interval {
						t.Errorf("Do's ctx cancelled %v after the meddling, want %v", took, interval)
					}
					if cause := context.Cause(ctx); !errors.Is(cause, dimutex.ErrLost) || !strings.Contains(cause.Error(), tc.why) {
						t.Errorf("Do's ctx cause = %v, want ErrLost saying %q", cause, tc.why)
					}
					return ctx.Err()
				})
				if !errors.Is(err, dimutex.ErrLost) || !errors.Is(err, context.Canceled) {
					t.Errorf("Do = %v, want fn's context.Canceled joined with ErrLost", err)
				}
			})
		})
	}
}

// Names that need escaping round-trip through the path and the query.
func TestWeirdNames(t *testing.T) {
	names := []string{
		"a/b/c", "with space", "plus+sign", "question?mark", "hash#tag",
		"percent%20literal", "100%", "ünïcødé/名前", "semi;colon=eq&amp", "a/../b",
		"trailing/", "./dot", "..a", "tab\there", "emoji 🔒", strings.Repeat("x", 1024),
	}
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		for _, name := range names {
			m := w.mutex(name)
			l, err := m.TryAcquire(ctx)
			if err != nil {
				t.Errorf("%q: TryAcquire: %v", name, err)
				continue
			}
			if obj, ok := w.object(name); !ok || obj.Generation != l.Token() {
				t.Errorf("%q: not stored under its name: %v", name, w.srv.Objects(bucket, ""))
			}
			if err := l.Refresh(ctx); err != nil {
				t.Errorf("%q: Refresh: %v", name, err)
			}
			if st, err := m.Inspect(ctx); err != nil || !st.Held || st.Name != name {
				t.Errorf("%q: Inspect = %+v, %v", name, st, err)
			}
			if err := l.Release(ctx); err != nil {
				t.Errorf("%q: Release: %v", name, err)
			}
			if _, ok := w.object(name); ok {
				t.Errorf("%q: still exists after Release", name)
			}
		}
		for _, r := range w.srv.Requests() {
			if r.Status/100 != 2 && r.Status != http.StatusNotFound {
				t.Errorf("%q: %s answered %d", r.Object, r.Op, r.Status)
			}
		}
	})
}

// On the wire: every upload carries ifGenerationMatch, and every write that
// lands names the generation it replaces (0 for a create); a DELETE names
// the lease's current generation. Waiters write once, to learn that the
// lock is held, then only read until it is free. No request carries
// credentials to a plain-http endpoint.
func TestWireLevel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		const waiters = 3
		l := acquire(t, w.mutex("wire", w.as("holder"), dimutex.WithTTL(30*time.Second)))
		leases := make(chan *dimutex.Lease, waiters)
		for i := range waiters {
			m := w.mutex("wire", w.as(fmt.Sprint("waiter-", i)))
			go func() {
				l, err := m.Acquire(context.Background())
				if err != nil {
					t.Error(err)
				}
				leases <- l
			}()
		}
		time.Sleep(25 * time.Second) // two background refreshes while they wait
		released := time.Now()
		release(t, l)
		for range waiters {
			l := <-leases
			time.Sleep(time.Second)
			release(t, l)
		}

		all := w.requests("")
		var cur int64 // the live generation, by the log
		var refreshes int
		for _, r := range all {
			if r.Header.Get("Authorization") != "" {
				t.Errorf("request %d carried an Authorization header", r.Seq)
			}
			g, hasG := r.Query["ifGenerationMatch"]
			switch r.Op {
			case "insert":
				if !hasG {
					t.Errorf("upload %d without ifGenerationMatch", r.Seq)
				}
				if r.Applied && g[0] != fmt.Sprint(cur) {
					t.Errorf("upload %d landed with ifGenerationMatch=%s, but the live generation was %d", r.Seq, g[0], cur)
				}
				if r.Applied && g[0] != "0" && r.Header.Get(clientHeader) == "holder" {
					refreshes++
				}
			case "delete":
				if !hasG || g[0] != fmt.Sprint(cur) || !r.Applied {
					t.Errorf("delete %d with ifGenerationMatch=%v, want the lease's generation %d", r.Seq, g, cur)
				}
			case "get":
			default:
				t.Errorf("unexpected request %d: %s %s", r.Seq, r.Method, r.Op)
			}
			if r.Applied {
				cur = r.Generation
				if r.Op == "delete" {
					cur = 0
				}
			}
		}
		if refreshes != 2 {
			t.Errorf("the holder refreshed %d times in 25 s at TTL/3 = 10 s, want 2", refreshes)
		}
		for i := range waiters {
			var writesWhileLive int
			for _, r := range w.requests(fmt.Sprint("waiter-", i)) {
				if r.Method != http.MethodGet && r.At.Before(released) {
					writesWhileLive++
				}
			}
			if writesWhileLive != 1 {
				t.Errorf("waiter %d sent %d writes while the lock was live, want 1 (its first create)", i, writesWhileLive)
			}
		}
	})
}

// The protocol's cost, request by request (the README's table); a change
// that adds a request fails here.
func TestRequestCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		m := w.mutex("counted", dimutex.WithRefreshInterval(0))
		other := w.mutex("counted")
		var l *dimutex.Lease
		var gen int64
		steps := []struct {
			name string
			do   func() error
			want string
		}{
			{"Acquire, lock free", func() (err error) { l, err = m.Acquire(ctx); return err }, "insert=1"},
			{"Refresh", func() error { return l.Refresh(ctx) }, "insert=1"},
			{"Proclaim", func() error { return l.Proclaim(ctx, "v") }, "insert=1"},
			{"TryAcquire, lock held", func() error {
				_, err := other.TryAcquire(ctx)
				if !errors.Is(err, dimutex.ErrAlreadyAcquired) {
					return fmt.Errorf("got %v, want ErrAlreadyAcquired", err)
				}
				return nil
			}, "insert=1 get=1"},
			{"Inspect, lock held", func() error { _, err := m.Inspect(ctx); return err }, "get=1"},
			{"Release", func() error { return l.Release(ctx) }, "delete=1"},
			{"Inspect, lock free", func() error { _, err := m.Inspect(ctx); return err }, "get=1 list=1"},
			{"TryAcquire, lock free", func() (err error) {
				if l, err = m.TryAcquire(ctx); err == nil {
					gen = l.Token()
				}
				return err
			}, "insert=1"},
			{"ForceRelease", func() error { return other.ForceRelease(ctx, gen) }, "get=1 delete=1"},
		}
		for _, s := range steps {
			w.srv.ClearRequests()
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if got := summary(w.requests("")); got != s.want {
				t.Errorf("%s sent %s, want %s", s.name, got, s.want)
			}
		}
		if err := l.Release(ctx); !errors.Is(err, dimutex.ErrLost) {
			t.Errorf("Release after ForceRelease = %v, want ErrLost", err)
		}
	})
}

// Do holds the lock while fn runs and releases it after, whatever fn
// returns, even if the ctx has ended or fn panics.
func TestDo(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		fn   func(ctx context.Context, cancel context.CancelFunc) error
		want error
	}{
		{"success", func(context.Context, context.CancelFunc) error { return nil }, nil},
		{"fn's error", func(context.Context, context.CancelFunc) error { return boom }, boom},
		{"ctx cancelled during fn", func(_ context.Context, cancel context.CancelFunc) error { cancel(); return nil }, nil},
		{"fn runs past a refresh", func(context.Context, context.CancelFunc) error { time.Sleep(time.Minute); return nil }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				m := w.mutex("do")
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var held bool
				err := m.Do(ctx, func(ctx context.Context) error {
					st, err := m.Inspect(ctx)
					held = err == nil && st.Held
					return tc.fn(ctx, cancel)
				})
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Errorf("Do = %v, want %v", err, tc.want)
				}
				if !held {
					t.Error("the lock was not held while fn ran")
				}
				if _, ok := w.object("do"); ok {
					t.Error("Do left the lock behind")
				}
			})
		})
	}
	t.Run("panic", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			func() {
				defer func() {
					if recover() != "boom" {
						t.Error("the panic did not propagate")
					}
				}()
				w.mutex("panicky").Do(context.Background(), func(context.Context) error { panic("boom") })
			}()
			if _, ok := w.object("panicky"); ok {
				t.Error("the lock survived a panic in Do's function")
			}
		})
	})
}

// An Acquire gives up when its ctx ends, whether it was sleeping between
// polls, waiting for a slow answer, or retrying 503s; its error matches the
// ctx's, says so first, and the waiter never wrote after its first create.
func TestAcquireGivesUpWhenCtxEnds(t *testing.T) {
	tests := []struct {
		name   string
		faults func(f *faults)
		prefix string // the error starts with this
	}{
		{"sleeping between polls", func(*faults) {}, "dimutex: acquire: context deadline exceeded"},
		{"during a slow answer", func(f *faults) { f.always(isGet, dimutextest.Fault{Latency: time.Hour}) },
			"dimutex: acquire: gcsjson: get " + ref("patience") + ": context deadline exceeded"},
		{"retrying 503s", func(f *faults) { f.always(isGet, status503) },
			"dimutex: acquire: gcsjson: get " + ref("patience") + ": context deadline exceeded (last attempt: 503 Service Unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				l := acquire(t, w.mutex("patience"))
				tc.faults(w.f)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				start := time.Now()
				_, err := w.mutex("patience", w.as("waiter"), dimutex.WithAttemptTimeout(time.Hour)).Acquire(ctx)
				if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), tc.prefix) {
					t.Errorf("Acquire = %v, want an error matching DeadlineExceeded that starts %q", err, tc.prefix)
				}
				if took := time.Since(start); took != 5*time.Second {
					t.Errorf("Acquire returned %v after it began, want when its ctx ended, 5s", took)
				}
				reqs := w.requests("waiter") // a request still held by its latency is not logged
				if len(reqs) < 1 || !isCreate(&reqs[0]) {
					t.Errorf("requests: %s", describe(reqs))
				}
				for _, r := range reqs[1:] {
					if r.Method != http.MethodGet {
						t.Errorf("a waiter wrote while the lock was live: %s", describe([]dimutextest.Request{r}))
					}
				}
				w.f.clear()
				release(t, l)
			})
		})
	}
}

// An Acquire cut short by its ctx after a create of its landed unseen (the
// answer was lost, and the retry hangs) deletes that lock, instead of
// leaving it held by nobody until its TTL.
func TestCancelledAcquireCleansUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.f.next(isCreate, resetAfter) // lands; the answer is lost
		w.f.always(isCreate, hang)     // the retry hangs
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := w.mutex("cancelled", dimutex.WithAttemptTimeout(time.Minute)).Acquire(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire = %v, want DeadlineExceeded", err)
		}
		if obj, ok := w.object("cancelled"); ok {
			t.Errorf("the cancelled Acquire left its lock behind: %v", obj.Metadata)
		}
		reqs := w.requests("")
		if got := summary(reqs); got != "insert=2 get=1 delete=1" {
			t.Errorf("requests %s, want the create, its hung retry, and the cleanup's get and delete:%s", got, describe(reqs))
		}
		if last := reqs[len(reqs)-1]; last.Op != "delete" || last.Query.Get("ifGenerationMatch") != fmt.Sprint(reqs[0].Generation) {
			t.Errorf("the cleanup did not delete exactly the generation it created: %s", describe(reqs))
		}
	})
}

// The Status that Inspect reads: free; held (owner, value, token,
// generation, times, TTL, and the time left by server time, exactly); an
// expired lease; and a missing bucket, which is an error, not a free lock.
func TestInspect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		const ttl = 10 * time.Second
		m := w.mutex("inspected", dimutex.WithOwner("ops"), dimutex.WithValue("v1"), dimutex.WithTTL(ttl), dimutex.WithRefreshInterval(0))
		if st, err := m.Inspect(ctx); err != nil || st != (dimutex.Status{Name: "inspected"}) {
			t.Fatalf("free lock: %+v, %v", st, err)
		}
		l := acquire(t, m)
		acquired := w.srv.Now()
		time.Sleep(2 * time.Second)
		if err := l.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		refreshed := w.srv.Now()
		time.Sleep(1500 * time.Millisecond)
		st, err := m.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		obj, _ := w.object("inspected")
		now := w.srv.Now()
		want := dimutex.Status{
			Name: "inspected", Exists: true, Held: true, Owner: "ops", Value: "v1", Token: l.Token(),
			Generation: obj.Generation, Acquired: acquired, Updated: refreshed, TTL: ttl,
			ServerTime: now.Truncate(time.Second),
			// Updated + TTL + margin - Date, where Date counts whole seconds.
			ExpiresIn: refreshed.Add(ttl + dimutex.Margin).Sub(now.Truncate(time.Second)),
		}
		if norm(st) != norm(want) {
			t.Errorf("Inspect =\n\t%+v\nwant\n\t%+v", st, want)
		}
		if st.Generation == st.Token {
			t.Error("after a refresh, the generation is still the token")
		}

		// Expired: the holder's lease ended at its deadline; the object stays.
		time.Sleep(ttl + 2*time.Second)
		<-l.Done()
		st, err = m.Inspect(ctx)
		if err != nil || !st.Exists || st.Held || st.ExpiresIn >= 0 || st.Owner != "ops" {
			t.Errorf("expired lock: %+v, %v; want Exists, not Held, ExpiresIn < 0", st, err)
		}
		if err := l.Release(ctx); !errors.Is(err, dimutex.ErrLost) {
			t.Errorf("Release after the deadline = %v, want ErrLost", err)
		}

		// A missing bucket is not a free lock.
		nobucket, err := dimutex.NewGCS("no-such-bucket", "inspected", w.base(nil)...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nobucket.Inspect(ctx); !errors.Is(err, gcsjson.ErrNotFound) || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
			t.Errorf("Inspect in a missing bucket = %v, want a not-found error naming the bucket", err)
		}
	})
}

// An object at the lock's name that is not a dimutex lock (no lease
// metadata) is never overwritten or deleted: Acquire and TryAcquire return
// ErrNotALock describing it, Inspect reports NotALock, ForceRelease refuses.
func TestNotALock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		put, err := w.srv.PutObject(bucket, "data/report.csv", []byte("a,b,c\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		m := w.mutex("data/report.csv", dimutex.WithTTL(time.Second))
		for name, try := range map[string]func(context.Context) (*dimutex.Lease, error){"Acquire": m.Acquire, "TryAcquire": m.TryAcquire} {
			w.srv.ClearRequests()
			_, err := try(ctx)
			var nl *dimutex.NotALockError
			switch {
			case !errors.Is(err, dimutex.ErrNotALock) || !errors.As(err, &nl):
				t.Errorf("%s on a data object = %v, want a *NotALockError", name, err)
			case *nl != dimutex.NotALockError{Lock: ref("data/report.csv"), Generation: put.Generation, Size: 6, ContentType: "application/octet-stream"}:
				t.Errorf("%s: %+v does not describe the object", name, *nl)
			case !strings.HasPrefix(err.Error(), "dimutex: "+ref("data/report.csv")+" is not a dimutex lock: it holds an object of 6 bytes (application/octet-stream"):
				t.Errorf("%s: error %q", name, err)
			}
			if got := summary(w.requests("")); got != "insert=1 get=1" {
				t.Errorf("%s sent %s, want the create (412) and one read", name, got)
			}
		}
		st, err := m.Inspect(ctx)
		want := dimutex.Status{Name: "data/report.csv", Exists: true, NotALock: true, Generation: put.Generation, Updated: put.Updated, ServerTime: w.srv.Now().Truncate(time.Second)}
		if err != nil || norm(st) != norm(want) {
			t.Errorf("Inspect = %+v, %v; want NotALock", st, err)
		}
		if err := m.ForceRelease(ctx, st.Generation); !errors.Is(err, dimutex.ErrNotALock) {
			t.Errorf("ForceRelease = %v, want ErrNotALock", err)
		}
		if obj, ok := w.object("data/report.csv"); !ok || obj.Generation != put.Generation || string(obj.Data) != "a,b,c\n" {
			t.Fatalf("the data object was changed: %+v", obj)
		}
		for _, r := range w.srv.Requests() {
			if r.Applied && r.Method != http.MethodGet {
				t.Errorf("request %d (%s) changed the object", r.Seq, r.Op)
			}
		}
	})
}

// ForceRelease deletes the lock only at the generation it was given, and
// reports a lock that changed (ErrChanged) or is gone (gcsjson.ErrNotFound).
// A delete that landed but whose answer was lost, after which someone else
// acquired before the retry, is a success, not ErrChanged.
func TestForceRelease(t *testing.T) {
	dead := map[string]string{"dimutex-lease": "0123456789abcdef0123456789abcdef", "dimutex-owner": "crashed", "dimutex-ttl": "60000"}
	t.Run("at the generation read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			m := w.mutex("stuck")
			put, _ := w.srv.PutObject(bucket, "stuck", nil, dead)
			st, err := m.Inspect(ctx)
			if err != nil || st.Owner != "crashed" || st.Generation != put.Generation {
				t.Fatalf("Inspect = %+v, %v", st, err)
			}
			if err := m.ForceRelease(ctx, st.Generation); err != nil {
				t.Fatalf("ForceRelease = %v", err)
			}
			if _, ok := w.object("stuck"); ok {
				t.Error("the lock survived ForceRelease")
			}
			if err := m.ForceRelease(ctx, st.Generation); !errors.Is(err, gcsjson.ErrNotFound) {
				t.Errorf("ForceRelease of a lock already gone = %v, want gcsjson.ErrNotFound", err)
			}
		})
	})
	t.Run("the lock changed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			m := w.mutex("busy", dimutex.WithRefreshInterval(0))
			l := acquire(t, m)
			st, _ := m.Inspect(ctx)
			if err := l.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			err := m.ForceRelease(ctx, st.Generation)
			if !errors.Is(err, dimutex.ErrChanged) || !strings.Contains(err.Error(), "nothing was deleted") {
				t.Errorf("ForceRelease of a stale generation = %v, want ErrChanged", err)
			}
			if l.Err() != nil {
				t.Errorf("the holder's lease ended: %v", l.Err())
			}
			release(t, l)
		})
	})
	t.Run("the answer was lost and someone acquired before the retry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(t)
			ctx := context.Background()
			put, _ := w.srv.PutObject(bucket, "stuck", nil, dead)
			waiter := make(chan *dimutex.Lease)
			go func() {
				l, err := w.mutex("stuck", dimutex.WithOwner("heir"), dimutex.WithBackoff(100*time.Millisecond, 200*time.Millisecond)).Acquire(ctx)
				if err != nil {
					t.Error(err)
				}
				waiter <- l
			}()
			time.Sleep(time.Second) // the heir polls
			w.f.next(isDelete,
				resetAfter, // lands; the answer is lost
				dimutextest.Fault{Latency: 3 * time.Second}, // the retry comes after the heir acquired
			)
			if err := w.mutex("stuck").ForceRelease(ctx, put.Generation); err != nil {
				t.Errorf("ForceRelease = %v, want nil: its delete landed", err)
			}
			if n := w.f.count(); n != 2 {
				t.Errorf("%d faults injected, want 2", n)
			}
			heir := <-waiter
			if obj, ok := w.object("stuck"); !ok || obj.Generation != heir.Token() {
				t.Errorf("the heir's lock was disturbed: %+v", obj)
			}
			release(t, heir)
		})
	})
}

// Nothing of a lease keeps running once it has ended: Release waits for
// its goroutine, after a release, a loss or a failed release. (synctest
// itself would also fail a test whose goroutines outlive it.)
func TestNoLeakedGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		m := w.mutex("leaks", dimutex.WithTTL(3*time.Second))
		check := func(when string) {
			t.Helper()
			if n := leaseGoroutines(); n != 0 {
				t.Errorf("%s: %d lease goroutines still running", when, n)
			}
		}
		for range 3 {
			l := acquire(t, m)
			time.Sleep(2 * time.Second) // past a background refresh
			release(t, l)
			check("after Release")
			if err := m.Do(ctx, func(context.Context) error { return nil }); err != nil {
				t.Fatal(err)
			}
			check("after Do")
		}
		// A lost lease stops too.
		l := acquire(t, m)
		w.srv.DeleteObject(bucket, "leaks")
		<-l.Done()
		synctest.Wait()
		check("after a loss")
		if err := l.Release(ctx); !errors.Is(err, dimutex.ErrLost) {
			t.Fatal(err)
		}
		// And one whose release failed until its deadline.
		l = acquire(t, m)
		w.f.always(anyRequest, status503)
		if err := l.Release(ctx); !errors.Is(err, dimutex.ErrNotReleased) {
			t.Fatalf("Release = %v, want ErrNotReleased", err)
		}
		check("after a failed release")
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

// Do, Semaphore.Do and Election.Run hand their function the lease they
// hold, through its ctx, so that it can fence with the token.
func TestLeaseFromContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		if l := dimutex.LeaseFromContext(ctx); l != nil {
			t.Errorf("LeaseFromContext of a plain ctx = %v, want nil", l)
		}
		check := func(what string, lock string) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				l := dimutex.LeaseFromContext(ctx)
				obj, ok := w.object(lock)
				switch {
				case l == nil:
					t.Errorf("%s: no lease in fn's ctx", what)
				case !ok || l.Token() != obj.Generation:
					t.Errorf("%s: token %d, want the lock's generation %d", what, l.Token(), obj.Generation)
				case l.Err() != nil:
					t.Errorf("%s: lease ended: %v", what, l.Err())
				}
				return nil
			}
		}
		if err := w.mutex("m").Do(ctx, check("Mutex.Do", "m")); err != nil {
			t.Error(err)
		}
		if err := w.semaphore("s", 1).Do(ctx, check("Semaphore.Do", "s/slot-000")); err != nil {
			t.Error(err)
		}
		if err := w.election("e").Run(ctx, "me", check("Election.Run", "e")); err != nil {
			t.Error(err)
		}
	})
}
