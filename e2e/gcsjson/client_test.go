package gcsjson_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/dimutex/dimutex/e2e/internal/backend"
	"github.com/dimutex/dimutex/e2e/internal/faultproxy"
	"github.com/dimutex/dimutex/e2e/internal/gcstest"
	"github.com/dimutex/dimutex/gcsjson"
)

func newClient(t testing.TB, endpoint string, rt http.RoundTripper, mod ...func(*gcsjson.Config)) *gcsjson.Client {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gcsjson.Config{
		Endpoint:   u,
		HTTPClient: &http.Client{Transport: rt},
		Retry:      gcsjson.RetryPolicy{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, AttemptTimeout: time.Second},
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := gcsjson.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// proxied starts a server of b behind a fault proxy and returns the proxy,
// its URL, and the test's bucket.
func proxied(t *testing.T, b *backend.Backend) (*faultproxy.Proxy, string, string) {
	t.Helper()
	srv := b.Start(t)
	p := faultproxy.New(srv.URL, faultproxy.WithSeed(1))
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	t.Cleanup(func() { p.Close() })
	return p, front.URL, srv.Bucket
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// The three calls against each backend, with the wire shapes that GCS
// documents, for names that need escaping.
func TestInsertGetDelete(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		bucket := srv.Bucket
		rec := &gcstest.Recorder{}
		c := newClient(t, srv.URL, rec)
		names := map[string]string{ // name: its escaped path segment
			"plain":          "plain",
			"a/b/c":          "a%2Fb%2Fc",
			"with space":     "with%20space",
			"plus+sign":      "plus+sign",
			"question?mark":  "question%3Fmark",
			"hash#tag":       "hash%23tag",
			"percent%20lit":  "percent%2520lit",
			"ünï/名前":         "%C3%BCn%C3%AF%2F%E5%90%8D%E5%89%8D",
			"a/../b":         "a%2F..%2Fb",
			"semi;colon=e&a": "semi%3Bcolon=e&a",
		}
		for name, segment := range names {
			rec.Reset()
			obj, err := c.Insert(ctx(t), bucket, name, 0, gcsjson.Write{
				Metadata: map[string]string{"k": "v"}, CacheControl: "no-store", Data: []byte("x"),
			})
			if err != nil {
				t.Fatalf("%q: Insert: %v", name, err)
			}
			if obj.Name != name || obj.Generation <= 0 || obj.Metadata["k"] != "v" || obj.CacheControl != "no-store" {
				t.Errorf("%q: Insert returned %+v", name, obj)
			}
			if _, err := c.Insert(ctx(t), bucket, name, 0, gcsjson.Write{}); !gcsjson.IsPreconditionFailed(err) {
				t.Errorf("%q: second create = %v, want 412", name, err)
			}
			got, err := c.Get(ctx(t), bucket, name)
			if err != nil || got.Generation != obj.Generation || got.Name != name {
				t.Errorf("%q: Get = %+v, %v", name, got, err)
			}
			if got.ServerTime.IsZero() || got.SentAt.IsZero() || got.Updated.IsZero() {
				t.Errorf("%q: times not set: %+v", name, got)
			}
			if err := c.Delete(ctx(t), bucket, name, obj.Generation); err != nil {
				t.Errorf("%q: Delete: %v", name, err)
			}
			if _, err := c.Get(ctx(t), bucket, name); !gcsjson.IsNotFound(err) {
				t.Errorf("%q: Get after Delete = %v, want 404", name, err)
			}
			reqs := rec.Requests()
			wantPath := "/storage/v1/b/" + bucket + "/o/" + segment
			for _, r := range reqs {
				switch r.Method {
				case http.MethodPost:
					if r.Path != "/upload/storage/v1/b/"+bucket+"/o" || r.Query.Get("name") != name ||
						r.Query.Get("uploadType") != "multipart" || r.Query.Get("ifGenerationMatch") != "0" {
						t.Errorf("%q: upload %v", name, r)
					}
				case http.MethodGet, http.MethodDelete:
					if r.Path != wantPath {
						t.Errorf("%q: %s path %s, want %s", name, r.Method, r.Path, wantPath)
					}
				}
			}
		}
	})
}

func TestPreconditions(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		srv := b.Start(t)
		bucket := srv.Bucket
		c := newClient(t, srv.URL, nil)
		obj, err := c.Insert(ctx(t), bucket, "cas", 0, gcsjson.Write{})
		if err != nil {
			t.Fatal(err)
		}
		next, err := c.Insert(ctx(t), bucket, "cas", obj.Generation, gcsjson.Write{})
		if err != nil || next.Generation == obj.Generation {
			t.Fatalf("compare-and-swap on the current generation: %+v, %v", next, err)
		}
		_, err = c.Insert(ctx(t), bucket, "cas", obj.Generation, gcsjson.Write{})
		var ge *gcsjson.Error
		// The reason is only known where error bodies are GCS-shaped.
		if !errors.As(err, &ge) || ge.Code != 412 || (b.GCSErrors && ge.Reason != "conditionNotMet") || ge.Attempts != 1 || ge.MayHaveApplied {
			t.Errorf("stale compare-and-swap = %#v", err)
		}
		if _, err := c.Insert(ctx(t), bucket, "missing", 5, gcsjson.Write{}); !gcsjson.IsPreconditionFailed(err) {
			t.Errorf("compare-and-swap on a missing object = %v, want 412", err)
		}
		for _, bad := range []func() error{
			func() error { return c.Delete(ctx(t), bucket, "cas", 0) },
			func() error { return c.Delete(ctx(t), bucket, "cas", -1) },
			func() error { _, err := c.Insert(ctx(t), bucket, "cas", -1, gcsjson.Write{}); return err },
			func() error { _, err := c.Get(ctx(t), "Bad_Bucket", "x"); return err },
			func() error { _, err := c.Get(ctx(t), bucket, ""); return err },
		} {
			if err := bad(); err == nil {
				t.Error("a call with a bad argument succeeded")
			}
		}
	})
}

