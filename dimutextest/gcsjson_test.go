package dimutextest_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex/dimutextest"
	"github.com/dimutex/dimutex/gcsjson"
)

// These tests drive the server with the project's own client, gcsjson, in
// memory inside a synctest bubble and over httptest.

// retry is the client's retry policy in these tests: quick, so that the
// httptest runs stay short.
var retry = gcsjson.RetryPolicy{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, AttemptTimeout: 300 * time.Millisecond}

func newGCSClient(t *testing.T, endpoint string, hc *http.Client) *gcsjson.Client {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gcsjson.New(gcsjson.Config{Endpoint: u, HTTPClient: hc, Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// withClient runs f with a gcsjson client on a new Server, in memory inside
// a synctest bubble and through httptest.
func withClient(t *testing.T, f func(t *testing.T, srv *dimutextest.Server, c *gcsjson.Client, memory bool), opts ...dimutextest.Option) {
	opts = append([]dimutextest.Option{dimutextest.WithBucket(bkt)}, opts...)
	t.Run("memory", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := dimutextest.NewServer(opts...)
			f(t, srv, newGCSClient(t, srv.URL(), srv.Client()), true)
		})
	})
	t.Run("httptest", func(t *testing.T) {
		srv := dimutextest.NewServer(opts...)
		ep, hc := modes[1].start(t, srv)
		f(t, srv, newGCSClient(t, ep, hc), false)
	})
}

func write(data string) gcsjson.Write {
	return gcsjson.Write{Data: []byte(data), ContentType: "application/json", CacheControl: "no-store",
		Metadata: map[string]string{"owner": "test", "note": data}}
}

// Insert, Get, Delete and CheckBucket work as against GCS.
func TestGCSJSONClient(t *testing.T) {
	withClient(t, func(t *testing.T, srv *dimutextest.Server, c *gcsjson.Client, memory bool) {
		ctx := context.Background()
		if err := c.CheckBucket(ctx, bkt); err != nil {
			t.Fatal(err)
		}
		if err := c.CheckBucket(ctx, "no-such-bucket"); !gcsjson.IsNotFound(err) {
			t.Errorf("CheckBucket of a missing bucket: %v", err)
		}
		for _, name := range []string{"locks/job", "with space/and%percent", "ünïcødé/名前", "q?x#y+z"} {
			o, err := c.Insert(ctx, bkt, name, 0, write("one"))
			if err != nil {
				t.Fatal(err)
			}
			if o.Name != name || o.Bucket != bkt || o.Metageneration != 1 || o.Size != 3 || o.ContentType != "application/json" ||
				o.CacheControl != "no-store" || o.Metadata["note"] != "one" || !o.Updated.Equal(o.TimeCreated) {
				t.Errorf("Insert returned %+v", o)
			}
			if memory && (!o.ServerTime.Equal(srv.Now().Truncate(time.Second)) || !o.Updated.Equal(srv.Now())) {
				t.Errorf("ServerTime %v, updated %v; server now %v", o.ServerTime, o.Updated, srv.Now())
			}
			if _, err := c.Insert(ctx, bkt, name, 0, write("two")); !gcsjson.IsPreconditionFailed(err) {
				t.Errorf("second create: %v", err)
			}
			got, err := c.Get(ctx, bkt, name)
			if err != nil || got.Generation != o.Generation || got.Metadata["owner"] != "test" {
				t.Errorf("Get: %+v %v", got, err)
			}
			o2, err := c.Insert(ctx, bkt, name, o.Generation, write("two"))
			if err != nil || o2.Generation <= o.Generation {
				t.Fatalf("compare-and-swap: %+v %v", o2, err)
			}
			if err := c.Delete(ctx, bkt, name, o.Generation); !gcsjson.IsPreconditionFailed(err) {
				t.Errorf("delete with a stale generation: %v", err)
			}
			if s, ok := srv.Object(bkt, name); !ok || string(s.Data) != "two" {
				t.Fatalf("after the refused delete: %v %+v", ok, s)
			}
			if err := c.Delete(ctx, bkt, name, o2.Generation); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get(ctx, bkt, name); !gcsjson.IsNotFound(err) {
				t.Errorf("Get after delete: %v", err)
			}
			if err := c.Delete(ctx, bkt, name, o2.Generation); !gcsjson.IsNotFound(err) {
				t.Errorf("second delete: %v", err)
			}
		}
		if _, err := c.Insert(ctx, "no-such-bucket", "x", 0, write("x")); !gcsjson.IsNotFound(err) {
			t.Errorf("Insert into a missing bucket: %v", err)
		}
	})
}

