package dimutex_test

// Bad input is refused by the constructors, and by the calls that take a
// value, before any request, with an error that names the bad value.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/auth"
	"github.com/dimutex/dimutex/dimutextest"
)

// guard is an http.RoundTripper that fails the test for any request sent
// once it is armed; until then it passes requests to next.
type guard struct {
	t     testing.TB
	next  http.RoundTripper
	armed atomic.Bool
}

func noRequests(t testing.TB) *guard {
	g := &guard{t: t}
	g.armed.Store(true)
	return g
}

func (g *guard) RoundTrip(r *http.Request) (*http.Response, error) {
	if g.armed.Load() || g.next == nil {
		g.t.Errorf("a request was sent: %s %s", r.Method, r.URL)
		return nil, errors.New("test: no request may be sent")
	}
	return g.next.RoundTrip(r)
}

// Bad buckets, names, options and STORAGE_EMULATOR_HOST values are refused
// by every constructor (NewGCS, NewElection, NewSemaphore, and List, which
// takes the same options), before any request, with an error matching
// ErrInvalidConfig that names the bad value. Not parallel: some cases set
// STORAGE_EMULATOR_HOST.
func TestBadInput(t *testing.T) {
	const okBucket, okName = "good-bucket", "good/name"
	type tc struct {
		bucket, name string
		opts         []dimutex.Option
		emulatorHost string // STORAGE_EMULATOR_HOST
		want         string // the error must contain this
	}
	b := func(bucket, want string) tc { return tc{bucket: bucket, name: okName, want: want} }
	o := func(name, want string) tc { return tc{bucket: okBucket, name: name, want: want} }
	opt := func(want string, opts ...dimutex.Option) tc {
		return tc{bucket: okBucket, name: okName, opts: opts, want: want}
	}
	emu := func(host, want string) tc { return tc{bucket: okBucket, name: okName, emulatorHost: host, want: want} }
	longOwner := strings.Repeat("o", 600)
	cases := map[string]tc{
		"bucket empty":                b("", `invalid bucket name ""`),
		"bucket too short":            b("ab", `"ab": must be at least 3`),
		"bucket too long":             b(strings.Repeat("a", 64), "at most 63"),
		"bucket dotted part too long": b(strings.Repeat("a", 64)+".com", "each dot-separated part"),
		"bucket uppercase":            b("MyBucket", `character 'M'`),
		"bucket bad character":        b("my!bucket", `character '!'`),
		"bucket space":                b("my bucket", `character ' '`),
		"bucket leading dash":         b("-bucket", "start and end"),
		"bucket trailing dot":         b("bucket.", "start and end"),
		"bucket empty part":           b("a..b", "empty dot-separated"),
		"bucket IP address":           b("192.168.5.4", "IP address"),
		"bucket goog prefix":          b("goog-locks", `"goog"`),
		"bucket contains google":      b("my-google-locks", `"google"`),
		"name empty":                  o("", `invalid object name ""`),
		"name dot":                    o(".", `"." or ".."`),
		"name dot dot":                o("..", `"." or ".."`),
		"name acme challenge":         o(".well-known/acme-challenge/x", "acme-challenge"),
		"name line feed":              o("a\nb", "line feed"),
		"name carriage return":        o("a\rb", "carriage return"),
		"name too long":               o(strings.Repeat("é", 513), "1026 bytes; the limit is 1024"),
		"name invalid UTF-8":          o("bad\xffname", "valid UTF-8"),
		"TTL zero":                    opt("WithTTL(0s): the TTL must be at least 1s", dimutex.WithTTL(0)),
		"TTL negative":                opt("WithTTL(-1s)", dimutex.WithTTL(-time.Second)),
		"TTL below a second":          opt("WithTTL(999ms): the TTL must be at least 1s", dimutex.WithTTL(999*time.Millisecond)),
		"TTL above a day":             opt("WithTTL(24h0m1s): the TTL must be at most 24h0m0s", dimutex.WithTTL(24*time.Hour+time.Second)),
		"refresh negative":            opt("WithRefreshInterval(-1s)", dimutex.WithRefreshInterval(-time.Second)),
		"refresh equal to TTL":        opt("WithRefreshInterval(10s): must be less than the TTL 10s", dimutex.WithTTL(10*time.Second), dimutex.WithRefreshInterval(10*time.Second)),
		"refresh above TTL":           opt("WithRefreshInterval(2m0s)", dimutex.WithRefreshInterval(2*time.Minute)),
		"backoff min above max":       opt("WithBackoff(2s, 1s): min must not exceed max", dimutex.WithBackoff(2*time.Second, time.Second)),
		"backoff min zero":            opt("WithBackoff(0s, 1s)", dimutex.WithBackoff(0, time.Second)),
		"attempt timeout zero":        opt("WithAttemptTimeout(0s)", dimutex.WithAttemptTimeout(0)),
		"owner with newline":          opt(`WithOwner("a\nb")`, dimutex.WithOwner("a\nb")),
		"owner with tab":              opt("control character U+0009", dimutex.WithOwner("a\tb")),
		"owner invalid UTF-8":         opt(`WithOwner("a\xff"): must be valid UTF-8`, dimutex.WithOwner("a\xff")),
		"owner too long":              opt(`WithOwner("`+longOwner[:64]+`"… (600 bytes)): is 600 bytes; the limit is 512`, dimutex.WithOwner(longOwner)),
		"value too long":              opt("… (1025 bytes)): is 1025 bytes; the limit is 1024", dimutex.WithValue(strings.Repeat("v", 1025))),
		"value invalid UTF-8":         opt(`WithValue("\xfe"): must be valid UTF-8`, dimutex.WithValue("\xfe")),
		"nil HTTP client":             opt("WithHTTPClient(nil)", dimutex.WithHTTPClient((*http.Client)(nil))),
		"nil option":                  opt("nil Option", nil),
		"nil option among others":     opt("nil Option", dimutex.WithTTL(time.Minute), nil),
		"endpoint empty":              opt(`WithEndpoint("")`, dimutex.WithEndpoint("")),
		"endpoint bad scheme":         opt(`"ftp://example.com"`, dimutex.WithEndpoint("ftp://example.com")),
		"endpoint without scheme":     opt(`"example.com"`, dimutex.WithEndpoint("example.com")),
		"endpoint with userinfo":      opt("https://xxxxx@example.com", dimutex.WithEndpoint("https://user:hunter2@example.com")),
		"endpoint with query":         opt(`"https://example.com?xxxxx"`, dimutex.WithEndpoint("https://example.com?x=1")),
		"token over plain http":       opt("only sent over https", dimutex.WithEndpoint("http://example.com"), dimutex.WithTokenSource(&secretTokens{})),
		"emulator host bad port":      emu("localhost:99999", `STORAGE_EMULATOR_HOST="localhost:99999"`),
		"emulator host no port":       emu("localhost:", `STORAGE_EMULATOR_HOST="localhost:"`),
		"emulator host letters port":  emu("localhost:abc", `STORAGE_EMULATOR_HOST="localhost:abc"`),
		"emulator host bad scheme":    emu("ftp://localhost:1", `STORAGE_EMULATOR_HOST="ftp://localhost:1"`),
		"emulator host no host":       emu("http://", `STORAGE_EMULATOR_HOST="http://"`),
		"emulator host with space":    emu("local host:1", `STORAGE_EMULATOR_HOST="local host:1"`),
	}
	type constructor struct {
		name string
		make func(c tc, opts []dimutex.Option) error
		// names reports whether the constructor takes a lock name.
		names bool
	}
	constructors := []constructor{
		{"NewGCS", func(c tc, opts []dimutex.Option) error {
			_, err := dimutex.NewGCS(c.bucket, c.name, opts...)
			return err
		}, true},
		{"NewElection", func(c tc, opts []dimutex.Option) error {
			_, err := dimutex.NewElection(c.bucket, c.name, opts...)
			return err
		}, true},
		{"NewSemaphore", func(c tc, opts []dimutex.Option) error {
			_, err := dimutex.NewSemaphore(c.bucket, c.name, 3, opts...)
			return err
		}, true},
		{"List", func(c tc, opts []dimutex.Option) error {
			_, err := dimutex.List(context.Background(), c.bucket, "", opts...)
			return err
		}, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv("STORAGE_EMULATOR_HOST", c.emulatorHost)
			for _, k := range constructors {
				if c.name != okName && !k.names {
					continue
				}
				opts := append([]dimutex.Option{dimutex.WithHTTPClient(&http.Client{Transport: noRequests(t)})}, c.opts...)
				err := k.make(c, opts)
				if !errors.Is(err, dimutex.ErrInvalidConfig) {
					t.Fatalf("%s = %v, want an error matching ErrInvalidConfig", k.name, err)
				}
				var ce *dimutex.ConfigError
				if !errors.As(err, &ce) {
					t.Errorf("%s: %T is not a *ConfigError", k.name, err)
				}
				if !strings.HasPrefix(err.Error(), "dimutex: ") || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: error %q does not say %q", k.name, err, c.want)
				}
				if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), strings.Repeat("o", 65)) || strings.Contains(err.Error(), strings.Repeat("v", 65)) {
					t.Errorf("%s: error %q shows a password or a long value in full", k.name, err)
				}
			}
		})
	}
	t.Logf("%d bad inputs rejected before any request", len(cases))
}

