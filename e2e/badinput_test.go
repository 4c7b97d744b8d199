package e2e_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/auth"
	"github.com/dimutex/dimutex/e2e/internal/gcstest"
)

// Bad input gets a clear error that names the bad value, and no request is
// sent. Not parallel: some cases set STORAGE_EMULATOR_HOST.
func TestBadInput(t *testing.T) {
	const okBucket, okName = "good-bucket", "good/name"
	type tc struct {
		bucket, name string
		opts         []dimutex.Option
		emulatorHost string // set STORAGE_EMULATOR_HOST to this if not empty
		want         string // the error must contain this
	}
	b := func(bucket, want string) tc { return tc{bucket: bucket, name: okName, want: want} }
	o := func(name, want string) tc { return tc{bucket: okBucket, name: name, want: want} }
	opt := func(want string, opts ...dimutex.Option) tc {
		return tc{bucket: okBucket, name: okName, opts: opts, want: want}
	}
	emu := func(host, want string) tc { return tc{bucket: okBucket, name: okName, emulatorHost: host, want: want} }
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
		"TTL zero":                    opt("WithTTL(0s)", dimutex.WithTTL(0)),
		"TTL negative":                opt("WithTTL(-1s)", dimutex.WithTTL(-time.Second)),
		"refresh negative":            opt("WithRefreshInterval(-1s)", dimutex.WithRefreshInterval(-time.Second)),
		"refresh equal to TTL":        opt("WithRefreshInterval(10s): must be less than the TTL 10s", dimutex.WithTTL(10*time.Second), dimutex.WithRefreshInterval(10*time.Second)),
		"refresh above TTL":           opt("WithRefreshInterval(2m0s)", dimutex.WithRefreshInterval(2*time.Minute)),
		"backoff min above max":       opt("WithBackoff(2s, 1s): min must not exceed max", dimutex.WithBackoff(2*time.Second, time.Second)),
		"backoff min zero":            opt("WithBackoff(0s, 1s)", dimutex.WithBackoff(0, time.Second)),
		"attempt timeout zero":        opt("WithAttemptTimeout(0s)", dimutex.WithAttemptTimeout(0)),
		"owner with newline":          opt(`WithOwner("a\nb")`, dimutex.WithOwner("a\nb")),
		"owner too long":              opt("the limit is 512", dimutex.WithOwner(strings.Repeat("o", 513))),
		"nil HTTP client":             opt("WithHTTPClient(nil)", dimutex.WithHTTPClient((*http.Client)(nil))),
		"nil option":                  opt("nil Option", nil),
		"endpoint empty":              opt(`WithEndpoint("")`, dimutex.WithEndpoint("")),
		"endpoint bad scheme":         opt(`"ftp://example.com"`, dimutex.WithEndpoint("ftp://example.com")),
		"endpoint without scheme":     opt(`"example.com"`, dimutex.WithEndpoint("example.com")),
		"endpoint with password":      opt("user:xxxxx@", dimutex.WithEndpoint("https://user:hunter2@example.com")),
		"endpoint with query":         opt(`"https://example.com?x=1"`, dimutex.WithEndpoint("https://example.com?x=1")),
		"token over plain http":       opt("only sent over https", dimutex.WithEndpoint("http://example.com"), dimutex.WithTokenSource(&countingTokens{})),
		"emulator host bad port":      emu("localhost:99999", `STORAGE_EMULATOR_HOST="localhost:99999"`),
		"emulator host no port":       emu("localhost:", `STORAGE_EMULATOR_HOST="localhost:"`),
		"emulator host letters port":  emu("localhost:abc", `STORAGE_EMULATOR_HOST="localhost:abc"`),
		"emulator host bad scheme":    emu("ftp://localhost:1", `STORAGE_EMULATOR_HOST="ftp://localhost:1"`),
		"emulator host no host":       emu("http://", `STORAGE_EMULATOR_HOST="http://"`),
		"emulator host with space":    emu("local host:1", `STORAGE_EMULATOR_HOST="local host:1"`),
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv("STORAGE_EMULATOR_HOST", c.emulatorHost)
			rec := &gcstest.Recorder{}
			opts := append([]dimutex.Option{dimutex.WithHTTPClient(rec.Client())}, c.opts...)
			_, err := dimutex.NewGCS(c.bucket, c.name, opts...)
			if !errors.Is(err, dimutex.ErrInvalidConfig) {
				t.Fatalf("NewGCS = %v, want an error matching ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows a password", err)
			}
			if n := len(rec.Requests()); n != 0 {
				t.Errorf("%d requests sent", n)
			}
		})
	}
	t.Logf("%d bad inputs rejected before any request", len(cases))
}

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
			rec := &gcstest.Recorder{}
			m, err := dimutex.NewGCS("good-bucket", "lock", dimutex.WithHTTPClient(rec.Client()),
				dimutex.WithEndpoint("https://127.0.0.1:1"))
			if err != nil {
				t.Fatalf("NewGCS resolves credentials lazily, but failed: %v", err)
			}
			_, err = m.TryAcquire(ctxT(t))
			switch {
			case !errors.Is(err, auth.ErrBadCredentials):
				t.Fatalf("TryAcquire = %v, want ErrBadCredentials", err)
			case !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), f.want):
				t.Errorf("error %q does not name %s and say %q", err, path, f.want)
			case strings.Contains(err.Error(), "hunter2"):
				t.Errorf("error %q shows the file's contents", err)
			}
			if n := len(rec.Requests()); n != 0 {
				t.Errorf("%d requests sent", n)
			}
		})
	}
}
