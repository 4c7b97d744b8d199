// Package gcsjson is a small client for the Google Cloud Storage JSON API
// calls that a lock needs: a multipart upload guarded by ifGenerationMatch,
// a metadata read and an objects list that also report the server's clock,
// and a delete guarded by ifGenerationMatch.
//
// Every write takes a generation precondition as a required argument, so
// each write is safe to retry. All requests go through one function with one
// retry loop: it retries 408, 429, 500, 502, 503, 504, connection resets,
// truncated responses, requests put on a connection the server had just
// closed, and attempt timeouts, with exponential backoff and full jitter,
// until the call's context ends or RetryPolicy.MaxAttempts is spent. Other
// failures are returned at once.
//
// A write whose outcome is unknown (a timeout, a reset, a 5xx, or a request
// that the transport re-sent on its own, as net/http's HTTP/2 transport
// does after some stream errors) is reported with Error.MayHaveApplied, so
// that the caller can find out by a read what happened.
package gcsjson

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dimutex/dimutex/internal/backoff"
	"github.com/dimutex/dimutex/internal/version"
)

// Authorizer adds credentials to a request before it is sent.
type Authorizer interface {
	Authorize(ctx context.Context, req *http.Request) error
}

// Config configures a Client. The zero value of each field but Endpoint
// selects its default.
type Config struct {
	// Endpoint is the root that API paths are appended to, such as
	// https://storage.googleapis.com or http://127.0.0.1:4443.
	Endpoint *url.URL
	// HTTPClient sends the requests; nil means a client with
	// http.DefaultTransport. The Client uses a copy that never follows
	// redirects, so credentials cannot be carried to another host.
	HTTPClient *http.Client
	// Authorizer, if not nil, authorizes each attempt. It requires an https
	// Endpoint: credentials never travel over plain http.
	Authorizer Authorizer
	// UserAgent names the caller; the default names this package.
	UserAgent string
	// Retry is the retry policy.
	Retry RetryPolicy
	// MaxResponseBytes bounds how much of a response body is read; a larger
	// body is an error. The default is DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Logger receives a debug record for each retry; nil means none.
	Logger *slog.Logger
	// Jitter draws the random part of each retry delay: a uniformly random
	// duration in [0, d]. nil means math/rand/v2. A simulation passes a
	// seeded one so that a run can be replayed.
	Jitter func(d time.Duration) time.Duration
	// OnAttempt, if not nil, is called after every attempt of every call,
	// synchronously, with the call's context. It must not block.
	OnAttempt func(ctx context.Context, a Attempt)
}

// Attempt describes one request that a call sent, for Config.OnAttempt.
type Attempt struct {
	// Op is the call: "insert", "get", "delete" or "list".
	Op string
	// Bucket and Object name what the call addressed (for a list, Object
	// is the prefix).
	Bucket, Object string
	// Attempt counts the call's requests, from 1.
	Attempt int
	// Status is the HTTP status of the answer, or 0 if no complete answer
	// arrived.
	Status int
	// Err says why there is no status, or why the body could not be read;
	// nil when Status is all there is to say.
	Err error
	// Duration is how long the attempt took.
	Duration time.Duration
	// MayHaveApplied reports a write that failed in a way that may
	// nonetheless have applied it: a timeout, a reset, a 5xx, or a
	// transport that re-sent the request.
	MayHaveApplied bool
	// Retry reports that the call will try again after this attempt.
	Retry bool
}

// RetryPolicy says how a call retries transient failures.
type RetryPolicy struct {
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// attempts (defaults 100 ms and 5 s). Each delay is drawn uniformly from
	// [0, min(MaxBackoff, MinBackoff·2ⁿ)]; after a 429, 1 s is added.
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds each attempt (default 10 s), so that a hung
	// connection cannot consume the whole call.
	AttemptTimeout time.Duration
	// MaxAttempts bounds the attempts of one call; 0 means no bound other
	// than the call's context.
	MaxAttempts int
}

// Defaults.
const (
	DefaultMinBackoff       = 100 * time.Millisecond
	DefaultMaxBackoff       = 5 * time.Second
	DefaultAttemptTimeout   = 10 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	// RateLimitBackoff is the least delay after a 429: GCS allows about one
	// write per second to one object.
	RateLimitBackoff = time.Second
)

