package dimutex

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// An Option configures a Mutex, an Election or a Semaphore. Options are
// checked together by the constructor, before any request.
type Option func(*config)

type config struct {
	ttl            time.Duration
	refresh        time.Duration
	refreshSet     bool
	owner          string
	value          string
	httpClient     *http.Client
	httpClientSet  bool
	tokenSource    oauth2.TokenSource
	endpoint       string
	endpointSet    bool
	logger         *slog.Logger
	trace          *Trace
	backoffMin     time.Duration
	backoffMax     time.Duration
	attemptTimeout time.Duration
}

// WithTTL sets how long a lease lives without a refresh: from MinTTL (1 s)
// to MaxTTL (24 h); the default is 60 s. A crashed holder's lock is taken
// over about TTL + 1 s after its last write.
func WithTTL(d time.Duration) Option { return func(c *config) { c.ttl = d } }

// WithRefreshInterval sets how often a lease is refreshed in the background
// (default TTL/3). It must be less than the TTL; 0 disables automatic
// refresh, leaving it to Lease.Refresh. GCS allows about one write per
// second to an object, so an interval under a second is refused by GCS
// with 429s, which the lease retries.
func WithRefreshInterval(d time.Duration) Option {
	return func(c *config) { c.refresh, c.refreshSet = d, true }
}

// WithOwner sets a human-readable description of the holder, stored with the
// lock for operators (default "hostname/pid"). It is at most MaxOwnerBytes
// of UTF-8 without control characters.
func WithOwner(s string) Option { return func(c *config) { c.owner = s } }

// WithValue sets the value that a lease publishes from the moment it is
// acquired, for followers and operators to read (see Election and
// Lease.Proclaim): at most MaxValueBytes of UTF-8. The default is none.
func WithValue(s string) Option { return func(c *config) { c.value = s } }

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

// WithLogger sets where locks and their leases log: retries at debug
// level, a lost lease at warn level. The default, like nil, logs nothing.
// Access tokens are never logged (fencing tokens are, as "token").
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithTrace sets the functions called as events happen; see Trace. The
// default, like nil, calls none and costs nothing.
func WithTrace(t *Trace) Option { return func(c *config) { c.trace = t } }

// WithBackoff bounds the exponential backoff between retries of a failed
// request, and between a waiter's polls (defaults 100 ms and 5 s).
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) { c.backoffMin, c.backoffMax = min, max }
}

// WithAttemptTimeout bounds each request (default 10 s), so that a hung
// connection cannot consume a lease. A lease's requests are also cut off at
// its deadline.
func WithAttemptTimeout(d time.Duration) Option { return func(c *config) { c.attemptTimeout = d } }

// apply runs opts over the defaults and checks the result.
func apply(opts []Option) (config, error) {
	c := config{
		ttl:            DefaultTTL,
		backoffMin:     DefaultMinBackoff,
		backoffMax:     DefaultMaxBackoff,
		attemptTimeout: DefaultAttemptTimeout,
	}
	for _, opt := range opts {
		if opt == nil {
			return c, &ConfigError{Option: "Option", Value: "nil", Reason: "a nil Option was passed"}
		}
		opt(&c)
	}
	return c, c.check()
}

// check validates the options together and fills in derived defaults.
func (c *config) check() error {
	bad := func(option, value, reason string) error {
		return &ConfigError{Option: option, Value: value, Reason: reason}
	}
	switch {
	case c.ttl < MinTTL:
		return bad("WithTTL", c.ttl.String(), fmt.Sprintf("the TTL must be at least %v", MinTTL))
	case c.ttl > MaxTTL:
		return bad("WithTTL", c.ttl.String(), fmt.Sprintf("the TTL must be at most %v", MaxTTL))
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
	if err := checkValue("WithValue", c.value); err != nil {
		return err
	}
	if c.owner == "" {
		c.owner = DefaultOwner()
	}
	return checkOwner(c.owner)
}

func checkOwner(s string) error {
	bad := func(reason string) error {
		return &ConfigError{Option: "WithOwner", Value: shorten(s), Reason: reason}
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

// checkValue checks a value to publish (WithValue, Campaign, Proclaim);
// option names the caller in the error.
func checkValue(option, s string) error {
	switch {
	case len(s) > MaxValueBytes:
		return &ConfigError{Option: option, Value: shorten(s),
			Reason: fmt.Sprintf("is %d bytes; the limit is %d", len(s), MaxValueBytes)}
	case !utf8.ValidString(s):
		return &ConfigError{Option: option, Value: shorten(s), Reason: "must be valid UTF-8"}
	}
	return nil
}

// shorten quotes s for an error message, cut to a length a person reads.
func shorten(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}
