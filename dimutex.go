// Package dimutex is a distributed mutex whose state lives in one Google
// Cloud Storage object. Any number of processes, on any number of machines,
// that name the same bucket and object share one lock.
//
// A holder owns a Lease for a TTL and extends it in the background; if it
// crashes, the lock is free again once the TTL has passed by the server's
// clock. Every write is a compare-and-swap on the object's generation, so
// acquiring, taking over an expired lock, refreshing and releasing are each
// atomic, and each can be retried safely. Waiters poll with reads only and
// never spend the holder's budget of about one write per second per object.
//
// The lease's Token, the generation of the write that acquired it, is a
// fencing token: pass it to the resources the lock protects so that they can
// refuse a holder whose lease has ended.
//
// The package speaks the GCS JSON API through its own small client
// (package gcsjson); it does not use the official SDK. Set
// STORAGE_EMULATOR_HOST to use an emulator such as fake-gcs-server.
package dimutex

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/oauth2"

	"github.com/dimutex/dimutex/auth"
	"github.com/dimutex/dimutex/gcsjson"
	"github.com/dimutex/dimutex/internal/version"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrAlreadyAcquired means a live lease is held by someone else.
	ErrAlreadyAcquired = errors.New("dimutex: already acquired")
	// ErrAlreadyReleased means the lease was already released.
	ErrAlreadyReleased = errors.New("dimutex: already released")
	// ErrLost means the lease ended without Release: it was not refreshed
	// before its deadline, or someone else now holds or deleted the lock.
	// Work done under it may have overlapped with another holder's.
	ErrLost = errors.New("dimutex: lease lost")
	// ErrInvalidConfig matches every error that NewGCS returns for bad
	// input; the error itself names the bad value.
	ErrInvalidConfig = errors.New("dimutex: invalid configuration")
)

// ConfigError reports a bad argument or option given to NewGCS.
type ConfigError struct {
	// Option names what was bad: "bucket", "name", or an option such as
	// "WithTTL" or "STORAGE_EMULATOR_HOST".
	Option string
	// Value is the bad value as text.
	Value string
	// Reason says what is wrong with it.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

// Error names the option, the bad value and what is wrong with it.
func (e *ConfigError) Error() string {
	if e.Err != nil {
		return "dimutex: " + e.Err.Error()
	}
	return fmt.Sprintf("dimutex: %s(%s): %s", e.Option, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// Defaults.
const (
	// DefaultTTL is how long a lease lives unless refreshed.
	DefaultTTL = 60 * time.Second
	// DefaultAttemptTimeout bounds each request.
	DefaultAttemptTimeout = 10 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound both retry delays and
	// the waiters' polling interval.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
	// MaxOwnerBytes bounds the length of an owner description.
	MaxOwnerBytes = 512
)

// An Option configures a Mutex. Options are checked together by NewGCS.
type Option func(*config)

type config struct {
	ttl            time.Duration
	refresh        time.Duration
	refreshSet     bool
	owner          string
	httpClient     *http.Client
	httpClientSet  bool
	tokenSource    oauth2.TokenSource
	endpoint       string
	endpointSet    bool
	logger         *slog.Logger
	backoffMin     time.Duration
	backoffMax     time.Duration
	attemptTimeout time.Duration
}

// WithTTL sets how long a lease lives without a refresh (default 60 s). A
// crashed holder's lock is taken over about TTL + 1 s after its last write.
func WithTTL(d time.Duration) Option { return func(c *config) { c.ttl = d } }

// WithRefreshInterval sets how often a lease is refreshed in the background
// (default TTL/3). It must be less than the TTL; 0 disables automatic
// refresh, leaving it to Lease.Refresh.
func WithRefreshInterval(d time.Duration) Option {
	return func(c *config) { c.refresh, c.refreshSet = d, true }
}

// WithOwner sets a human-readable description of the holder, stored with the
// lock for operators (default "hostname/pid").
func WithOwner(s string) Option { return func(c *config) { c.owner = s } }

// WithHTTPClient sets the HTTP client that sends requests. Redirects are
// never followed, whatever the client's CheckRedirect says.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) { c.httpClient, c.httpClientSet = hc, true }
}

// WithTokenSource sets the source of OAuth2 tokens for GCS, instead of
// Application Default Credentials. It is not used for an emulator, and a
// plain-http endpoint given with WithEndpoint refuses it.
func WithTokenSource(ts oauth2.TokenSource) Option { return func(c *config) { c.tokenSource = ts } }

// WithEndpoint sets the JSON API's root URL, such as
// "https://storage.googleapis.com" (the default) or "http://127.0.0.1:4443".
// It overrides STORAGE_EMULATOR_HOST. Requests to a plain-http endpoint
// carry no credentials.
func WithEndpoint(url string) Option {
	return func(c *config) { c.endpoint, c.endpointSet = url, true }
}

// WithLogger sets where the Mutex and its leases log: retries at debug
// level, a lost lease at warn level. The default, like nil, logs nothing.
// Tokens are never logged.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithBackoff bounds the exponential backoff between retries of a failed
// request, and between a waiter's polls (defaults 100 ms and 5 s).
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) { c.backoffMin, c.backoffMax = min, max }
}