// faults returns a FaultFunc that gives the faults in order to the requests
// with this Op, then no fault.
func faults(op string, fs ...dimutextest.Fault) dimutextest.FaultFunc {
	var mu sync.Mutex
	return func(r *dimutextest.Request) dimutextest.Fault {
		mu.Lock()
		defer mu.Unlock()
		if r.Op != op || len(fs) == 0 {
			return dimutextest.Fault{}
		}
		f := fs[0]
		fs = fs[1:]
		return f
	}
}

var (
	fail503     = dimutextest.Fault{Kind: dimutextest.FailBefore, Status: 503}
	resetBefore = dimutextest.Fault{Kind: dimutextest.ResetBefore}
	resetAfter  = dimutextest.Fault{Kind: dimutextest.ResetAfter}
	truncate    = dimutextest.Fault{Kind: dimutextest.TruncateAfter}
)

// The client survives Google's conformance cases for conditionally
// idempotent calls: [503, 503], [reset, reset] and [reset, 503], for each
// call, and does not retry 400 or 401.
func TestGCSJSONRetriesTransientFaults(t *testing.T) {
	withClient(t, func(t *testing.T, srv *dimutextest.Server, c *gcsjson.Client, memory bool) {
		ctx := context.Background()
		for _, seq := range [][]dimutextest.Fault{{fail503, fail503}, {resetBefore, resetBefore}, {resetBefore, fail503}} {
			srv.SetFaults(faults("insert", seq...))
			o, err := c.Insert(ctx, bkt, "obj", 0, write("x"))
			if err != nil {
				t.Fatalf("insert through %v: %v", seq, err)
			}
			srv.SetFaults(faults("get", seq...))
			if _, err := c.Get(ctx, bkt, "obj"); err != nil {
				t.Fatalf("get through %v: %v", seq, err)
			}
			srv.SetFaults(faults("list", seq...))
			if err := c.CheckBucket(ctx, bkt); err != nil {
				t.Fatalf("list through %v: %v", seq, err)
			}
			srv.SetFaults(faults("delete", seq...))
			if err := c.Delete(ctx, bkt, "obj", o.Generation); err != nil {
				t.Fatalf("delete through %v: %v", seq, err)
			}
		}
		for _, status := range []int{400, 401, 403} {
			srv.SetFaults(faults("insert", dimutextest.Fault{Kind: dimutextest.FailBefore, Status: status}))
			_, err := c.Insert(ctx, bkt, "obj", 0, write("x"))
			var ge *gcsjson.Error
			if !errors.As(err, &ge) || ge.Code != status || ge.Attempts != 1 || ge.MayHaveApplied {
				t.Errorf("%d: %#v, want one attempt", status, err)
			}
		}
		if _, ok := srv.Object(bkt, "obj"); ok {
			t.Error("a refused insert was applied")
		}
	})
}

// A write whose answer is lost (ResetAfter, TruncateAfter) was applied: the
// retry meets the new state, 412 for an insert and 404 for a delete, and
// the client reports MayHaveApplied.
func TestGCSJSONLostAnswers(t *testing.T) {
	withClient(t, func(t *testing.T, srv *dimutextest.Server, c *gcsjson.Client, memory bool) {
		ctx := context.Background()
		for _, f := range []dimutextest.Fault{resetAfter, truncate} {
			srv.SetFaults(faults("insert", f))
			_, err := c.Insert(ctx, bkt, "obj", 0, write("mine"))
			var ge *gcsjson.Error
			if !errors.As(err, &ge) || ge.Code != 412 || !ge.MayHaveApplied || ge.Attempts != 2 {
				t.Fatalf("%v insert: %#v, want 412 after 2 attempts with MayHaveApplied", f.Kind, err)
			}
			o, ok := srv.Object(bkt, "obj")
			if !ok || o.Metadata["note"] != "mine" {
				t.Fatalf("%v: the first attempt did not land: %+v", f.Kind, o)
			}
			srv.SetFaults(faults("delete", f))
			err = c.Delete(ctx, bkt, "obj", o.Generation)
			if !errors.As(err, &ge) || ge.Code != 404 || !ge.MayHaveApplied || ge.Attempts != 2 {
				t.Fatalf("%v delete: %#v, want 404 after 2 attempts with MayHaveApplied", f.Kind, err)
			}
			if _, ok := srv.Object(bkt, "obj"); ok {
				t.Fatalf("%v: the delete did not land", f.Kind)
			}
		}
		// A lost answer to a read is simply retried.
		o, _ := c.Insert(ctx, bkt, "obj", 0, write("x"))
		srv.SetFaults(faults("get", resetAfter, truncate))
		if got, err := c.Get(ctx, bkt, "obj"); err != nil || got.Generation != o.Generation {
			t.Errorf("get: %+v %v", got, err)
		}
	})
}