// ErrResponseTooLarge is returned when a response body exceeds
// Config.MaxResponseBytes; the body is not read past the limit.
var ErrResponseTooLarge = errors.New("gcsjson: response body too large")

// Client is a JSON API client. It is safe for concurrent use.
type Client struct {
	base      url.URL
	hc        *http.Client
	auth      Authorizer
	userAgent []string // the header's value, shared by every request
	retry     RetryPolicy
	maxBody   int64
	log       *slog.Logger
	jitter    func(time.Duration) time.Duration
	onAttempt func(context.Context, Attempt)
}

// New returns a Client for cfg, or an error naming the first bad field.
func New(cfg Config) (*Client, error) {
	u := cfg.Endpoint
	if u == nil {
		return nil, errors.New("gcsjson: Config.Endpoint is nil")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("gcsjson: endpoint %q must be an http or https URL with a host", u.Redacted())
	}
	if cfg.Authorizer != nil && u.Scheme != "https" {
		return nil, fmt.Errorf("gcsjson: endpoint %q is plain http; credentials are only sent over https", u.Redacted())
	}
	r := cfg.Retry
	if r.MinBackoff == 0 {
		r.MinBackoff = DefaultMinBackoff
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = max(DefaultMaxBackoff, r.MinBackoff)
	}
	if r.AttemptTimeout == 0 {
		r.AttemptTimeout = DefaultAttemptTimeout
	}
	switch {
	case r.MinBackoff < 0 || r.MaxBackoff < 0:
		return nil, fmt.Errorf("gcsjson: backoff %v..%v must not be negative", r.MinBackoff, r.MaxBackoff)
	case r.MinBackoff > r.MaxBackoff:
		return nil, fmt.Errorf("gcsjson: backoff min %v is greater than max %v", r.MinBackoff, r.MaxBackoff)
	case r.AttemptTimeout < 0:
		return nil, fmt.Errorf("gcsjson: attempt timeout %v must not be negative", r.AttemptTimeout)
	case r.MaxAttempts < 0:
		return nil, fmt.Errorf("gcsjson: MaxAttempts %d must not be negative", r.MaxAttempts)
	case cfg.MaxResponseBytes < 0:
		return nil, fmt.Errorf("gcsjson: MaxResponseBytes %d must not be negative", cfg.MaxResponseBytes)
	}
	c := &Client{
		base:      *u,
		auth:      cfg.Authorizer,
		userAgent: []string{cmp.Or(cfg.UserAgent, "dimutex-gcsjson/"+version.Version)},
		retry:     r,
		maxBody:   cfg.MaxResponseBytes,
		log:       cfg.Logger,
		jitter:    cfg.Jitter,
		onAttempt: cfg.OnAttempt,
	}
	c.base.Path = strings.TrimSuffix(c.base.Path, "/")
	c.base.RawPath = ""
	if c.maxBody == 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	hc := http.Client{}
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	return c, nil
}

// Write is the content that Insert stores.
type Write struct {
	// Metadata is the object's custom metadata.
	Metadata map[string]string
	// ContentType of Data; the default is application/octet-stream.
	ContentType string
	// CacheControl is the object's Cache-Control header, e.g. "no-store".
	CacheControl string
	// Data is the object's content.
	Data []byte
}

// Insert stores an object with a multipart upload, only if the object's live
// generation is ifGenerationMatch; 0 means only if no live object exists. It
// returns the new object version. A mismatch is an *Error matching
// ErrPreconditionFailed, and nothing is written.
//
// Options change how this one call behaves; see FailOnRateLimit.
func (c *Client) Insert(ctx context.Context, bucket, name string, ifGenerationMatch int64, w Write, opts ...CallOption) (*Object, error) {
	if err := checkCall(bucket, name, ifGenerationMatch); err != nil {
		return nil, err
	}
	body, contentType, err := multipartBody(name, w)
	if err != nil {
		return nil, err
	}
	q := url.Values{
		"uploadType":        {"multipart"},
		"name":              {name},
		"ifGenerationMatch": {strconv.FormatInt(ifGenerationMatch, 10)},
	}
	cl := &call{
		op: "insert", bucket: bucket, object: name,
		method:      http.MethodPost,
		url:         c.url("/upload/storage/v1/b/"+url.PathEscape(bucket)+"/o", q),
		body:        body,
		contentType: contentType,
	}
	for _, opt := range opts {
		opt(cl)
	}
	resp, err := c.send(ctx, cl)
	if err != nil {
		return nil, err
	}
	return resp.object()
}

