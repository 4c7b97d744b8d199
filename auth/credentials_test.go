package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// secret is written into credentials files and tokens; it must never show up
// in an error or in String output.
const secret = "SECRET-MARKER-do-not-print"

// fakeTokenSource counts Token calls. If gate is non-nil, Token waits for it
// to be closed.
type fakeTokenSource struct {
	calls  atomic.Int32
	gate   chan struct{}
	token  string
	expiry time.Time
	err    error
}

func (f *fakeTokenSource) Token() (*oauth2.Token, error) {
	f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	if f.err != nil {
		return nil, f.err
	}
	return &oauth2.Token{AccessToken: f.token, TokenType: "Bearer", Expiry: f.expiry}, nil
}

// fakeFinder stands in for google.FindDefaultCredentialsWithParams, so tests
// never probe the real GCE metadata server. It counts calls, waits for gate
// if set, and fails its first failures calls the way the library does when
// it is not on GCE.
type fakeFinder struct {
	calls    atomic.Int32
	gate     chan struct{}
	failures int32
	ts       oauth2.TokenSource
}

func (f *fakeFinder) find(ctx context.Context) (oauth2.TokenSource, error) {
	n := f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	if n <= f.failures || f.ts == nil {
		return nil, errors.New("not on Google Cloud")
	}
	return f.ts, nil
}

// isolateADC makes Application Default Credentials find nothing on this
// machine: no $GOOGLE_APPLICATION_CREDENTIALS, an empty home, and a metadata
// host on loopback where nothing listens, in case anything gets that far.
// It returns the gcloud ADC file path, which does not exist.
func isolateADC(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("APPDATA", home)
	t.Setenv(CredentialsEnv, "")
	t.Setenv("GCE_METADATA_HOST", "127.0.0.1:1")
	return gcloudADCPath()
}

func newRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func httpsRequest(t *testing.T) *http.Request {
	return newRequest(t, "https://storage.googleapis.com/storage/v1/b/bucket/o/lock")
}

func TestNewCredentialsDoesNoIO(t *testing.T) {
	fake := &fakeTokenSource{token: "tok"}
	c := NewCredentials(fake)
	_ = c.String()
	if n := fake.calls.Load(); n != 0 {
		t.Fatalf("token source called %d times before the first Authorize", n)
	}

	// With ADC, a missing file is only noticed by Authorize.
	isolateADC(t)
	missing := filepath.Join(t.TempDir(), "missing.json")
	t.Setenv(CredentialsEnv, missing)
	c = NewCredentials(nil)
	if err := c.Authorize(context.Background(), httpsRequest(t)); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("Authorize: got %v, want ErrBadCredentials", err)
	}
}