// The TTL is from MinTTL (1 s) to MaxTTL (24 h), both included.
func TestTTLBounds(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want string // "" if accepted
	}{
		{-time.Second, "dimutex: WithTTL(-1s): the TTL must be at least 1s"},
		{0, "dimutex: WithTTL(0s): the TTL must be at least 1s"},
		{dimutex.MinTTL - time.Nanosecond, "dimutex: WithTTL(999.999999ms): the TTL must be at least 1s"},
		{dimutex.MinTTL, ""},
		{dimutex.DefaultTTL, ""},
		{dimutex.MaxTTL, ""},
		{dimutex.MaxTTL + time.Nanosecond, "dimutex: WithTTL(24h0m0.000000001s): the TTL must be at most 24h0m0s"},
	} {
		_, err := dimutex.NewGCS("b-b", "n", dimutex.WithTTL(tc.ttl), dimutex.WithHTTPClient(&http.Client{Transport: noRequests(t)}))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("WithTTL(%v) = %v, want it accepted", tc.ttl, err)
		case tc.want != "" && (!errors.Is(err, dimutex.ErrInvalidConfig) || err.Error() != tc.want):
			t.Errorf("WithTTL(%v) = %v, want %q", tc.ttl, err, tc.want)
		}
	}
}

// ConfigError.Option names what was bad, as its documentation says.
func TestConfigErrorNamesTheOption(t *testing.T) {
	noReq := dimutex.WithHTTPClient(&http.Client{Transport: noRequests(t)})
	for _, tc := range []struct {
		name   string
		env    string
		make   func() error
		option string
	}{
		{"bucket", "", func() error { _, err := dimutex.NewGCS("B", "n", noReq); return err }, "bucket"},
		{"name", "", func() error { _, err := dimutex.NewGCS("b-b", "", noReq); return err }, "name"},
		{"size", "", func() error { _, err := dimutex.NewSemaphore("b-b", "s", 0, noReq); return err }, "size"},
		{"WithTTL", "", func() error { _, err := dimutex.NewGCS("b-b", "n", noReq, dimutex.WithTTL(0)); return err }, "WithTTL"},
		{"WithEndpoint empty", "", func() error { _, err := dimutex.NewGCS("b-b", "n", noReq, dimutex.WithEndpoint("")); return err }, "WithEndpoint"},
		{"WithEndpoint malformed", "", func() error {
			_, err := dimutex.NewGCS("b-b", "n", noReq, dimutex.WithEndpoint("ftp://x"))
			return err
		}, "WithEndpoint"},
		{"STORAGE_EMULATOR_HOST", "localhost:99999", func() error { _, err := dimutex.NewGCS("b-b", "n", noReq); return err }, "STORAGE_EMULATOR_HOST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORAGE_EMULATOR_HOST", tc.env)
			var ce *dimutex.ConfigError
			if err := tc.make(); !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConfigError", err)
			}
			if ce.Option != tc.option {
				t.Errorf("Option = %q, want %q", ce.Option, tc.option)
			}
		})
	}
}