// Get reads an object's metadata. Object.ServerTime carries the server's
// clock from the response. A missing object is an *Error matching
// ErrNotFound.
func (c *Client) Get(ctx context.Context, bucket, name string) (*Object, error) {
	if err := checkCall(bucket, name, 0); err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, &call{
		op: "get", bucket: bucket, object: name,
		method: http.MethodGet,
		url:    c.url(objectPath(bucket, name), nil),
	})
	if err != nil {
		return nil, err
	}
	return resp.object()
}

// Delete deletes an object, only if its live generation is
// ifGenerationMatch, which must be positive. A mismatch is an *Error matching
// ErrPreconditionFailed; a missing object, one matching ErrNotFound.
func (c *Client) Delete(ctx context.Context, bucket, name string, ifGenerationMatch int64) error {
	if err := checkCall(bucket, name, ifGenerationMatch); err != nil {
		return err
	}
	if ifGenerationMatch == 0 {
		return fmt.Errorf("gcsjson: delete %s: ifGenerationMatch must be a generation, not 0", objectRef(bucket, name))
	}
	q := url.Values{"ifGenerationMatch": {strconv.FormatInt(ifGenerationMatch, 10)}}
	_, err := c.send(ctx, &call{
		op: "delete", bucket: bucket, object: name,
		method: http.MethodDelete,
		url:    c.url(objectPath(bucket, name), q),
	})
	return err
}

// CheckBucket reports whether bucket exists, since the API answers 404 both
// for a missing object and for a missing bucket. A missing bucket is an
// *Error matching ErrNotFound. It lists at most one object, which needs only
// the storage.objects.list permission, not storage.buckets.get.
func (c *Client) CheckBucket(ctx context.Context, bucket string) error {
	if err := ValidateBucketName(bucket); err != nil {
		return fmt.Errorf("gcsjson: %w", err)
	}
	q := url.Values{"maxResults": {"1"}, "fields": {"kind"}}
	_, err := c.send(ctx, &call{
		op: "list", bucket: bucket,
		method: http.MethodGet,
		url:    c.url("/storage/v1/b/"+url.PathEscape(bucket)+"/o", q),
	})
	return err
}

// List returns the objects whose names start with prefix, sorted by name,
// in one request per 1,000 objects. GCS lists are strongly consistent. Each
// Object's ServerTime is the Date of the page that carried it. A missing
// bucket is an *Error matching ErrNotFound.
func (c *Client) List(ctx context.Context, bucket, prefix string) ([]*Object, error) {
	if err := ValidateBucketName(bucket); err != nil {
		return nil, fmt.Errorf("gcsjson: %w", err)
	}
	var all []*Object
	var page string
	for {
		q := url.Values{"prefix": {prefix}}
		if page != "" {
			q.Set("pageToken", page)
		}
		resp, err := c.send(ctx, &call{
			op: "list", bucket: bucket, object: prefix,
			method: http.MethodGet,
			url:    c.url("/storage/v1/b/"+url.PathEscape(bucket)+"/o", q),
		})
		if err != nil {
			return nil, err
		}
		objs, next, err := parseList(resp.body)
		if err != nil {
			e := resp.call.error(resp.attempts)
			e.Err = err
			return nil, e
		}
		for _, o := range objs {
			resp.stamp(o)
		}
		all = append(all, objs...)
		if next == "" || next == page {
			return all, nil
		}
		page = next
	}
}

func checkCall(bucket, name string, generation int64) error {
	if err := ValidateBucketName(bucket); err != nil {
		return fmt.Errorf("gcsjson: %w", err)
	}
	if err := ValidateObjectName(name); err != nil {
		return fmt.Errorf("gcsjson: %w", err)
	}
	if generation < 0 {
		return fmt.Errorf("gcsjson: ifGenerationMatch %d must not be negative", generation)
	}
	return nil
}