// Which failures are retried, and what the caller learns.
func TestRetries(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		p, front, bucket := proxied(t, b)
		c := newClient(t, front, &http.Transport{DisableKeepAlives: true})
		tests := []struct {
			name           string
			faults         []faultproxy.Fault
			ok             bool
			attempts       int
			mayHaveApplied bool
		}{
			{"no fault", nil, true, 1, false},
			{"503 then success", []faultproxy.Fault{faultproxy.Status503}, true, 2, false},
			{"every retriable status", []faultproxy.Fault{faultproxy.Status408, faultproxy.Status429, faultproxy.Status500, faultproxy.Status503}, true, 5, false},
			{"reset before", []faultproxy.Fault{faultproxy.ResetBefore, faultproxy.ResetBefore}, true, 3, false},
			{"latency past the attempt timeout", []faultproxy.Fault{faultproxy.Hang}, true, 2, false},
			{"400 is final", []faultproxy.Fault{faultproxy.Status400}, false, 1, false},
			{"401 is final", []faultproxy.Fault{faultproxy.Status401}, false, 1, false},
			{"503 then 400", []faultproxy.Fault{faultproxy.Status503, faultproxy.Status400}, false, 2, true},
		}
		for i, tc := range tests {
			p.Clear()
			for _, f := range tc.faults {
				p.Add(faultproxy.Rule{Fault: f, Next: 1})
			}
			name := fmt.Sprint("retry-", i)
			start := time.Now()
			_, err := c.Insert(ctx(t), bucket, name, 0, gcsjson.Write{})
			if tc.ok != (err == nil) {
				t.Errorf("%s: Insert = %v, want ok=%v", tc.name, err, tc.ok)
				continue
			}
			if slices.Contains(tc.faults, faultproxy.Status429) && time.Since(start) < time.Second {
				t.Errorf("%s: retried within %v of a 429", tc.name, time.Since(start))
			}
			if err != nil {
				var ge *gcsjson.Error
				if !errors.As(err, &ge) || ge.Attempts != tc.attempts || ge.MayHaveApplied != tc.mayHaveApplied {
					t.Errorf("%s: %#v, want %d attempts and MayHaveApplied=%v", tc.name, err, tc.attempts, tc.mayHaveApplied)
				}
			}
		}
	})
}

// A write whose answer is lost may have been applied; the error says so.
func TestMayHaveApplied(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		p, front, bucket := proxied(t, b)
		c := newClient(t, front, nil)
		p.Add(faultproxy.Rule{Fault: faultproxy.ResetAfter, Next: 1})
		_, err := c.Insert(ctx(t), bucket, "applied", 0, gcsjson.Write{})
		var ge *gcsjson.Error
		if !errors.As(err, &ge) || ge.Code != 412 || !ge.MayHaveApplied || ge.Attempts != 2 {
			t.Fatalf("insert whose answer was lost, then 412 = %#v", err)
		}
		// The caller gave up while the write was in flight.
		p.Add(faultproxy.Rule{Fault: faultproxy.Hang})
		cctx, cancel := context.WithTimeout(ctx(t), 100*time.Millisecond)
		defer cancel()
		_, err = c.Insert(cctx, bucket, "abandoned", 0, gcsjson.Write{})
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ge) || !ge.MayHaveApplied {
			t.Fatalf("insert cut short by ctx = %#v", err)
		}
	})
}

// A write that needed retries is dated from the first attempt that may have
// landed, since its success may be GCS replaying that attempt; an attempt
// refused outright (a 429) does not count.
func TestWriteSentAt(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		tests := []struct {
			name     string
			fault    faultproxy.Rule
			from, to time.Duration // SentAt's offset from the call's start
		}{
			{"after a slow 503, the first attempt's", faultproxy.Rule{Fault: faultproxy.Status503, Delay: 300 * time.Millisecond}, 0, 200 * time.Millisecond},
			{"after a 429, the retry's", faultproxy.Rule{Fault: faultproxy.Status429}, time.Second, 2 * time.Second},
		}
		for i, tc := range tests {
			p, front, bucket := proxied(t, b)
			c := newClient(t, front, nil)
			tc.fault.Next = 1
			p.Add(tc.fault)
			start := time.Now()
			obj, err := c.Insert(ctx(t), bucket, fmt.Sprint("dated-", i), 0, gcsjson.Write{})
			if err != nil {
				t.Fatal(err)
			}
			if d := obj.SentAt.Sub(start); d < tc.from || d > tc.to {
				t.Errorf("%s: SentAt is %v after the call began, want %v to %v", tc.name, d, tc.from, tc.to)
			}
		}
	})
}
