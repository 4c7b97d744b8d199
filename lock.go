package dimutex

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/dimutex/dimutex/auth"
	"github.com/dimutex/dimutex/gcsjson"
	"github.com/dimutex/dimutex/internal/backoff"
	"github.com/dimutex/dimutex/internal/version"
)

// settings is what the locks of one Mutex, Election or Semaphore share:
// the checked options and the client.
type settings struct {
	bucket     string
	ttl        time.Duration
	refresh    time.Duration
	owner      string
	value      string
	backoffMin time.Duration
	backoffMax time.Duration
	client     *gcsjson.Client
	trace      *Trace       // nil: no events
	log        *slog.Logger // never nil

	// The rest are seams for tests; NewGCS sets the production ones.

	// margin is added to a holder's TTL before a waiter may take over: a
	// bound on how much faster than the holder's the server's clock may run
	// over one TTL.
	margin time.Duration
	// jitter draws the random part of backoffs.
	jitter backoff.Jitter
	// newID returns a new lease id.
	newID func() string
	// wall returns the wall clock's reading at t, an instant read from
	// time.Now (so with a monotonic reading). The lease checks both clocks,
	// since the monotonic clock stops while a host is suspended.
	wall func(t time.Time) time.Time
}

// newSettings checks bucket and opts and builds the client. It reads
// STORAGE_EMULATOR_HOST but sends no request.
func newSettings(bucket string, opts []Option) (*settings, error) {
	c, err := apply(opts)
	if err != nil {
		return nil, err
	}
	if err := gcsjson.ValidateBucketName(bucket); err != nil {
		return nil, &ConfigError{Option: "bucket", Value: shorten(bucket), Err: err}
	}
	ep, err := auth.ResolveEndpoint(c.endpoint, os.Getenv)
	if err != nil {
		ce := &ConfigError{Option: "endpoint", Err: err}
		var ee *auth.EndpointError
		if errors.As(err, &ee) {
			ce.Option, ce.Value, ce.Reason = ee.Source, ee.Value, ee.Reason
		}
		return nil, ce
	}
	var authz gcsjson.Authorizer
	switch {
	case ep.Authenticated():
		authz = auth.NewCredentials(c.tokenSource)
	case c.tokenSource != nil && !ep.Emulator:
		return nil, &ConfigError{Option: "WithTokenSource", Value: ep.String(),
			Reason: "the endpoint is plain http, and tokens are only sent over https"}
	}
	s := &settings{
		bucket:     bucket,
		ttl:        c.ttl,
		refresh:    c.refresh,
		owner:      c.owner,
		value:      c.value,
		backoffMin: c.backoffMin,
		backoffMax: c.backoffMax,
		trace:      c.trace,
		log:        c.logger,
		margin:     clockMargin,
		jitter:     backoff.Uniform,
		newID:      newLeaseID,
		wall:       func(t time.Time) time.Time { return t.Round(0) },
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	gc := gcsjson.Config{
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
		// Through s, so that a test's change of s.jitter reaches retries.
		Jitter: func(d time.Duration) time.Duration { return s.jitter(d) },
	}
	if t := c.trace; t != nil && t.Request != nil {
		gc.OnAttempt = func(ctx context.Context, a gcsjson.Attempt) {
			lock := "gs://" + a.Bucket + "/" + a.Object
			t.Request(RequestEvent{
				Lock: lock, Token: tokenFrom(ctx), Op: a.Op, Attempt: a.Attempt,
				Status: a.Status, Err: a.Err, Duration: a.Duration,
				MayHaveApplied: a.MayHaveApplied, Retry: a.Retry,
			})
		}
	}
	s.client, err = gcsjson.New(gc)
	if err != nil {
		return nil, &ConfigError{Option: "endpoint", Err: err}
	}
	return s, nil
}

// lock is one lock object and the settings it is used with: a Mutex is
// one, and a Semaphore has one per slot.
type lock struct {
	*settings
	name  string
	ref   string       // "gs://bucket/name"
	log   *slog.Logger // settings.log, naming the lock
	slots int          // the size of the semaphore this is a slot of; 0 for a Mutex
}

// newLock checks name and returns the lock it names.
func (s *settings) newLock(name string, slots int) (*lock, error) {
	if err := gcsjson.ValidateObjectName(name); err != nil {
		return nil, &ConfigError{Option: "name", Value: shorten(name), Err: err}
	}
	lk := &lock{settings: s, name: name, ref: "gs://" + s.bucket + "/" + name, slots: slots}
	lk.log = s.log.With(slog.String("lock", lk.ref))
	return lk, nil
}

// deadline returns a lease's deadline for a write sent at sent.
func (lk *lock) deadline(sent time.Time) time.Time { return sent.Add(lk.ttl) }

// newLeaseID returns 128 random bits, hex-encoded.
func newLeaseID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tokenKey carries a lease's token in the context of its requests, for
// RequestEvent; it is set only when Trace.Request is.
type tokenKey struct{}

func withToken(ctx context.Context, lk *lock, token int64) context.Context {
	if lk.trace == nil || lk.trace.Request == nil {
		return ctx
	}
	return context.WithValue(ctx, tokenKey{}, token)
}

func tokenFrom(ctx context.Context) int64 {
	t, _ := ctx.Value(tokenKey{}).(int64)
	return t
}