// objectPath escapes the name as one path segment, so "/" becomes "%2F".
func objectPath(bucket, name string) string {
	return "/storage/v1/b/" + url.PathEscape(bucket) + "/o/" + url.PathEscape(name)
}

// url joins the endpoint and an escaped path, keeping the escaping exactly.
func (c *Client) url(escapedPath string, q url.Values) *url.URL {
	u := c.base
	raw := c.base.EscapedPath() + escapedPath
	path, err := url.PathUnescape(raw)
	if err != nil {
		// Unreachable: raw is built from PathEscape output.
		panic("gcsjson: bad escaped path " + raw)
	}
	u.Path, u.RawPath = path, raw
	u.RawQuery = q.Encode()
	return &u
}

// A CallOption changes how one call behaves.
type CallOption func(*call)

// FailOnRateLimit makes a call return a 429 (GCS's limit of about one write
// per second per object) at once instead of retrying it, unless an earlier
// attempt of the call may have landed and may still be in flight (it was
// sent less than two attempt timeouts ago): then the call goes on, so that
// such a write does not land after its caller has moved on. A caller that
// races others for an object, such as an acquisition, would rather read
// again and choose anew than wait its turn on a contended object; the
// returned error's MayHaveApplied says whether it must look for a write of
// its own.
func FailOnRateLimit() CallOption { return func(cl *call) { cl.failOn429 = true } }

// call is one API call: the same request, sent once per attempt.
type call struct {
	failOn429          bool
	op, bucket, object string
	method             string
	url                *url.URL
	body               []byte
	contentType        string
}

// error returns the *Error of a call that failed after attempts attempts;
// the caller fills in why.
func (cl *call) error(attempts int) *Error {
	return &Error{Op: cl.op, Bucket: cl.bucket, Object: cl.object, Attempts: attempts}
}

// response is what one attempt got back: its send time, and the status's
// headers and body if an answer arrived.
type response struct {
	call     *call
	header   http.Header
	body     []byte
	sentAt   time.Time
	attempts int
	// replays counts the times the transport asked to re-send the body:
	// net/http's HTTP/2 transport silently re-sends a request after some
	// stream errors, so an earlier send of this attempt may have landed.
	replays atomic.Int32
}

func (r *response) object() (*Object, error) {
	o, err := ParseObject(r.body)
	if err != nil {
		// A 2xx to a write means it was applied, whatever the body says.
		e := r.call.error(r.attempts)
		e.Err, e.MayHaveApplied = err, r.call.method != http.MethodGet
		return nil, e
	}
	r.stamp(o)
	return o, nil
}

// stamp records the facts of the response on o.
func (r *response) stamp(o *Object) {
	if d, err := http.ParseTime(r.header.Get("Date")); err == nil {
		o.ServerTime = d
	}
	o.SentAt = r.sentAt
	o.Attempts = r.attempts
}