// A semaphore's size is 1 to MaxSlots, and its name must leave room for the
// slots' names ("NAME/slot-000"); both are checked before any request.
func TestBadSemaphore(t *testing.T) {
	noReq := dimutex.WithHTTPClient(&http.Client{Transport: noRequests(t)})
	for _, tc := range []struct {
		name string
		size int
		want string
	}{
		{"s", 0, "dimutex: size(0): must be from 1 to 1000"},
		{"s", -1, "dimutex: size(-1): must be from 1 to 1000"},
		{"s", dimutex.MaxSlots + 1, "dimutex: size(1001): must be from 1 to 1000"},
		{strings.Repeat("n", 1020), 3, `dimutex: name("` + strings.Repeat("n", 64) + `"… (1020 bytes)): cannot hold the slot names: invalid object name`},
	} {
		_, err := dimutex.NewSemaphore("b-b", tc.name, tc.size, noReq)
		if !errors.Is(err, dimutex.ErrInvalidConfig) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("NewSemaphore(%d-byte name, %d) = %v, want an error starting %q", len(tc.name), tc.size, err, tc.want)
		}
	}
	for _, size := range []int{1, dimutex.MaxSlots} {
		if _, err := dimutex.NewSemaphore("b-b", strings.Repeat("n", 1024-len("/slot-000")), size, noReq); err != nil {
			t.Errorf("NewSemaphore of size %d with the longest name = %v", size, err)
		}
	}
}

