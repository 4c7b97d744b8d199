package dimutex_test

// Credentials: no Authorization header to an emulator or over plain http,
// no token in errors or logs, no redirects followed. These tests need real
// sockets (the header, TLS, redirects), so they serve dimutextest through
// net/http/httptest, in real time.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/dimutextest"
)

// secret is the access token the tests hand out; it must never leak.
const secret = "ya29.SECRET-TOKEN-do-not-log-0123456789"

// secretTokens is an oauth2.TokenSource of secret that counts its calls.
type secretTokens struct{ calls atomic.Int32 }

func (c *secretTokens) Token() (*oauth2.Token, error) {
	c.calls.Add(1)
	return &oauth2.Token{AccessToken: secret, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
}

// timeout returns a ctx for a real-time test.
func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// No Authorization header reaches an emulator (STORAGE_EMULATOR_HOST) or a
// plain-http endpoint, even when a token source is configured, and no
// credentials are looked up. Not parallel: it sets the environment.
func TestNoAuthorizationToEmulator(t *testing.T) {
	srv := dimutextest.NewServer(dimutextest.WithBucket(bucket))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tokens := &secretTokens{}
	// An unusable credentials file: if anything looked for credentials, the
	// operations below would fail.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json")
	host := strings.TrimPrefix(ts.URL, "http://")
	for _, tc := range []struct {
		name string
		env  string
		opts []dimutex.Option
	}{
		{"STORAGE_EMULATOR_HOST with a token source", host, []dimutex.Option{dimutex.WithTokenSource(tokens)}},
		{"STORAGE_EMULATOR_HOST with a scheme", ts.URL, nil},
		{"plain-http WithEndpoint", "", []dimutex.Option{dimutex.WithEndpoint(ts.URL)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORAGE_EMULATOR_HOST", tc.env)
			srv.ClearRequests()
			m, err := dimutex.NewGCS(bucket, "no-auth", append([]dimutex.Option{dimutex.WithHTTPClient(ts.Client())}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			ctx := timeout(t)
			l, err := m.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Refresh(ctx); err != nil {
				t.Error(err)
			}
			if _, err := m.Inspect(ctx); err != nil {
				t.Error(err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			reqs := srv.Requests()
			if len(reqs) != 4 {
				t.Errorf("%d requests reached the server, want 4", len(reqs))
			}
			for _, r := range reqs {
				if a := r.Header.Get("Authorization"); a != "" {
					t.Errorf("request %d (%s) carried Authorization %q", r.Seq, r.Op, a)
				}
			}
		})
	}
	if n := tokens.calls.Load(); n != 0 {
		t.Errorf("the token source was asked for %d tokens for an emulator", n)
	}
}

// Over https the token is sent, but it never appears in an error or a log
// line, even at debug level, through retries and failures.
func TestTokenNeverInErrorsOrLogs(t *testing.T) {
	w := newWorld(t)
	ts := httptest.NewTLSServer(w.srv)
	defer ts.Close()
	var logs bytes.Buffer
	m, err := dimutex.NewGCS(bucket, "secret",
		dimutex.WithEndpoint(ts.URL),
		dimutex.WithHTTPClient(ts.Client()),
		dimutex.WithTokenSource(&secretTokens{}),
		dimutex.WithBackoff(5*time.Millisecond, 20*time.Millisecond),
		dimutex.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t)
	w.f.next(anyRequest, status503, resetBefore, dimutextest.Fault{Kind: dimutextest.FailBefore, Status: http.StatusInternalServerError})
	l, err := m.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	w.f.next(anyRequest, status401)
	_, err = m.Inspect(ctx)
	errs = append(errs, err)
	w.f.next(anyRequest, status400)
	errs = append(errs, l.Refresh(ctx))
	_, err = m.TryAcquire(ctx)
	errs = append(errs, err)
	errs = append(errs, m.ForceRelease(ctx, 1))
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	errs = append(errs, l.Release(ctx))

	sent := 0
	for _, r := range w.srv.Requests() {
		if r.Header.Get("Authorization") == "Bearer "+secret {
			sent++
		}
	}
	if sent == 0 {
		t.Fatal("the token was never sent, so this test proves nothing")
	}
	for _, err := range errs {
		if err == nil {
			t.Error("expected an error")
		} else if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("an error carries the token: %v", err)
		}
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Error("no retry was logged, so this test proves nothing")
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "SECRET") {
		t.Errorf("a log line carries the token:\n%s", logs.String())
	}
}

// Redirects are never followed, so a token cannot be carried to another
// host.
func TestRedirectsNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	other.Config.ConnState = func(net.Conn, http.ConnState) { elsewhere.Add(1) }
	other.StartTLS()
	defer other.Close()
	var authorized atomic.Int32
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			authorized.Add(1)
		}
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	m, err := dimutex.NewGCS(bucket, "redirect",
		dimutex.WithEndpoint(redirector.URL),
		dimutex.WithHTTPClient(redirector.Client()),
		dimutex.WithTokenSource(&secretTokens{}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.TryAcquire(timeout(t))
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Fatalf("TryAcquire against a redirect = %v, want a 307 error", err)
	}
	if authorized.Load() == 0 {
		t.Fatal("the token was never sent, so this test proves nothing")
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect was followed: %d connection events at the other host", n)
	}
}

// A token is never sent over plain http: asking for both is a config error.
func TestNoTokenOverPlainHTTP(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	tokens := &secretTokens{}
	_, err := dimutex.NewGCS(bucket, "x", dimutex.WithEndpoint("http://example.test:80"), dimutex.WithTokenSource(tokens))
	if !errors.Is(err, dimutex.ErrInvalidConfig) || !strings.Contains(err.Error(), "https") {
		t.Fatalf("NewGCS = %v, want a config error about https", err)
	}
	if tokens.calls.Load() != 0 {
		t.Error("the token source was called")
	}
}