// send is the one path by which requests leave the client. It retries
// transient failures as the package comment describes. Its errors are
// *Error values.
func (c *Client) send(ctx context.Context, cl *call) (*response, error) {
	// One idempotency token for all attempts lets GCS recognise retries.
	token := randomHex()
	isWrite := cl.method != http.MethodGet
	var mayHaveApplied bool
	var firstMaybe time.Time // when the first attempt that may have landed was sent
	var lastMaybe time.Time  // ...and the last
	mayHaveLanded := func(sentAt time.Time) {
		if firstMaybe.IsZero() {
			firstMaybe = sentAt
		}
		lastMaybe = sentAt
		mayHaveApplied = true
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			// Nothing was sent this time.
			e := cl.error(attempt - 1)
			e.Err, e.MayHaveApplied = err, mayHaveApplied
			return nil, e
		}
		start := time.Now()
		resp, status, err := c.attempt(ctx, cl, token)
		sent := resp != nil // false if no request left (credentials failed)
		if sent && isWrite && resp.replays.Load() > 0 {
			// The transport re-sent this write: its first send may have
			// landed, and the answer may be to the second.
			mayHaveLanded(resp.sentAt)
		}
		if err == nil && status/100 == 2 {
			if !firstMaybe.IsZero() {
				// An earlier send may have landed and this answer be GCS's
				// replay of it: the write is as old as that send.
				resp.sentAt = firstMaybe
			}
			resp.attempts = attempt
			c.observe(ctx, cl, attempt, status, nil, start, false, false)
			return resp, nil
		}
		fail := cl.error(attempt)
		var retry, ambiguous bool
		switch {
		case err != nil && ctx.Err() != nil:
			// The caller gave up with this attempt in flight: it may land,
			// if it was sent at all.
			fail.Err = ctx.Err()
			fail.Message = printable(err.Error(), maxMessage)
			fail.MayHaveApplied = mayHaveApplied || isWrite && sent
			c.observe(ctx, cl, attempt, 0, err, start, isWrite && sent, false)
			return nil, fail
		case err != nil:
			fail.Err = err
			retry, ambiguous = transientError(err)
			if status/100 == 2 {
				ambiguous = true // the write was applied; only its answer is unreadable
			}
		default:
			e := ParseError(status, resp.body)
			fail.Code, fail.Reason, fail.Message = e.Code, e.Reason, e.Message
			retry, ambiguous = transientStatus(status)
		}
		if ambiguous && isWrite && sent {
			mayHaveLanded(resp.sentAt)
		}
		fail.MayHaveApplied = mayHaveApplied
		// A 429 tells nothing about an earlier attempt still in flight,
		// which may land later: retry it in place until no such attempt can
		// be in flight. Retrying longer would only wait in line on a
		// contended object (simulation seed 18483).
		inFlight := mayHaveApplied && time.Since(lastMaybe) < 2*c.retry.AttemptTimeout
		retry = retry && (c.retry.MaxAttempts == 0 || attempt < c.retry.MaxAttempts) &&
			!(cl.failOn429 && status == http.StatusTooManyRequests && !inFlight)
		c.observe(ctx, cl, attempt, status, err, start, ambiguous && isWrite && sent, retry)
		if !retry {
			return nil, fail
		}
		delay := backoff.Full(c.jitter, backoff.Step(c.retry.MinBackoff, c.retry.MaxBackoff, attempt-1))
		if status == http.StatusTooManyRequests {
			// At least a second, jittered, so that clients that met the
			// limit together do not retry together.
			delay += RateLimitBackoff
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "gcsjson: retrying",
			slog.String("op", cl.op), slog.String("object", objectRef(cl.bucket, cl.object)),
			slog.Int("attempt", attempt), slog.String("error", fail.Error()), slog.Duration("delay", delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			last := fail.cause()
			fail.Code, fail.Reason, fail.Err, fail.Message = 0, "", ctx.Err(), last
			return nil, fail
		case <-t.C:
		}
	}
}

// observe reports an attempt to Config.OnAttempt, if set.
func (c *Client) observe(ctx context.Context, cl *call, attempt, status int, err error, start time.Time, mayHaveApplied, retry bool) {
	if c.onAttempt == nil {
		return
	}
	c.onAttempt(ctx, Attempt{
		Op: cl.op, Bucket: cl.bucket, Object: cl.object,
		Attempt: attempt, Status: status, Err: err,
		Duration:       time.Since(start),
		MayHaveApplied: mayHaveApplied,
		Retry:          retry,
	})
}

// attempt sends the call once. It returns the response and its status, or
// an error if no complete response arrived. The response is nil only if no
// request was sent.
func (c *Client) attempt(ctx context.Context, cl *call, token string) (*response, int, error) {
	if d, ok := ctx.Deadline(); c.retry.AttemptTimeout > 0 && (!ok || time.Until(d) > c.retry.AttemptTimeout) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.retry.AttemptTimeout)
		defer cancel()
	}
	r := &response{call: cl}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	// The URL is set below rather than formatted and parsed again.
	req, err := http.NewRequestWithContext(ctx, cl.method, "", body)
	if err != nil {
		return nil, 0, err
	}
	if cl.body != nil {
		req.GetBody = func() (io.ReadCloser, error) {
			r.replays.Add(1)
			return io.NopCloser(bytes.NewReader(cl.body)), nil
		}
	}
	u := *cl.url
	req.URL, req.Host = &u, u.Host
	req.Header = http.Header{
		"User-Agent":                   c.userAgent,
		"Accept":                       acceptJSON,
		"X-Goog-Gcs-Idempotency-Token": {token},
	}
	if cl.contentType != "" {
		req.Header["Content-Type"] = []string{cl.contentType}
	}
	if c.auth != nil {
		if err := c.auth.Authorize(ctx, req); err != nil {
			return nil, 0, &authError{err}
		}
	}
	r.sentAt = time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return r, 0, err
	}
	defer resp.Body.Close()
	r.header = resp.Header
	r.body, err = readLimited(resp.Body, resp.ContentLength, c.maxBody)
	if err != nil && resp.StatusCode/100 != 2 && errors.Is(err, ErrResponseTooLarge) {
		// An error's body only serves its message: the start of it will do.
		err = nil
	}
	return r, resp.StatusCode, err
}

