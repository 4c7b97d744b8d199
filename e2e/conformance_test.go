package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/e2e/internal/backend"
	"github.com/dimutex/dimutex/gcsjson"
)

// This file runs Google's retry conformance cases through the testbench's
// own fault injection (POST /retry_test, then requests that carry
// x-retry-test-id), as Google's client libraries do. TestRetryConformance
// runs the same cases through the fault proxy on every backend.

// retryTests creates and reads the testbench's retry tests.
type retryTests struct {
	t   *testing.T
	srv *backend.Server
}

// create registers a retry test whose instructions fire, in order, on the
// requests of method (such as "storage.objects.insert") that carry its id,
// and returns the id.
func (rt retryTests) create(method string, instructions []string) string {
	rt.t.Helper()
	body, _ := json.Marshal(map[string]any{"instructions": map[string][]string{method: instructions}})
	resp, err := http.Post(rt.srv.URL+"/retry_test", "application/json", strings.NewReader(string(body)))
	if err != nil {
		rt.t.Fatal(err)
	}
	defer resp.Body.Close()
	var created struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusOK || created.ID == "" {
		rt.t.Fatalf("POST /retry_test: %s, id %q, %v", resp.Status, created.ID, err)
	}
	return created.ID
}

// completed reports whether every instruction of retry test id has fired.
func (rt retryTests) completed(id string) bool {
	rt.t.Helper()
	resp, err := http.Get(rt.srv.URL + "/retry_test/" + id)
	if err != nil {
		rt.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Completed bool `json:"completed"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		rt.t.Fatalf("GET /retry_test/%s: %s: %v", id, resp.Status, err)
	}
	return st.Completed
}

// retryTestTransport adds x-retry-test-id to each request while an id is
// set, and counts those requests by JSON API method.
type retryTestTransport struct {
	id atomic.Pointer[string]

	mu    sync.Mutex
	calls map[string]int
}

func (rt *retryTestTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if id := rt.id.Load(); id != nil {
		req = req.Clone(req.Context())
		req.Header.Set("x-retry-test-id", *id)
		rt.mu.Lock()
		if rt.calls == nil {
			rt.calls = map[string]int{}
		}
		rt.calls[apiMethod(req)]++
		rt.mu.Unlock()
	}
	return noKeepAlives.RoundTrip(req)
}

// noKeepAlives makes a connection for each request: net/http retries by
// itself a GET that a reset cuts short on a reused connection, unseen by
// RoundTrippers and by the library, which would hide the library's retries
// from the counts.
var noKeepAlives = &http.Transport{DisableKeepAlives: true}

func (rt *retryTestTransport) set(id string) { rt.id.Store(&id) }
func (rt *retryTestTransport) clear()        { rt.id.Store(nil) }

// sent returns how many requests of the JSON API method carried an id.
func (rt *retryTestTransport) sent(method string) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.calls[method]
}

// apiMethod names the JSON API method of one of the library's requests.
func apiMethod(req *http.Request) string {
	switch {
	case req.Method == http.MethodPost && strings.HasPrefix(req.URL.Path, "/upload/"):
		return "storage.objects.insert"
	case req.Method == http.MethodDelete:
		return "storage.objects.delete"
	case req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/o"):
		return "storage.objects.list"
	case req.Method == http.MethodGet:
		return "storage.objects.get"
	}
	return req.Method + " " + req.URL.Path
}

// testbenchMutex returns a Mutex on name in srv's bucket, with quick
// retries, whose requests carry the retry test id that tr holds.
func testbenchMutex(t *testing.T, srv *backend.Server, tr *retryTestTransport, name string, opts ...dimutex.Option) *dimutex.Mutex {
	t.Helper()
	m, err := dimutex.NewGCS(srv.Bucket, name, append([]dimutex.Option{
		dimutex.WithEndpoint(srv.URL),
		dimutex.WithHTTPClient(&http.Client{Transport: tr}),
		dimutex.WithBackoff(5*time.Millisecond, 50*time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Google's retry conformance cases, injected by the testbench on each JSON
// API method the library calls: each call survives [503, 503], [reset,
// reset] and [reset, 503], with one retry per fault; a 400 or 401 is not
// retried, and is returned after one attempt. The one exception is by
// design: Inspect of a free lock lists the bucket only to tell a free lock
// from a missing one, and takes any failure of that list other than a 404
// to mean "most likely free" (see Mutex.Inspect), so there a 400 or 401
// gives a free Status, still after one attempt.
func TestTestbenchRetryConformance(t *testing.T) {
	t.Parallel()
	type op struct {
		name   string
		method string // the JSON API method whose requests get the faults
		// prepare runs without faults; do is the operation under test,
		// whose requests carry the retry test's id.
		prepare func(t *testing.T, m *dimutex.Mutex) *dimutex.Lease
		do      func(ctx context.Context, m *dimutex.Mutex, l *dimutex.Lease) error
		// cleanup runs without faults, after do.
		cleanup func(ctx context.Context, l *dimutex.Lease)
	}
	none := func(*testing.T, *dimutex.Mutex) *dimutex.Lease { return nil }
	held := func(t *testing.T, m *dimutex.Mutex) *dimutex.Lease { return acquire(t, m) }
	release := func(ctx context.Context, l *dimutex.Lease) {
		if l != nil {
			l.Release(ctx)
		}
	}
	ops := []op{
		{
			name: "acquire", method: "storage.objects.insert", prepare: none,
			do: func(ctx context.Context, m *dimutex.Mutex, _ *dimutex.Lease) error {
				l, err := m.TryAcquire(ctx)
				if err == nil {
					l.Release(ctx)
				}
				return err
			},
			cleanup: func(context.Context, *dimutex.Lease) {},
		},
		{
			name: "refresh", method: "storage.objects.insert", prepare: held,
			do:      func(ctx context.Context, _ *dimutex.Mutex, l *dimutex.Lease) error { return l.Refresh(ctx) },
			cleanup: release,
		},
		{
			name: "inspect held", method: "storage.objects.get", prepare: held,
			do: func(ctx context.Context, m *dimutex.Mutex, _ *dimutex.Lease) error {
				st, err := m.Inspect(ctx)
				if err == nil && !st.Held {
					return errors.New("Inspect says free")
				}
				return err
			},
			cleanup: release,
		},
		{
			// Inspect of a free lock lists one object, to tell a free
			// lock from a missing bucket.
			name: "inspect free", method: "storage.objects.list", prepare: none,
			do: func(ctx context.Context, m *dimutex.Mutex, _ *dimutex.Lease) error {
				st, err := m.Inspect(ctx)
				if err == nil && (st.Held || st.Exists) {
					return fmt.Errorf("Inspect of a free lock = %+v", st)
				}
				return err
			},
			cleanup: func(context.Context, *dimutex.Lease) {},
		},
		{
			name: "release", method: "storage.objects.delete", prepare: held,
			do:      func(ctx context.Context, _ *dimutex.Mutex, l *dimutex.Lease) error { return l.Release(ctx) },
			cleanup: release, // after a 4xx
		},
	}
	cases := []struct {
		name         string
		instructions []string
		code         int // 0: the call succeeds; else it fails with this status after one attempt
	}{
		{"503,503", []string{"return-503", "return-503"}, 0},
		{"reset,reset", []string{"return-reset-connection", "return-reset-connection"}, 0},
		{"reset,503", []string{"return-reset-connection", "return-503"}, 0},
		{"400", []string{"return-400"}, http.StatusBadRequest},
		{"401", []string{"return-401"}, http.StatusUnauthorized},
	}
	for _, o := range ops {
		for _, c := range cases {
			t.Run(o.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				srv := backend.Testbench.Start(t)
				rt := retryTests{t, srv}
				tr := &retryTestTransport{}
				m := testbenchMutex(t, srv, tr, "conf")
				ctx := ctxT(t)
				l := o.prepare(t, m)
				id := rt.create(o.method, c.instructions)
				tr.set(id)
				err := o.do(ctx, m, l)
				tr.clear()
				o.cleanup(ctx, l)
				if !rt.completed(id) {
					t.Errorf("retry test %s (%s %v) did not complete: not every fault was injected", id, o.method, c.instructions)
				}
				if c.code == 0 {
					if err != nil {
						t.Fatalf("did not survive %s: %v", c.name, err)
					}
					if n, want := tr.sent(o.method), len(c.instructions)+1; n != want {
						t.Errorf("%d %s requests, want %d: one per fault, and the one that succeeded", n, o.method, want)
					}
					return
				}
				if n := tr.sent(o.method); n != 1 {
					t.Errorf("%d %s requests, want 1: a %d is not retried", n, o.method, c.code)
				}
				if o.method == "storage.objects.list" {
					if err != nil {
						t.Fatalf("Inspect of a free lock whose bucket check got %d = %v, want a free Status", c.code, err)
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
}

// An insert whose answer the testbench cuts short after applying it
// (return-broken-stream) is recognised as ours by its lease id: Acquire
// adopts it, Refresh does not take it for a loss, and Release then succeeds.
// (The testbench does not break the answer of a DELETE: it sends the whole
// of its empty body and leaves the instruction unused.)
func TestTestbenchLostResponse(t *testing.T) {
	t.Parallel()
	t.Run("acquire", func(t *testing.T) {
		t.Parallel()
		srv := backend.Testbench.Start(t)
		rt := retryTests{t, srv}
		tr := &retryTestTransport{}
		ctx := ctxT(t)
		m := testbenchMutex(t, srv, tr, "lost", dimutex.WithTTL(time.Minute))
		id := rt.create("storage.objects.insert", []string{"return-broken-stream"})
		tr.set(id)
		start := time.Now()
		l, err := m.Acquire(ctx)
		tr.clear()
		if err != nil {
			t.Fatalf("Acquire after a lost answer: %v", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Acquire took %v: it waited for its own lock", took)
		}
		if !rt.completed(id) {
			t.Fatalf("retry test %s did not complete: the answer was not cut", id)
		}
		if obj := readObject(t, srv, "lost"); obj == nil || obj.Generation != l.Token() {
			t.Errorf("token %d is not the object's generation (object %+v)", l.Token(), obj)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if readObject(t, srv, "lost") != nil {
			t.Error("the lock object survived Release")
		}
	})
	t.Run("refresh", func(t *testing.T) {
		t.Parallel()
		srv := backend.Testbench.Start(t)
		rt := retryTests{t, srv}
		tr := &retryTestTransport{}
		ctx := ctxT(t)
		m := testbenchMutex(t, srv, tr, "lost", dimutex.WithRefreshInterval(0))
		l := acquire(t, m)
		id := rt.create("storage.objects.insert", []string{"return-broken-stream"})
		tr.set(id)
		err := l.Refresh(ctx)
		tr.clear()
		if err != nil {
			t.Fatalf("Refresh after a lost answer: %v", err)
		}
		if !rt.completed(id) {
			t.Fatalf("retry test %s did not complete: the answer was not cut", id)
		}
		if l.Err() != nil {
			t.Fatalf("lease ended: %v", l.Err())
		}
		if obj := readObject(t, srv, "lost"); obj == nil || obj.Metadata["dimutex-token"] != fmt.Sprint(l.Token()) {
			t.Errorf("object not ours: %+v", obj)
		}
		if err := l.Refresh(ctx); err != nil {
			t.Fatalf("second Refresh: %v", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
	})
}

// readObject reads name in srv's bucket; nil if it does not exist.
func readObject(t *testing.T, srv *backend.Server, name string) *gcsjson.Object {
	t.Helper()
	return envOn(t, srv).object(name)
}
