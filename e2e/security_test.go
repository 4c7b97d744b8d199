package e2e_test

import (
	"bytes"
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
	"github.com/dimutex/dimutex/e2e/internal/backend"
	"github.com/dimutex/dimutex/e2e/internal/faultproxy"
	"github.com/dimutex/dimutex/e2e/internal/gcstest"
)

// secret is the access token the tests hand out; it must never leak.
const secret = "ya29.SECRET-TOKEN-do-not-log-0123456789"

// countingTokens is an oauth2.TokenSource that counts its calls.
type countingTokens struct{ calls atomic.Int32 }

func (c *countingTokens) Token() (*oauth2.Token, error) {
	c.calls.Add(1)
	return &oauth2.Token{AccessToken: secret, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
}

// No Authorization header reaches an emulator or a plain-http endpoint, even
// when a token source is configured. Not parallel, on either backend: it
// sets the environment.
func TestNoAuthorizationToEmulator(t *testing.T) {
	backend.EachSerial(t, func(t *testing.T, b *backend.Backend) {
		f := newFaultyEnv(t, b, 8)
		tokens := &countingTokens{}
		// An unusable credentials file: if anything looked for credentials, the
		// operations below would fail.
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json")
		host := strings.TrimPrefix(f.front.URL, "http://")
		for _, tc := range []struct {
			name string
			env  string
			opts []dimutex.Option
		}{
			{"STORAGE_EMULATOR_HOST with a token source", host, []dimutex.Option{dimutex.WithTokenSource(tokens)}},
			{"STORAGE_EMULATOR_HOST with a scheme", f.front.URL, nil},
			{"plain-http WithEndpoint", "", []dimutex.Option{dimutex.WithEndpoint(f.front.URL)}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Setenv("STORAGE_EMULATOR_HOST", tc.env)
				f.proxy.ResetStats()
				m, err := dimutex.NewGCS(f.srv.Bucket, "no-auth", tc.opts...)
				if err != nil {
					t.Fatal(err)
				}
				ctx := ctxT(t)
				l, err := m.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.Refresh(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := m.Inspect(ctx); err != nil {
					t.Fatal(err)
				}
				if err := l.Release(ctx); err != nil {
					t.Fatal(err)
				}
				st := f.proxy.Stats()
				if st.Requests < 4 || st.Authorized != 0 {
					t.Errorf("%d of %d requests carried an Authorization header", st.Authorized, st.Requests)
				}
			})
		}
		if n := tokens.calls.Load(); n != 0 {
			t.Errorf("the token source was asked for %d tokens for an emulator", n)
		}
	})
}

// Over https the token is sent, but it never appears in an error or a log
// line, even at debug level and through retries and failures.
func TestTokenNeverInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		e := newEnv(t, b)
		p := faultproxy.New(e.srv.URL, proxyOptions(b, 9)...)
		front := httptest.NewTLSServer(p)
		t.Cleanup(front.Close)
		t.Cleanup(func() { p.Close() })
		var logs bytes.Buffer
		m, err := dimutex.NewGCS(e.srv.Bucket, "secret",
			dimutex.WithEndpoint(front.URL),
			dimutex.WithHTTPClient(front.Client()),
			dimutex.WithTokenSource(&countingTokens{}),
			dimutex.WithBackoff(5*time.Millisecond, 20*time.Millisecond),
			dimutex.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		)
		if err != nil {
			t.Fatal(err)
		}
		ctx := ctxT(t)
		var errs []error
		for _, fault := range []faultproxy.Fault{faultproxy.Status503, faultproxy.ResetBefore, faultproxy.Status429} {
			p.Add(faultproxy.Rule{Fault: fault, Next: 1})
		}
		l, err := m.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p.Add(faultproxy.Rule{Fault: faultproxy.Status401, Next: 1})
		_, err = m.Inspect(ctx)
		errs = append(errs, err)
		p.Add(faultproxy.Rule{Fault: faultproxy.Status400, Next: 1})
		errs = append(errs, l.Refresh(ctx))
		_, err = m.TryAcquire(ctx)
		errs = append(errs, err)
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		errs = append(errs, l.Release(ctx))
		if p.Stats().Authorized == 0 {
			t.Fatal("the token was never sent, so this test proves nothing")
		}
		for _, err := range errs {
			if err == nil {
				t.Error("expected an error")
			} else if strings.Contains(err.Error(), secret) {
				t.Errorf("an error carries the token: %v", err)
			}
		}
		if !strings.Contains(logs.String(), "retrying") {
			t.Error("no retry was logged, so this test proves nothing")
		}
		if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "SECRET") {
			t.Errorf("a log line carries the token:\n%s", logs.String())
		}
	})
}

// Redirects are never followed, so a token cannot be carried to another host.
func TestRedirectsNotFollowed(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	other.Config.ConnState = func(net.Conn, http.ConnState) { elsewhere.Add(1) }
	t.Cleanup(other.Close)
	var authorized atomic.Int32
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			authorized.Add(1)
		}
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	m, err := dimutex.NewGCS(gcstest.Bucket, "redirect",
		dimutex.WithEndpoint(redirector.URL),
		dimutex.WithHTTPClient(redirector.Client()),
		dimutex.WithTokenSource(&countingTokens{}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.TryAcquire(ctxT(t))
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
	t.Parallel()
	_, err := dimutex.NewGCS(gcstest.Bucket, "x", dimutex.WithEndpoint("http://example.test:80"), dimutex.WithTokenSource(&countingTokens{}))
	if !errors.Is(err, dimutex.ErrInvalidConfig) || !strings.Contains(err.Error(), "https") {
		t.Fatalf("NewGCS = %v, want a config error about https", err)
	}
}