// The calls that publish a value (Campaign, Run, Proclaim) refuse one over
// MaxValueBytes or not UTF-8, before any request, naming the call.
func TestBadValues(t *testing.T) {
	bad := map[string]string{
		"too long":      strings.Repeat("v", dimutex.MaxValueBytes+1),
		"invalid UTF-8": "\xff\xfe",
	}
	synctest.Test(t, func(t *testing.T) {
		srv := dimutextest.NewServer(dimutextest.WithBucket(bucket))
		g := &guard{t: t, next: srv.Transport()}
		e, err := dimutex.NewElection(bucket, "e", dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(&http.Client{Transport: g}))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		l, err := e.Campaign(ctx, "ok")
		if err != nil {
			t.Fatal(err)
		}
		g.armed.Store(true)
		for what, v := range bad {
			calls := map[string]error{
				"Campaign": func() error { _, err := e.Campaign(ctx, v); return err }(),
				"Run":      e.Run(ctx, v, func(context.Context) error { t.Error("Run ran fn"); return nil }),
				"Proclaim": l.Proclaim(ctx, v),
			}
			for call, err := range calls {
				var ce *dimutex.ConfigError
				want := fmt.Sprintf("dimutex: %s(", call)
				if !errors.Is(err, dimutex.ErrInvalidConfig) || !errors.As(err, &ce) || ce.Option != call || !strings.HasPrefix(err.Error(), want) {
					t.Errorf("%s with a value %s = %v, want a *ConfigError starting %q", call, what, err, want)
				}
				if strings.Contains(err.Error(), strings.Repeat("v", 65)) {
					t.Errorf("%s: error shows the whole value", call)
				}
			}
		}
		if l.Value() != "ok" {
			t.Errorf("Value = %q after refused Proclaims, want %q", l.Value(), "ok")
		}
		g.armed.Store(false)
		release(t, l)
	})
}

// The arguments of calls other than constructors are checked before any
// request, too.
func TestBadArguments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := dimutextest.NewServer(dimutextest.WithBucket(bucket))
		g := &guard{t: t, next: srv.Transport()}
		opts := []dimutex.Option{dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(&http.Client{Transport: g})}
		m, err := dimutex.NewGCS(bucket, "n", opts...)
		if err != nil {
			t.Fatal(err)
		}
		g.armed.Store(true)
		ctx := context.Background()
		for _, tt := range []struct {
			call string
			err  error
			want string
		}{
			{"ForceRelease(0)", m.ForceRelease(ctx, 0), `dimutex: ForceRelease(0): the generation must be positive`},
			{"ForceRelease(-1)", m.ForceRelease(ctx, -1), `dimutex: ForceRelease(-1): the generation must be positive`},
			{"List of a long prefix", second(dimutex.List(ctx, bucket, strings.Repeat("p", 1025), opts...)), `dimutex: List("ppp`},
			{"List of invalid UTF-8", second(dimutex.List(ctx, bucket, "a\xff", opts...)), `dimutex: List("a\xff"): the prefix must be valid UTF-8`},
		} {
			if !errors.Is(tt.err, dimutex.ErrInvalidConfig) || tt.err == nil || !strings.HasPrefix(tt.err.Error(), tt.want) {
				t.Errorf("%s = %v, want an ErrInvalidConfig starting %q", tt.call, tt.err, tt.want)
			}
		}
	})
}

func second[T any](_ T, err error) error { return err }

// A bad credentials file is found at the first operation, which fails with
// an error naming the file but not its contents, before any request.
func TestBadCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	files := map[string]struct{ content, want string }{
		"not JSON":     {"-----BEGIN PRIVATE KEY----- hunter2", "not valid JSON"},
		"unknown type": {`{"type":"hunter2_account","private_key":"hunter2"}`, "unsupported"},
		"empty":        {"", "empty"},
	}
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	for name, f := range files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte(f.content), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
			m, err := dimutex.NewGCS("good-bucket", "lock", dimutex.WithHTTPClient(&http.Client{Transport: noRequests(t)}),
				dimutex.WithEndpoint("https://127.0.0.1:1"))
			if err != nil {
				t.Fatalf("NewGCS resolves credentials lazily, but failed: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = m.TryAcquire(ctx)
			switch {
			case !errors.Is(err, auth.ErrBadCredentials):
				t.Fatalf("TryAcquire = %v, want ErrBadCredentials", err)
			case !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), f.want):
				t.Errorf("error %q does not name %s and say %q", err, path, f.want)
			case strings.Contains(err.Error(), "hunter2"):
				t.Errorf("error %q shows the file's contents", err)
			}
		})
	}
}
