package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"cloud.google.com/go/compute/metadata"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// tokenFetchTimeout bounds one token request made by a credentials-file token
// source, unless the context given to the first Authorize carries its own
// client under oauth2.HTTPClient. Without it, http.DefaultClient could wait
// forever on a token server that accepts and never answers.
const tokenFetchTimeout = 30 * time.Second

// Where a token source came from, for messages.
const (
	fromOption   = "the WithTokenSource option"
	fromMetadata = "the GCE metadata server"
	fromADC      = "Application Default Credentials"
)

// Credentials supplies OAuth2 access tokens. The token source is resolved
// lazily at the first Authorize and cached, and tokens are reused until near
// expiry. Credentials is safe for concurrent use.
//
// The zero Credentials uses Application Default Credentials, like
// NewCredentials(nil). A Credentials must not be copied after first use.
type Credentials struct {
	// findMetadata is metadataTokenSource when nil. Tests set it so they
	// never probe the real metadata server.
	findMetadata func(context.Context) (oauth2.TokenSource, error)
	// otherTypes makes the token source of a credentials file of a type
	// that is not built in; nil refuses such files. See ApplicationDefault.
	otherTypes func(ctx context.Context, b []byte, typ string, params google.CredentialsParams) (oauth2.TokenSource, error)

	mu      sync.Mutex
	ts      oauth2.TokenSource // nil until resolved; then reuses tokens
	from    string             // where ts came from
	pending *resolution        // the resolution in flight, if any
	// last is the token most recently got from ts, so that a request with
	// a valid one needs no goroutine to call ts (which takes no context).
	last *oauth2.Token
}

// resolution is one attempt to find Application Default Credentials, shared
// by every caller that arrives while it runs.
type resolution struct {
	done chan struct{} // closed once ts, from and err are set
	ts   oauth2.TokenSource
	from string
	err  error
}

// NewCredentials returns Credentials that use ts if it is non-nil, and
// otherwise Application Default Credentials with Scope, found through
// golang.org/x/oauth2/google at the first Authorize: the file named by
// $GOOGLE_APPLICATION_CREDENTIALS, then the gcloud ADC file, then the GCE
// metadata server. It does no I/O and never calls ts.
func NewCredentials(ts oauth2.TokenSource) *Credentials {
	c := new(Credentials)
	if ts != nil {
		c.ts = oauth2.ReuseTokenSource(nil, ts)
		c.from = fromOption
	}
	return c
}