// acceptJSON is the Accept header of every request. Header values are
// shared, never modified.
var acceptJSON = []string{"application/json"}

// authError marks a failure to obtain credentials: it is not retried here.
type authError struct{ err error }

// Error says that authorizing the request failed, and why.
func (e *authError) Error() string { return "authorizing request: " + e.err.Error() }

// Unwrap returns the Authorizer's error.
func (e *authError) Unwrap() error { return e.err }

// readLimited reads a response body of at most limit bytes. A larger body is
// an error wrapping ErrResponseTooLarge, returned with its first bytes (at
// most maxMessage of them), and is not read further.
func readLimited(r io.Reader, contentLength, limit int64) ([]byte, error) {
	if contentLength > limit {
		head, _ := io.ReadAll(io.LimitReader(r, maxMessage))
		return head, fmt.Errorf("%w: Content-Length %d exceeds the limit of %d bytes", ErrResponseTooLarge, contentLength, limit)
	}
	if contentLength >= 0 {
		// net/http holds the body to its Content-Length: read it in one go.
		data := make([]byte, contentLength)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, err
		}
		return data, nil
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return data[:min(len(data), maxMessage)], fmt.Errorf("%w: body exceeds the limit of %d bytes", ErrResponseTooLarge, limit)
	}
	return data, nil
}

// transientStatus says whether a status is worth retrying and whether the
// request may nonetheless have been applied.
func transientStatus(code int) (retry, ambiguous bool) {
	switch code {
	case http.StatusTooManyRequests:
		return true, false // rejected before it was applied
	case http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true, true
	}
	return false, false
}

// transientError says whether a transport failure is worth retrying and
// whether the request may nonetheless have been applied. A failure it does
// not recognise is not retried, but counts as possibly applied unless the
// request provably never left.
func transientError(err error) (retry, ambiguous bool) {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, ErrResponseTooLarge):
		return false, false
	case errors.As(err, new(*authError)):
		// No request was sent; a token fetch that timed out may be retried.
		return errors.Is(err, context.DeadlineExceeded), false
	case errors.Is(err, syscall.ECONNREFUSED):
		return true, false // nothing reached the server
	case isServerClosedIdle(err):
		// net/http put the request on a keep-alive connection that the
		// server had just closed: it never reached the server. (net/http
		// retries this itself only for requests it deems idempotent.)
		return true, false
	case errors.As(err, &dnsErr):
		return dnsErr.IsTemporary || dnsErr.IsTimeout, false
	case errors.Is(err, context.DeadlineExceeded), // the attempt's own timeout
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF),
		isHTTP2Reset(err):
		return true, true
	case errors.As(err, &opErr):
		return true, opErr.Op != "dial"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true, true
	}
	return false, true
}

// isServerClosedIdle reports net/http's errServerClosedIdle, which is not
// exported.
func isServerClosedIdle(err error) bool {
	return strings.Contains(err.Error(), "http: server closed idle connection")
}

// isHTTP2Reset reports a stream reset, GOAWAY or lost connection of
// net/http's HTTP/2 transport, whose error types are not exported.
func isHTTP2Reset(err error) bool {
	s := err.Error()
	return strings.Contains(s, "stream error") || strings.Contains(s, "GOAWAY") ||
		strings.Contains(s, "http2: client connection lost") || strings.Contains(s, "http2: client connection force closed")
}

// randomHex returns 128 random bits, hex-encoded: idempotency tokens and
// multipart boundaries.
func randomHex() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