func TestAuthorizeReusesTokensUntilNearExpiry(t *testing.T) {
	tests := []struct {
		name      string
		expiry    time.Duration // from now; 0 means no expiry
		calls     int
		wantCalls int32
	}{
		{name: "token without expiry is fetched once", expiry: 0, calls: 5, wantCalls: 1},
		{name: "token valid for an hour is fetched once", expiry: time.Hour, calls: 5, wantCalls: 1},
		{name: "token within 10s of expiry is fetched every time", expiry: 5 * time.Second, calls: 3, wantCalls: 3},
		{name: "expired token is fetched every time", expiry: -time.Minute, calls: 3, wantCalls: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeTokenSource{token: "tok-1"}
			if tt.expiry != 0 {
				fake.expiry = time.Now().Add(tt.expiry)
			}
			c := NewCredentials(fake)
			for range tt.calls {
				req := httpsRequest(t)
				if err := c.Authorize(context.Background(), req); err != nil {
					t.Fatal(err)
				}
				if got, want := req.Header.Get("Authorization"), "Bearer tok-1"; got != want {
					t.Fatalf("Authorization = %q, want %q", got, want)
				}
			}
			if got := fake.calls.Load(); got != tt.wantCalls {
				t.Errorf("token source called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestAuthorizeRefusesNonHTTPS(t *testing.T) {
	tests := []string{
		"http://storage.googleapis.com/storage/v1/b/bucket/o/lock",
		"HTTP://storage.googleapis.com/x",
		"http://127.0.0.1:4443/storage/v1/b/bucket/o/lock",
		"ws://storage.googleapis.com/x",
		"/storage/v1/b/bucket/o/lock",
	}
	for _, url := range tests {
		fake := &fakeTokenSource{token: secret}
		c := NewCredentials(fake)
		req := newRequest(t, url)
		err := c.Authorize(context.Background(), req)
		if !errors.Is(err, ErrInsecureTransport) {
			t.Errorf("%s: got %v, want ErrInsecureTransport", url, err)
			continue
		}
		if !strings.Contains(err.Error(), "want https") {
			t.Errorf("%s: unclear message %q", url, err)
		}
		if h, ok := req.Header["Authorization"]; ok {
			t.Errorf("%s: Authorization header set to %q", url, h)
		}
		if n := fake.calls.Load(); n != 0 {
			t.Errorf("%s: token source called %d times", url, n)
		}
	}

	if err := NewCredentials(&fakeTokenSource{}).Authorize(context.Background(), &http.Request{}); !errors.Is(err, ErrInsecureTransport) {
		t.Errorf("request without URL: got %v, want ErrInsecureTransport", err)
	}
}

func TestAuthorizeInsecureMessage(t *testing.T) {
	err := NewCredentials(&fakeTokenSource{}).Authorize(context.Background(), newRequest(t, "http://127.0.0.1:4443/storage/v1/b"))
	want := `auth: refusing to send credentials to http://127.0.0.1:4443: scheme is "http", want https`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestAuthorizeTokenSourceErrors(t *testing.T) {
	boom := errors.New("token server said no")
	tests := []struct {
		name string
		ts   *fakeTokenSource
		is   error
		want string
	}{
		{
			name: "error is wrapped and names the source",
			ts:   &fakeTokenSource{err: boom},
			is:   boom,
			want: "auth: getting an access token from the WithTokenSource option: token server said no",
		},
		{
			name: "empty token is refused",
			ts:   &fakeTokenSource{token: ""},
			want: "auth: the WithTokenSource option returned an empty access token",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httpsRequest(t)
			err := NewCredentials(tt.ts).Authorize(context.Background(), req)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got  %v\nwant %s", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if h, ok := req.Header["Authorization"]; ok {
				t.Errorf("Authorization header set to %q", h)
			}
		})
	}
}

func TestAuthorizeConcurrentFirstCallsFetchOnce(t *testing.T) {
	fake := &fakeTokenSource{token: "tok", gate: make(chan struct{})}
	c := NewCredentials(fake)
	errs := authorizeConcurrently(t, c, 50, func() { close(fake.gate) })
	for err := range errs {
		t.Error(err)
	}
	if n := fake.calls.Load(); n != 1 {
		t.Errorf("token source called %d times, want 1", n)
	}
}

func TestADCResolvesOnceUnderConcurrency(t *testing.T) {
	isolateADC(t)
	finder := &fakeFinder{gate: make(chan struct{}), ts: &fakeTokenSource{token: "tok"}}
	c := &Credentials{findMetadata: finder.find}
	errs := authorizeConcurrently(t, c, 50, func() { close(finder.gate) })
	for err := range errs {
		t.Error(err)
	}
	if n := finder.calls.Load(); n != 1 {
		t.Errorf("resolved %d times, want 1", n)
	}
	if n := finder.ts.(*fakeTokenSource).calls.Load(); n != 1 {
		t.Errorf("token source called %d times, want 1", n)
	}
}

// authorizeConcurrently runs n Authorize calls at once, calls release once
// they have all started, and returns their errors.
func authorizeConcurrently(t *testing.T, c *Credentials, n int, release func()) chan error {
	t.Helper()
	errs := make(chan error, n)
	var started, done sync.WaitGroup
	for range n {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequest(http.MethodGet, "https://storage.googleapis.com/x", nil)
			started.Done()
			if err := c.Authorize(context.Background(), req); err != nil {
				errs <- err
			} else if req.Header.Get("Authorization") != "Bearer tok" {
				errs <- fmt.Errorf("Authorization = %q", req.Header.Get("Authorization"))
			}
		}()
	}
	started.Wait()
	release()
	done.Wait()
	close(errs)
	return errs
}

func TestADCFailureIsNotCached(t *testing.T) {
	isolateADC(t)
	finder := &fakeFinder{failures: 1, ts: &fakeTokenSource{token: "tok"}}
	c := &Credentials{findMetadata: finder.find}
	steps := []struct {
		wantErr   error
		wantCalls int32
	}{
		{wantErr: ErrNoCredentials, wantCalls: 1}, // not on GCE, say
		{wantErr: nil, wantCalls: 2},              // tried again, found
		{wantErr: nil, wantCalls: 2},              // cached
	}
	for i, s := range steps {
		err := c.Authorize(context.Background(), httpsRequest(t))
		if !errors.Is(err, s.wantErr) || (s.wantErr == nil && err != nil) {
			t.Fatalf("call %d: got %v, want %v", i+1, err, s.wantErr)
		}
		if n := finder.calls.Load(); n != s.wantCalls {
			t.Fatalf("call %d: resolved %d times, want %d", i+1, n, s.wantCalls)
		}
	}
}

func TestAuthorizeReturnsWhenContextEndsDuringResolution(t *testing.T) {
	isolateADC(t)
	finder := &fakeFinder{gate: make(chan struct{}), ts: &fakeTokenSource{token: "tok"}}
	c := &Credentials{findMetadata: finder.find}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req := httpsRequest(t)
	if err := c.Authorize(ctx, req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if _, ok := req.Header["Authorization"]; ok {
		t.Fatal("Authorization header set")
	}

	// The resolution carried on; a later call joins it rather than starting
	// another one.
	go func() { time.Sleep(10 * time.Millisecond); close(finder.gate) }()
	if err := c.Authorize(context.Background(), httpsRequest(t)); err != nil {
		t.Fatal(err)
	}
	if n := finder.calls.Load(); n != 1 {
		t.Errorf("resolved %d times, want 1", n)
	}
}

func TestAuthorizeReturnsWhenContextEndsDuringTokenFetch(t *testing.T) {
	fake := &fakeTokenSource{token: "tok", gate: make(chan struct{})}
	c := NewCredentials(fake)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req := httpsRequest(t)
	if err := c.Authorize(ctx, req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if _, ok := req.Header["Authorization"]; ok {
		t.Fatal("Authorization header set")
	}

	// The abandoned fetch finishes and its token is reused.
	close(fake.gate)
	if err := c.Authorize(context.Background(), httpsRequest(t)); err != nil {
		t.Fatal(err)
	}
	if n := fake.calls.Load(); n != 1 {
		t.Errorf("token source called %d times, want 1", n)
	}
}

func TestAuthorizeWithDoneContext(t *testing.T) {
	fake := &fakeTokenSource{token: "tok"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewCredentials(fake).Authorize(ctx, httpsRequest(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if n := fake.calls.Load(); n != 0 {
		t.Errorf("token source called %d times, want 0", n)
	}
}

func TestBadCredentialsFile(t *testing.T) {
	tests := []struct {
		name    string
		content string // written to the file named by $GOOGLE_APPLICATION_CREDENTIALS
		path    string // "missing" or "dir" instead of a file with content
		reason  string
		// allTypes resolves as ApplicationDefault does.
		allTypes bool
	}{
		{name: "not JSON", content: secret + " is not JSON", reason: "not valid JSON (syntax error at byte offset 1)"},
		{name: "truncated JSON", content: `{"type":"service_account","private_key":"` + secret, reason: "not valid JSON (syntax error at byte offset 67)"},
		{name: "empty", content: "", reason: "file is empty"},
		{name: "only whitespace", content: " \n\t", reason: "file is empty"},
		{name: "JSON array", content: `["` + secret + `"]`, reason: "not a JSON object"},
		{name: "JSON null", content: `null`, reason: "not a JSON object"},
		{name: "no type", content: `{"private_key":"` + secret + `"}`, reason: `no "type" field (want one of service_account, authorized_user,`},
		{name: "unknown type, not quoted", content: `{"type":"` + secret + `"}`, reason: `unsupported "type" (want one of service_account, authorized_user,`},
		{name: "type not a string", content: `{"type":["` + secret + `"]}`, reason: `"type" is not a string`},
		{name: "OAuth client ID file", content: `{"installed":{"client_secret":"` + secret + `","redirect_uris":["http://localhost"]}}`, reason: `an OAuth client ID file ("installed"), not a credentials file`},
		{name: "service account without key", content: `{"type":"service_account","client_email":"a@b.c","private_key_id":"` + secret + `"}`, reason: `service_account file without "private_key"`},
		{name: "user without refresh token", content: `{"type":"authorized_user","client_id":"id","client_secret":"` + secret + `"}`, reason: `authorized_user file without "refresh_token"`},
		{name: "type not built in", content: `{"type":"external_account","client_secret":"` + secret + `"}`, reason: `credentials of type "external_account" are not built in; use WithTokenSource(auth.ApplicationDefault()), which resolves every type`},
		{name: "rejected by x/oauth2/google", allTypes: true, content: `{"type":"external_account","client_secret":"` + secret + `"}`, reason: "rejected by golang.org/x/oauth2/google: oauth2/google/externalaccount: Audience must be set"},
		{name: "missing file", path: "missing", reason: "cannot read file: no such file or directory"},
		{name: "directory", path: "dir", reason: "cannot read file: is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateADC(t)
			path := filepath.Join(t.TempDir(), "key.json")
			switch tt.path {
			case "missing":
			case "dir":
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv(CredentialsEnv, path)
			finder := &fakeFinder{}
			c := &Credentials{findMetadata: finder.find}
			if tt.allTypes {
				c.otherTypes = anyTypeTokenSource
			}

			req := httpsRequest(t)
			err := c.Authorize(context.Background(), req)
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("got %v, want ErrBadCredentials", err)
			}
			want := fmt.Sprintf("auth: GOOGLE_APPLICATION_CREDENTIALS=%q: %s", path, tt.reason)
			if got := err.Error(); !strings.HasPrefix(got, want) {
				t.Errorf("got  %s\nwant %s...", got, want)
			}
			var fe *CredentialsFileError
			if !errors.As(err, &fe) || fe.Source != CredentialsEnv || fe.Path != path {
				t.Errorf("got %#v, want a *CredentialsFileError for %s", err, path)
			}
			for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
				if strings.Contains(s, secret) {
					t.Errorf("error shows the file's contents: %s", s)
				}
			}
			if tt.path == "missing" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
			}
			if _, ok := req.Header["Authorization"]; ok {
				t.Error("Authorization header set")
			}
			if n := finder.calls.Load(); n != 0 {
				t.Errorf("fell through to the metadata server %d times", n)
			}
		})
	}
}

func TestBadGcloudFile(t *testing.T) {
	gcloud := isolateADC(t)
	writeFile(t, gcloud, "")
	finder := &fakeFinder{}
	c := &Credentials{findMetadata: finder.find}
	err := c.Authorize(context.Background(), httpsRequest(t))
	want := fmt.Sprintf("auth: gcloud ADC file %q: file is empty", gcloud)
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	var fe *CredentialsFileError
	if !errors.Is(err, ErrBadCredentials) || !errors.As(err, &fe) || fe.Source != SourceGcloudADC {
		t.Errorf("got %#v, want a *CredentialsFileError from %s", err, SourceGcloudADC)
	}
}

func TestNoCredentials(t *testing.T) {
	gcloud := isolateADC(t)
	finder := &fakeFinder{} // not on GCE
	c := &Credentials{findMetadata: finder.find}
	req := httpsRequest(t)
	err := c.Authorize(context.Background(), req)
	if !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("got %v, want ErrNoCredentials", err)
	}
	want := "auth: no credentials found; looked for the WithTokenSource option (not given), " +
		"$GOOGLE_APPLICATION_CREDENTIALS (not set), " +
		fmt.Sprintf("the gcloud ADC file %q (no such file or directory), ", gcloud) +
		"and the GCE metadata server (not detected); " +
		"see https://cloud.google.com/docs/authentication/external/set-up-adc"
	if got := err.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, ok := req.Header["Authorization"]; ok {
		t.Error("Authorization header set")
	}
}

// tokenServer is a loopback OAuth2 token endpoint. check inspects each
// request's form; the server answers with token, valid for expiresIn
// seconds.
func tokenServer(t *testing.T, token string, expiresIn int, check func(t *testing.T, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if err := r.ParseForm(); err != nil {
			t.Errorf("token request: %v", err)
		}
		check(t, r)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":%d}`, token, expiresIn)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestADCServiceAccountFile(t *testing.T) {
	isolateADC(t)
	srv, hits := tokenServer(t, "sa-token", 3600, func(t *testing.T, r *http.Request) {
		if got := r.PostForm.Get("grant_type"); got != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			t.Errorf("grant_type = %q", got)
		}
		// The signed assertion asks for Scope and nothing else.
		parts := strings.Split(r.PostForm.Get("assertion"), ".")
		if len(parts) != 3 {
			t.Fatalf("assertion has %d parts", len(parts))
		}
		claims, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Scope string `json:"scope"`
			Iss   string `json:"iss"`
		}
		if err := json.Unmarshal(claims, &c); err != nil {
			t.Fatal(err)
		}
		if c.Scope != Scope || c.Iss != "sa@project.iam.gserviceaccount.com" {
			t.Errorf("claims: %s", claims)
		}
	})

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	file, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"client_email":   "sa@project.iam.gserviceaccount.com",
		"private_key_id": "kid",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"token_uri":      srv.URL + "/token",
	})
	path := filepath.Join(t.TempDir(), "sa.json")
	writeFile(t, path, string(file))
	t.Setenv(CredentialsEnv, path)

	finder := &fakeFinder{}
	c := &Credentials{findMetadata: finder.find}

	// Resolving reads the file but fetches nothing.
	if _, _, err := c.tokenSource(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("resolution made %d token requests, want 0", n)
	}

	for range 3 {
		req := httpsRequest(t)
		if err := c.Authorize(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if got, want := req.Header.Get("Authorization"), "Bearer sa-token"; got != want {
			t.Fatalf("Authorization = %q, want %q", got, want)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	if got, want := c.String(), fmt.Sprintf("auth.Credentials(the credentials file %q named by $GOOGLE_APPLICATION_CREDENTIALS)", path); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if n := finder.calls.Load(); n != 0 {
		t.Errorf("fell through to the metadata server %d times", n)
	}
}

func TestADCAuthorizedUserSurvivesFirstContextEnding(t *testing.T) {
	gcloud := isolateADC(t)
	// Tokens that expire within 10s are refreshed on every call.
	srv, hits := tokenServer(t, "user-token", 5, func(t *testing.T, r *http.Request) {
		if got := r.PostForm.Get("grant_type"); got != "refresh_token" {
			t.Errorf("grant_type = %q", got)
		}
		if got := r.PostForm.Get("refresh_token"); got != secret {
			t.Errorf("refresh_token = %q", got)
		}
	})
	file, _ := json.Marshal(map[string]string{
		"type":          "authorized_user",
		"client_id":     "id.apps.googleusercontent.com",
		"client_secret": "client-secret",
		"refresh_token": secret,
		"token_uri":     srv.URL + "/token",
	})
	writeFile(t, gcloud, string(file))

	c := &Credentials{findMetadata: (&fakeFinder{}).find}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Authorize(ctx, httpsRequest(t)); err != nil {
		t.Fatal(err)
	}
	// The token source was made during the first call; it must not have
	// kept that call's context.
	cancel()
	req := httpsRequest(t)
	if err := c.Authorize(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got, want := req.Header.Get("Authorization"), "Bearer user-token"; got != want {
		t.Fatalf("Authorization = %q, want %q", got, want)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	if got, want := c.String(), fmt.Sprintf("auth.Credentials(the gcloud ADC file %q)", gcloud); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestADCMetadataServer runs the real golang.org/x/oauth2/google search down
// to the metadata server, played by a loopback server. A non-empty
// GCE_METADATA_HOST makes the library trust that it is on GCE without
// probing, so nothing leaves the machine.
func TestADCMetadataServer(t *testing.T) {
	isolateADC(t)
	var tokenHits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" {
			t.Errorf("%s without Metadata-Flavor", r.URL)
		}
		switch r.URL.Path {
		case "/computeMetadata/v1/project/project-id":
			fmt.Fprint(w, "project")
		case "/computeMetadata/v1/instance/service-accounts/default/token":
			tokenHits.Add(1)
			if got := r.URL.Query().Get("scopes"); got != Scope {
				t.Errorf("scopes = %q, want %q", got, Scope)
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_token":"metadata-token","token_type":"Bearer","expires_in":3600}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(srv.URL, "http://"))

	c := NewCredentials(nil)
	for range 3 {
		req := httpsRequest(t)
		if err := c.Authorize(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if got, want := req.Header.Get("Authorization"), "Bearer metadata-token"; got != want {
			t.Fatalf("Authorization = %q, want %q", got, want)
		}
	}
	if n := tokenHits.Load(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	if got, want := c.String(), "auth.Credentials(the GCE metadata server)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestCredentialsStringNeverShowsToken(t *testing.T) {
	c := NewCredentials(&fakeTokenSource{token: secret})
	if err := c.Authorize(context.Background(), httpsRequest(t)); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		if s := fmt.Sprintf(verb, c); strings.Contains(s, secret) {
			t.Errorf("%s shows the token: %s", verb, s)
		}
	}

	tests := []struct {
		c    *Credentials
		want string
	}{
		{c, "auth.Credentials(the WithTokenSource option)"},
		{NewCredentials(nil), "auth.Credentials(Application Default Credentials, not yet resolved)"},
		{new(Credentials), "auth.Credentials(Application Default Credentials, not yet resolved)"},
		{nil, "auth.Credentials(nil)"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
		if got := tt.c.GoString(); got != tt.want {
			t.Errorf("GoString() = %q, want %q", got, tt.want)
		}
	}
}

func TestQuotesFile(t *testing.T) {
	file := []byte(`{"type":"service_account","private_key":"-----BEGIN KEY-----abc","nested":{"list":["refresh-1234567"]},"n":12345678}`)
	tests := []struct {
		msg  string
		want bool
	}{
		{"missing 'type' field", false},
		{"bad key -----BEGIN KEY-----abc here", true},
		{"token refresh-1234567 rejected", true},
		{`unknown credential type: "service_account"`, true}, // a value, even if harmless
		{"number 12345678", false},                           // only strings are checked
	}
	for _, tt := range tests {
		if got := quotesFile(tt.msg, file); got != tt.want {
			t.Errorf("quotesFile(%q) = %v, want %v", tt.msg, got, tt.want)
		}
	}
	if !quotesFile("anything", []byte("not json")) {
		t.Error("quotesFile on invalid JSON = false, want true (assume the worst)")
	}
}

// ApplicationDefault resolves the built-in types as NewCredentials(nil)
// does, and hands the others to golang.org/x/oauth2/google.
func TestApplicationDefault(t *testing.T) {
	gcloud := isolateADC(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"user-token","token_type":"Bearer","expires_in":3600}`)
	}))
	defer srv.Close()
	file, _ := json.Marshal(map[string]string{
		"type": "authorized_user", "client_id": "id", "client_secret": "s",
		"refresh_token": secret, "token_uri": srv.URL + "/token",
	})
	writeFile(t, gcloud, string(file))
	ts := ApplicationDefault()
	if hits.Load() != 0 {
		t.Fatal("ApplicationDefault did I/O before its first Token call")
	}
	for range 2 {
		tok, err := ts.Token()
		if err != nil || tok.AccessToken != "user-token" {
			t.Fatalf("Token() = %v, %v", tok, err)
		}
	}

	writeFile(t, gcloud, `{"type":"external_account","client_secret":"`+secret+`"}`)
	_, err := ApplicationDefault().Token()
	if !errors.Is(err, ErrBadCredentials) || !strings.Contains(err.Error(), "rejected by golang.org/x/oauth2/google: oauth2/google/externalaccount") {
		t.Fatalf("Token() with an external_account file = %v, want x/oauth2/google's own check", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error shows the file: %v", err)
	}
}