// A hung attempt times out (AttemptTimeout) and is retried.
func TestGCSJSONHang(t *testing.T) {
	withClient(t, func(t *testing.T, srv *dimutextest.Server, c *gcsjson.Client, memory bool) {
		srv.SetFaults(faults("insert", dimutextest.Fault{Kind: dimutextest.Hang}))
		start := time.Now()
		o, err := c.Insert(context.Background(), bkt, "obj", 0, write("x"))
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < retry.AttemptTimeout {
			t.Errorf("done after %v, before the attempt timeout", el)
		}
		if s, _ := srv.Object(bkt, "obj"); s.Generation != o.Generation {
			t.Errorf("stored generation %d, returned %d", s.Generation, o.Generation)
		}
		// A call whose context ends during a hang reports it.
		srv.SetFaults(func(*dimutextest.Request) dimutextest.Fault { return dimutextest.Fault{Kind: dimutextest.Hang} })
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = c.Get(ctx, bkt, "obj")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Get during hangs: %v", err)
		}
		srv.SetFaults(nil)
	})
}

// A write delayed past the attempt timeout may land after the client gave
// up on it: the client retries, and exactly one of the two attempts wins.
func TestGCSJSONLateWrite(t *testing.T) {
	withClient(t, func(t *testing.T, srv *dimutextest.Server, c *gcsjson.Client, memory bool) {
		srv.SetFaults(faults("insert", dimutextest.Fault{Latency: 2 * retry.AttemptTimeout}))
		_, err := c.Insert(context.Background(), bkt, "obj", 0, write("x"))
		var ge *gcsjson.Error
		if err != nil && !(errors.As(err, &ge) && ge.Code == 412 && ge.MayHaveApplied) {
			t.Fatalf("insert: %v", err)
		}
		if memory {
			time.Sleep(time.Second)
		} else {
			time.Sleep(3 * retry.AttemptTimeout)
		}
		var applied, refused int
		for _, r := range srv.Requests() {
			switch {
			case r.Applied:
				applied++
			case r.Status == 412:
				refused++
			}
		}
		if applied != 1 || refused != 1 {
			t.Errorf("%d applied and %d refused, want one of each: %+v", applied, refused, srv.Requests())
		}
	})
}

// With the write rate limit, the client's second write to one name within a
// second is refused with 429, and its retry, at least a second later,
// succeeds.
func TestGCSJSONRateLimit(t *testing.T) {
	withClient(t, func(t *testing.T, srv *dimutextest.Server, c *gcsjson.Client, memory bool) {
		ctx := context.Background()
		o, err := c.Insert(ctx, bkt, "obj", 0, write("one"))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		o2, err := c.Insert(ctx, bkt, "obj", o.Generation, write("two"))
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < time.Second {
			t.Errorf("second write succeeded after %v", el)
		}
		rs := srv.Requests()
		if len(rs) != 3 || rs[1].Status != 429 || rs[2].Generation != o2.Generation {
			t.Errorf("log: %+v", rs)
		}
	}, dimutextest.WithWriteRateLimit())
}

// Concurrent creates through the client: exactly one wins.
func TestGCSJSONConcurrentCreate(t *testing.T) {
	withClient(t, func(t *testing.T, srv *dimutextest.Server, c *gcsjson.Client, memory bool) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 20 {
			wg.Go(func() {
				_, err := c.Insert(context.Background(), bkt, "obj", 0, write("x"))
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !gcsjson.IsPreconditionFailed(err) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("%d winners", wins)
		}
	})
}
