package gcsjson_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

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

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
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

// rtFunc is an http.RoundTripper made of a function.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// With FailOnRateLimit, a 429 ends the call at once, unless an earlier
// attempt may have landed and may still be in flight: then the call goes
// on, but only for two attempt timeouts after that attempt was sent, so
// that a caller is not kept waiting in line on a contended object.
func TestFailOnRateLimit(t *testing.T) {
	answer := func(r *http.Request, code int) *http.Response {
		body := fmt.Sprintf(`{"error":{"code":%d,"message":"m","errors":[{"reason":"r"}]}}`, code)
		return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)), Request: r}
	}
	for _, tt := range []struct {
		name         string
		first        int // the first attempt's status; 429 after it
		wantAttempts int // at least
		wantMay      bool
		min, max     time.Duration
	}{
		{"a 429 first", http.StatusTooManyRequests, 1, false, 0, 0},
		{"a 429 after a 503, which may have landed", http.StatusServiceUnavailable, 3, true, 2 * time.Second, 5 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var sent []time.Time
				c := newClient(t, "http://gcs.invalid", rtFunc(func(r *http.Request) (*http.Response, error) {
					sent = append(sent, time.Now())
					if len(sent) == 1 {
						return answer(r, tt.first), nil
					}
					return answer(r, http.StatusTooManyRequests), nil
				}))
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_, err := c.Insert(ctx, "bucket", "x", 0, gcsjson.Write{}, gcsjson.FailOnRateLimit())
				took := time.Since(start)
				var ge *gcsjson.Error
				if !errors.As(err, &ge) || ge.Code != http.StatusTooManyRequests || ge.MayHaveApplied != tt.wantMay {
					t.Fatalf("Insert = %#v, want a 429 with MayHaveApplied %v", err, tt.wantMay)
				}
				if len(sent) < tt.wantAttempts || took < tt.min || took > tt.max {
					t.Errorf("%d attempts in %v, want at least %d in [%v, %v]", len(sent), took, tt.wantAttempts, tt.min, tt.max)
				}
				if tt.wantMay {
					last, before := sent[len(sent)-1], sent[len(sent)-2]
					if last.Sub(sent[0]) < 2*time.Second || before.Sub(sent[0]) >= 2*time.Second {
						t.Errorf("retried 429s until %v after the 503, want the last retry the first at 2s or later", last.Sub(sent[0]))
					}
				}
			})
		})
	}
}