// Authorize sets req's Authorization header to a current access token.
//
// It refuses, with an error matching ErrInsecureTransport, unless
// req.URL.Scheme is "https". The first call on Application Default
// Credentials resolves them; on failure it returns an error matching
// ErrNoCredentials or ErrBadCredentials (see CredentialsFileError), and the
// next call tries again. Errors never contain a token. On any error the
// header is left untouched.
//
// Authorize returns early with ctx's error if ctx is done while it waits for
// resolution or for a token; the work it waited for carries on and its
// result is kept for later calls. Resolution and token requests do not use
// ctx's deadline or cancellation, because the token source outlives this call
// (its values, such as oauth2.HTTPClient, are used). Token requests for a
// credentials file time out after 30 seconds unless the first call's ctx
// carries an oauth2.HTTPClient.
func (c *Credentials) Authorize(ctx context.Context, req *http.Request) error {
	if req == nil || req.URL == nil {
		return &kindError{kind: ErrInsecureTransport, msg: "auth: refusing to authorize a request without a URL"}
	}
	if req.URL.Scheme != "https" {
		return &kindError{
			kind: ErrInsecureTransport,
			msg:  fmt.Sprintf("auth: refusing to send credentials to %s://%s: scheme is %q, want https", req.URL.Scheme, req.URL.Host, req.URL.Scheme),
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	c.mu.Lock()
	tok := c.last
	c.mu.Unlock()
	if !tok.Valid() {
		ts, from, err := c.tokenSource(ctx)
		if err != nil {
			return err
		}
		tok, err = token(ctx, ts)
		if err != nil {
			// err comes from the token source or ctx; neither holds our token.
			return fmt.Errorf("auth: getting an access token from %s: %w", from, err)
		}
		if tok == nil || tok.AccessToken == "" {
			return fmt.Errorf("auth: %s returned an empty access token", from)
		}
		c.mu.Lock()
		c.last = tok
		c.mu.Unlock()
	}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	tok.SetAuthHeader(req)
	return nil
}

// ApplicationDefault returns a token source for Application Default
// Credentials of every type that golang.org/x/oauth2/google resolves:
// besides the built-in service_account and authorized_user, also
// external_account (workload identity federation),
// external_account_authorized_user, impersonated_service_account and
// gdch_service_account. It looks in the same places as NewCredentials(nil),
// at its first Token call, and caches what it finds.
//
// It is not the default because its resolver adds about 190 KB to every
// binary. Pass it as dimutex.WithTokenSource(auth.ApplicationDefault()).
func ApplicationDefault() oauth2.TokenSource {
	return adcSource{&Credentials{otherTypes: anyTypeTokenSource}}
}

func anyTypeTokenSource(ctx context.Context, b []byte, typ string, params google.CredentialsParams) (oauth2.TokenSource, error) {
	creds, err := google.CredentialsFromJSONWithTypeAndParams(ctx, b, google.CredentialsType(typ), params)
	if err != nil {
		return nil, err
	}
	return creds.TokenSource, nil
}

// adcSource adapts Credentials to oauth2.TokenSource.
type adcSource struct{ c *Credentials }

// Token resolves the credentials, once, and returns a current token.
func (s adcSource) Token() (*oauth2.Token, error) {
	ts, _, err := s.c.tokenSource(context.Background())
	if err != nil {
		return nil, err
	}
	return ts.Token()
}

// String describes where c's tokens come from. It never includes a token.
func (c *Credentials) String() string {
	if c == nil {
		return "auth.Credentials(nil)"
	}
	c.mu.Lock()
	from := c.from
	c.mu.Unlock()
	if from == "" {
		return "auth.Credentials(Application Default Credentials, not yet resolved)"
	}
	return "auth.Credentials(" + from + ")"
}

// GoString is String, so that %#v cannot reach a cached token either.
func (c *Credentials) GoString() string { return c.String() }

// token calls ts.Token, returning early if ctx is done. ts.Token takes no
// context, so it runs in its own goroutine; a fetch abandoned this way ends
// on its own, bounded by the token source's HTTP client timeouts.
func token(ctx context.Context, ts oauth2.TokenSource) (*oauth2.Token, error) {
	if ctx.Done() == nil {
		return ts.Token()
	}
	type result struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan result, 1) // buffered: the sender never blocks if we leave
	go func() {
		tok, err := ts.Token()
		ch <- result{tok, err}
	}()
	select {
	case r := <-ch:
		return r.tok, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// tokenSource returns the cached token source, resolving Application Default
// Credentials first if needed. Concurrent callers share one resolution; each
// waits only as long as its own ctx allows.
func (c *Credentials) tokenSource(ctx context.Context) (oauth2.TokenSource, string, error) {
	c.mu.Lock()
	if c.ts != nil {
		ts, from := c.ts, c.from
		c.mu.Unlock()
		return ts, from, nil
	}
	r := c.pending
	if r == nil {
		r = &resolution{done: make(chan struct{})}
		c.pending = r
		// The token source keeps the context it was made with for every
		// later refresh, so it must not die with this caller's ctx.
		go c.resolve(context.WithoutCancel(ctx), r)
	}
	c.mu.Unlock()

	select {
	case <-r.done:
		return r.ts, r.from, r.err
	case <-ctx.Done():
		return nil, "", fmt.Errorf("auth: waiting for %s: %w", fromADC, ctx.Err())
	}
}

// resolve runs one resolution and publishes its result: a success is cached
// for good, a failure only answers the callers already waiting.
func (c *Credentials) resolve(ctx context.Context, r *resolution) {
	ts, from, err := c.findCredentials(ctx)
	c.mu.Lock()
	if err == nil {
		c.ts = oauth2.ReuseTokenSource(nil, ts)
		c.from = from
		r.ts = c.ts
	}
	r.from, r.err = from, err
	c.pending = nil
	c.mu.Unlock()
	close(r.done)
}

// findCredentials looks where golang.org/x/oauth2/google looks, in the same
// order, but reads and checks the files itself so that its errors name the
// file and the problem without quoting the file.
func (c *Credentials) findCredentials(ctx context.Context) (oauth2.TokenSource, string, error) {
	if _, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); !ok {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: tokenFetchTimeout})
	}
	params := google.CredentialsParams{Scopes: []string{Scope}}

	if path := os.Getenv(CredentialsEnv); path != "" {
		return c.fromFile(ctx, CredentialsEnv, path, params)
	}

	gcloud := gcloudADCPath()
	b, err := os.ReadFile(gcloud)
	if err == nil {
		return c.fromJSON(ctx, SourceGcloudADC, gcloud, b, params)
	}
	// Like x/oauth2/google, any failure to read the gcloud file means "not
	// there" and the search goes on; the reason goes into ErrNoCredentials.
	gcloudWhy := pathErrReason(err)

	// Both files are absent: ask the metadata server.
	find := c.findMetadata
	if find == nil {
		find = metadataTokenSource
	}
	ts, err := find(ctx)
	if err != nil {
		return nil, "", noCredentialsError(gcloud, gcloudWhy)
	}
	return ts, fromMetadata, nil
}

// metadataTokenSource returns a token source from the GCE metadata server,
// if this process runs where there is one.
//
// The probe, metadata.OnGCE, runs once per process and is memoized; it is
// bounded by its own timeouts (a 2 s dial, 5 s per request), not by a
// context: cloud.google.com/go/compute/metadata v0.3.0, the version
// golang.org/x/oauth2 requires, has no OnGCEWithContext. Nothing is lost:
// resolve runs under context.WithoutCancel, so no ctx here is ever cancelled,
// and a caller stops waiting when its own ctx ends (see tokenSource).
func metadataTokenSource(context.Context) (oauth2.TokenSource, error) {
	if !metadata.OnGCE() {
		return nil, errors.New("not on Google Cloud")
	}
	return google.ComputeTokenSource("", Scope), nil
}

// noCredentialsError lists every place looked at. The library's own error is
// dropped: past the two files it only says the metadata server was not found.
func noCredentialsError(gcloud, gcloudWhy string) error {
	return &kindError{
		kind: ErrNoCredentials,
		msg: fmt.Sprintf("auth: no credentials found; looked for %s (not given), $%s (not set), "+
			"the gcloud ADC file %q (%s), and %s (not detected); "+
			"see https://cloud.google.com/docs/authentication/external/set-up-adc",
			fromOption, CredentialsEnv, gcloud, gcloudWhy, fromMetadata),
	}
}