// WithAttemptTimeout bounds each request (default 10 s), so that a hung
// connection cannot consume a lease. A lease's requests are also cut off at
// its deadline.
func WithAttemptTimeout(d time.Duration) Option { return func(c *config) { c.attemptTimeout = d } }

// Mutex is a lock named by a bucket and an object name. It holds
// configuration and a client, not lease state, and is safe for concurrent
// use: each successful Acquire returns its own Lease.
type Mutex struct {
	bucket, name string
	ttl          time.Duration
	refresh      time.Duration
	owner        string
	backoffMin   time.Duration
	backoffMax   time.Duration
	log          *slog.Logger
	client       *gcsjson.Client
}

// NewGCS returns a Mutex on the object name in bucket. It checks every
// argument and reads STORAGE_EMULATOR_HOST, but sends no request;
// credentials are looked up at the first request. Bad input gives an error
// matching ErrInvalidConfig that names the bad value.
func NewGCS(bucket, name string, opts ...Option) (*Mutex, error) {
	c := config{
		ttl:            DefaultTTL,
		backoffMin:     DefaultMinBackoff,
		backoffMax:     DefaultMaxBackoff,
		attemptTimeout: DefaultAttemptTimeout,
	}
	for _, opt := range opts {
		if opt == nil {
			return nil, &ConfigError{Option: "Option", Value: "nil", Reason: "a nil Option was passed"}
		}
		opt(&c)
	}
	if err := gcsjson.ValidateBucketName(bucket); err != nil {
		return nil, &ConfigError{Option: "bucket", Value: strconv.Quote(bucket), Err: err}
	}
	if err := gcsjson.ValidateObjectName(name); err != nil {
		return nil, &ConfigError{Option: "name", Value: strconv.Quote(name), Err: err}
	}
	if err := c.check(); err != nil {
		return nil, err
	}

	ep, err := auth.ResolveEndpoint(c.endpoint, os.Getenv)
	if err != nil {
		return nil, &ConfigError{Option: "endpoint", Err: err}
	}
	var authz gcsjson.Authorizer
	switch {
	case ep.Authenticated():
		authz = auth.NewCredentials(c.tokenSource)
	case c.tokenSource != nil && !ep.Emulator:
		return nil, &ConfigError{Option: "WithTokenSource", Value: ep.String(),
			Reason: "the endpoint is plain http, and tokens are only sent over https"}
	}
	client, err := gcsjson.New(gcsjson.Config{
		Endpoint:   ep.URL,
		HTTPClient: c.httpClient,
		Authorizer: authz,
		UserAgent:  "dimutex/" + version.Version + " (+https://github.com/dimutex/dimutex)",
		Retry: gcsjson.RetryPolicy{
			MinBackoff:     c.backoffMin,
			MaxBackoff:     c.backoffMax,
			AttemptTimeout: c.attemptTimeout,
		},
		Logger: c.logger,
	})
	if err != nil {
		return nil, &ConfigError{Option: "endpoint", Err: err}
	}
	m := &Mutex{
		bucket:     bucket,
		name:       name,
		ttl:        c.ttl,
		refresh:    c.refresh,
		owner:      c.owner,
		backoffMin: c.backoffMin,
		backoffMax: c.backoffMax,
		log:        c.logger,
		client:     client,
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With(slog.String("lock", m.String()))
	return m, nil
}

// check validates the options together and fills in derived defaults.
func (c *config) check() error {
	bad := func(option, value, reason string) error {
		return &ConfigError{Option: option, Value: value, Reason: reason}
	}
	switch {
	case c.ttl < time.Millisecond:
		return bad("WithTTL", c.ttl.String(), "the TTL must be at least 1ms")
	case !c.refreshSet:
		c.refresh = c.ttl / 3
	case c.refresh < 0:
		return bad("WithRefreshInterval", c.refresh.String(), "must not be negative (0 disables automatic refresh)")
	case c.refresh >= c.ttl:
		return bad("WithRefreshInterval", c.refresh.String(), fmt.Sprintf("must be less than the TTL %v", c.ttl))
	}
	switch {
	case c.backoffMin <= 0:
		return bad("WithBackoff", fmt.Sprintf("%v, %v", c.backoffMin, c.backoffMax), "min must be positive")
	case c.backoffMin > c.backoffMax:
		return bad("WithBackoff", fmt.Sprintf("%v, %v", c.backoffMin, c.backoffMax), "min must not exceed max")
	case c.attemptTimeout <= 0:
		return bad("WithAttemptTimeout", c.attemptTimeout.String(), "must be positive")
	case c.httpClientSet && c.httpClient == nil:
		return bad("WithHTTPClient", "nil", "the client must not be nil")
	case c.endpointSet && c.endpoint == "":
		return bad("WithEndpoint", `""`, "the endpoint must not be empty")
	}
	if c.owner == "" {
		c.owner = DefaultOwner()
	}
	return checkOwner(c.owner)
}

func checkOwner(s string) error {
	bad := func(reason string) error {
		return &ConfigError{Option: "WithOwner", Value: strconv.Quote(s), Reason: reason}
	}
	switch {
	case len(s) > MaxOwnerBytes:
		return bad(fmt.Sprintf("is %d bytes; the limit is %d", len(s), MaxOwnerBytes))
	case !utf8.ValidString(s):
		return bad("must be valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return bad(fmt.Sprintf("must not contain control character %U", r))
		}
	}
	return nil
}

// DefaultOwner returns the owner a Mutex describes its holder by unless
// WithOwner says otherwise: "hostname/pid".
func DefaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// String returns the lock's location, "gs://bucket/name".
func (m *Mutex) String() string { return "gs://" + m.bucket + "/" + m.name }

// Acquire waits until it holds the lock and returns its Lease, or returns
// an error when ctx ends or a request fails for good (a transient failure is
// retried). While another holder's lease is live it polls with reads only,
// at most every backoff interval and no later than that lease's expiry; an
// expired lease is taken over atomically.
func (m *Mutex) Acquire(ctx context.Context) (*Lease, error) { return m.acquire(ctx, true) }

// TryAcquire makes one attempt to take the lock: it creates the lock, or
// takes over an expired one. If a live lease is held by someone else it
// returns an error matching ErrAlreadyAcquired that names the holder.
// Transient failures are retried until ctx ends.
func (m *Mutex) TryAcquire(ctx context.Context) (*Lease, error) { return m.acquire(ctx, false) }

// Do acquires the lock (waiting as Acquire does), runs fn, and releases the
// lock. The ctx passed to fn is cancelled, with cause ErrLost, if the lease
// is lost while fn runs. Do returns fn's error joined with Release's: an
// error matching ErrLost means fn may not have run alone.
func (m *Mutex) Do(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	l, err := m.Acquire(ctx)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(l.ctx, func() { cancel(context.Cause(l.ctx)) })
	// Deferred, so that a panic in fn releases the lock too.
	defer func() {
		stop()
		cancel(nil)
		// Release even if ctx has ended; the lease's deadline bounds it.
		rerr := l.Release(context.WithoutCancel(ctx))
		if errors.Is(rerr, ErrAlreadyReleased) {
			rerr = nil // fn released it itself
		}
		err = errors.Join(err, rerr)
	}()
	return fn(fctx)
}

// newLeaseID returns 128 random bits, hex-encoded.
func newLeaseID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
