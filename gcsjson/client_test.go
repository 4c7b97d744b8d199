package gcsjson_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dimutex/dimutex/gcsjson"
	"github.com/dimutex/dimutex/internal/faultproxy"
	"github.com/dimutex/dimutex/internal/gcstest"
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

// proxied starts an emulator behind a fault proxy and returns the proxy and
// its URL.
func proxied(t *testing.T) (*faultproxy.Proxy, string) {
	t.Helper()
	srv := gcstest.Start(t)
	p := faultproxy.New(srv.URL(), faultproxy.WithSeed(1))
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	t.Cleanup(func() { p.Close() })
	return p, front.URL
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// The three calls against the emulator, with the wire shapes that GCS
// documents, for names that need escaping.
func TestInsertGetDelete(t *testing.T) {
	t.Parallel()
	srv := gcstest.Start(t)
	rec := &gcstest.Recorder{}
	c := newClient(t, srv.URL(), rec)
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
		obj, err := c.Insert(ctx(t), gcstest.Bucket, name, 0, gcsjson.Write{
			Metadata: map[string]string{"k": "v"}, CacheControl: "no-store", Data: []byte("x"),
		})
		if err != nil {
			t.Fatalf("%q: Insert: %v", name, err)
		}
		if obj.Name != name || obj.Generation <= 0 || obj.Metadata["k"] != "v" || obj.CacheControl != "no-store" {
			t.Errorf("%q: Insert returned %+v", name, obj)
		}
		if _, err := c.Insert(ctx(t), gcstest.Bucket, name, 0, gcsjson.Write{}); !gcsjson.IsPreconditionFailed(err) {
			t.Errorf("%q: second create = %v, want 412", name, err)
		}
		got, err := c.Get(ctx(t), gcstest.Bucket, name)
		if err != nil || got.Generation != obj.Generation || got.Name != name {
			t.Errorf("%q: Get = %+v, %v", name, got, err)
		}
		if got.ServerTime.IsZero() || got.SentAt.IsZero() || got.Updated.IsZero() {
			t.Errorf("%q: times not set: %+v", name, got)
		}
		if err := c.Delete(ctx(t), gcstest.Bucket, name, obj.Generation); err != nil {
			t.Errorf("%q: Delete: %v", name, err)
		}
		if _, err := c.Get(ctx(t), gcstest.Bucket, name); !gcsjson.IsNotFound(err) {
			t.Errorf("%q: Get after Delete = %v, want 404", name, err)
		}
		reqs := rec.Requests()
		wantPath := "/storage/v1/b/" + gcstest.Bucket + "/o/" + segment
		for _, r := range reqs {
			switch r.Method {
			case http.MethodPost:
				if r.Path != "/upload/storage/v1/b/"+gcstest.Bucket+"/o" || r.Query.Get("name") != name ||
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
}

func TestPreconditions(t *testing.T) {
	t.Parallel()
	srv := gcstest.Start(t)
	c := newClient(t, srv.URL(), nil)
	obj, err := c.Insert(ctx(t), gcstest.Bucket, "cas", 0, gcsjson.Write{})
	if err != nil {
		t.Fatal(err)
	}
	next, err := c.Insert(ctx(t), gcstest.Bucket, "cas", obj.Generation, gcsjson.Write{})
	if err != nil || next.Generation == obj.Generation {
		t.Fatalf("compare-and-swap on the current generation: %+v, %v", next, err)
	}
	_, err = c.Insert(ctx(t), gcstest.Bucket, "cas", obj.Generation, gcsjson.Write{})
	var ge *gcsjson.Error
	if !errors.As(err, &ge) || ge.Code != 412 || ge.Reason != "conditionNotMet" || ge.Attempts != 1 || ge.MayHaveApplied {
		t.Errorf("stale compare-and-swap = %#v", err)
	}
	if _, err := c.Insert(ctx(t), gcstest.Bucket, "missing", 5, gcsjson.Write{}); !gcsjson.IsPreconditionFailed(err) {
		t.Errorf("compare-and-swap on a missing object = %v, want 412", err)
	}
	for _, bad := range []func() error{
		func() error { return c.Delete(ctx(t), gcstest.Bucket, "cas", 0) },
		func() error { return c.Delete(ctx(t), gcstest.Bucket, "cas", -1) },
		func() error { _, err := c.Insert(ctx(t), gcstest.Bucket, "cas", -1, gcsjson.Write{}); return err },
		func() error { _, err := c.Get(ctx(t), "Bad_Bucket", "x"); return err },
		func() error { _, err := c.Get(ctx(t), gcstest.Bucket, ""); return err },
	} {
		if err := bad(); err == nil {
			t.Error("a call with a bad argument succeeded")
		}
	}
}

// Which failures are retried, and what the caller learns.
func TestRetries(t *testing.T) {
	t.Parallel()
	p, front := proxied(t)
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
		_, err := c.Insert(ctx(t), gcstest.Bucket, name, 0, gcsjson.Write{})
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
}

// A write whose answer is lost may have been applied; the error says so.
func TestMayHaveApplied(t *testing.T) {
	t.Parallel()
	p, front := proxied(t)
	c := newClient(t, front, nil)
	p.Add(faultproxy.Rule{Fault: faultproxy.ResetAfter, Next: 1})
	_, err := c.Insert(ctx(t), gcstest.Bucket, "applied", 0, gcsjson.Write{})
	var ge *gcsjson.Error
	if !errors.As(err, &ge) || ge.Code != 412 || !ge.MayHaveApplied || ge.Attempts != 2 {
		t.Fatalf("insert whose answer was lost, then 412 = %#v", err)
	}
	// The caller gave up while the write was in flight.
	p.Add(faultproxy.Rule{Fault: faultproxy.Hang})
	cctx, cancel := context.WithTimeout(ctx(t), 100*time.Millisecond)
	defer cancel()
	_, err = c.Insert(cctx, gcstest.Bucket, "abandoned", 0, gcsjson.Write{})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ge) || !ge.MayHaveApplied {
		t.Fatalf("insert cut short by ctx = %#v", err)
	}
}

// Each call sends one User-Agent, no Authorization without an Authorizer,
// and one idempotency token across its retries.
func TestHeaders(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		tokens []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") != "test-agent/1" || r.Header.Get("Authorization") != "" {
			t.Errorf("headers %v", r.Header)
		}
		mu.Lock()
		tokens = append(tokens, r.Header.Get("X-Goog-Gcs-Idempotency-Token"))
		first := len(tokens) == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"name":"x","bucket":"b","generation":"7","metageneration":"1","updated":"2026-01-02T03:04:05.123456Z"}`)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, nil, func(cfg *gcsjson.Config) { cfg.UserAgent = "test-agent/1" })
	obj, err := c.Get(ctx(t), "bucket", "x")
	if err != nil || obj.Generation != 7 || obj.Updated.Nanosecond() != 123456000 {
		t.Fatalf("Get = %+v, %v", obj, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tokens) != 2 || tokens[0] == "" || tokens[0] != tokens[1] {
		t.Errorf("idempotency tokens %q, want one token on both attempts", tokens)
	}
}

// Bodies over the limit are refused without being read whole.
func TestResponseSizeLimit(t *testing.T) {
	t.Parallel()
	const huge = 64 << 20
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("declared") {
			w.Header().Set("Content-Length", fmt.Sprint(huge))
		}
		chunk := []byte(strings.Repeat(" ", 32<<10))
		for written.Load() < huge {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, nil, func(cfg *gcsjson.Config) { cfg.MaxResponseBytes = 1 << 20 })
	_, err := c.Get(ctx(t), "bucket", "big")
	if !errors.Is(err, gcsjson.ErrResponseTooLarge) {
		t.Fatalf("Get of a 64 MiB body = %v, want ErrResponseTooLarge", err)
	}
	if n := written.Load(); n >= huge {
		t.Errorf("the client read the whole %d-byte body", n)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	https, _ := url.Parse("https://storage.example")
	plain, _ := url.Parse("http://127.0.0.1:1")
	ftp, _ := url.Parse("ftp://x")
	auth := authorizerFunc(func(context.Context, *http.Request) error { return nil })
	tests := map[string]gcsjson.Config{
		"no endpoint":             {},
		"ftp endpoint":            {Endpoint: ftp},
		"credentials over http":   {Endpoint: plain, Authorizer: auth},
		"backoff min above max":   {Endpoint: https, Retry: gcsjson.RetryPolicy{MinBackoff: time.Second, MaxBackoff: time.Millisecond}},
		"negative attempts":       {Endpoint: https, Retry: gcsjson.RetryPolicy{MaxAttempts: -1}},
		"negative response limit": {Endpoint: https, MaxResponseBytes: -1},
	}
	for name, cfg := range tests {
		if _, err := gcsjson.New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

type authorizerFunc func(context.Context, *http.Request) error

func (f authorizerFunc) Authorize(ctx context.Context, r *http.Request) error { return f(ctx, r) }

// A write that needed retries is dated from the first attempt that may have
// landed, since its success may be GCS replaying that attempt; an attempt
// refused outright (a 429) does not count.
func TestWriteSentAt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fault    faultproxy.Rule
		from, to time.Duration // SentAt's offset from the call's start
	}{
		{"after a slow 503, the first attempt's", faultproxy.Rule{Fault: faultproxy.Status503, Delay: 300 * time.Millisecond}, 0, 200 * time.Millisecond},
		{"after a 429, the retry's", faultproxy.Rule{Fault: faultproxy.Status429}, time.Second, 2 * time.Second},
	}
	for i, tc := range tests {
		p, front := proxied(t)
		c := newClient(t, front, nil)
		tc.fault.Next = 1
		p.Add(tc.fault)
		start := time.Now()
		obj, err := c.Insert(ctx(t), gcstest.Bucket, fmt.Sprint("dated-", i), 0, gcsjson.Write{})
		if err != nil {
			t.Fatal(err)
		}
		if d := obj.SentAt.Sub(start); d < tc.from || d > tc.to {
			t.Errorf("%s: SentAt is %v after the call began, want %v to %v", tc.name, d, tc.from, tc.to)
		}
	}
}

// HTTP/2 stream resets are retried, and count as possibly applied.
func TestHTTP2StreamResetRetried(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			panic(http.ErrAbortHandler) // RST_STREAM on HTTP/2
		}
		io.WriteString(w, `{"name":"x","bucket":"b","generation":"7","updated":"2026-01-02T03:04:05Z"}`)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, srv.Client().Transport)
	if _, err := c.Insert(ctx(t), "bucket", "x", 0, gcsjson.Write{}); err != nil {
		t.Fatalf("Insert after a stream reset = %v, want success on retry", err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

// A 2xx to a write whose body cannot be read was still applied.
func TestUnreadableSuccessMayHaveApplied(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat(" ", 2<<20))
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, nil)
	_, err := c.Insert(ctx(t), "bucket", "x", 0, gcsjson.Write{})
	var ge *gcsjson.Error
	if !errors.As(err, &ge) || !errors.Is(err, gcsjson.ErrResponseTooLarge) || !ge.MayHaveApplied {
		t.Fatalf("Insert answered 200 with an oversized body = %#v, want ErrResponseTooLarge with MayHaveApplied", err)
	}
}
