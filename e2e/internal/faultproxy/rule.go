package faultproxy

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// Fault is what the proxy does to a request that a Rule fires on.
// The zero value, None, means no fault; it is not a valid Rule.Fault.
type Fault uint8

const (
	// None is the zero Fault. Log entries carry it for requests that no
	// rule fired on; a Rule must not use it.
	None Fault = iota

	// Status500 answers 500 with a GCS JSON error body
	// (domain "global", reason "backendError"). The request is not forwarded.
	Status500
	// Status503 answers 503 with a GCS JSON error body
	// (domain "global", reason "backendError"). The request is not forwarded.
	Status503
	// Status429 answers 429 with a GCS JSON error body
	// (domain "usageLimits", reason "rateLimitExceeded"), as GCS does for
	// more than about one write per second to one object.
	// The request is not forwarded.
	Status429
	// Status408 answers 408 with a GCS JSON error body
	// (domain "global", reason "requestTimeout"). The request is not forwarded.
	Status408
	// Status400 answers 400 with a GCS JSON error body (domain "global",
	// reason "invalid"): a permanent error that a client must not retry.
	// The request is not forwarded.
	Status400
	// Status401 answers 401 with a GCS JSON error body (domain "global",
	// reason "required"): a permanent error that a client must not retry.
	// The request is not forwarded.
	Status401

	// ResetBefore aborts the TCP connection with a RST without forwarding
	// the request: the client gets a connection error and nothing is applied.
	ResetBefore
	// ResetAfter forwards the request, so the target applies it, discards
	// the answer and then aborts the TCP connection with a RST: the client
	// gets a connection error although the request took effect.
	ResetAfter

	// Latency waits Rule.Delay and then forwards the request unchanged. If
	// the client gives up (its request context ends) during the wait, the
	// request is not forwarded. Latency with a zero Delay forwards at once;
	// as the first rule that fires wins, that exempts the requests it
	// matches from the rules after it.
	Latency

	// Truncate forwards the request, then sends the client the target's
	// status line and headers with the true Content-Length, but only
	// Rule.Keep bytes of the body, and closes the connection. The request
	// was applied; reading the body fails with io.ErrUnexpectedEOF. An
	// answer without body (HEAD, 204) cannot be cut: the client gets it
	// whole, then the connection closes.
	Truncate

	// Hang never answers: it holds the request, unforwarded, until the
	// client gives up or the proxy is closed.
	Hang

	numFaults // keep last
)

// String returns a short name for f, such as "503" or "reset-after".
func (f Fault) String() string {
	switch f {
	case None:
		return "none"
	case Status500:
		return "500"
	case Status503:
		return "503"
	case Status429:
		return "429"
	case Status408:
		return "408"
	case Status400:
		return "400"
	case Status401:
		return "401"
	case ResetBefore:
		return "reset-before"
	case ResetAfter:
		return "reset-after"
	case Latency:
		return "latency"
	case Truncate:
		return "truncate"
	case Hang:
		return "hang"
	}
	return fmt.Sprintf("Fault(%d)", uint8(f))
}

// Methods is a set of HTTP methods that a Rule matches.
// The zero value matches every method, including ones not listed here.
type Methods uint8

// The methods a Rule can name. Combine them with |.
const (
	MethodGet Methods = 1 << iota
	MethodHead
	MethodPost
	MethodPut
	MethodPatch
	MethodDelete

	// Reads are the methods that do not change the target: GET and HEAD.
	Reads = MethodGet | MethodHead
	// Writes are the methods that may change the target:
	// POST, PUT, PATCH and DELETE.
	Writes = MethodPost | MethodPut | MethodPatch | MethodDelete
)

// methodBit returns the Methods bit for an HTTP method, or 0 for a method
// that has none (such as OPTIONS).
func methodBit(m string) Methods {
	switch m {
	case http.MethodGet:
		return MethodGet
	case http.MethodHead:
		return MethodHead
	case http.MethodPost:
		return MethodPost
	case http.MethodPut:
		return MethodPut
	case http.MethodPatch:
		return MethodPatch
	case http.MethodDelete:
		return MethodDelete
	}
	return 0
}

// RuleID identifies a rule added to a Proxy. IDs start at 1 and are never
// reused by the same Proxy.
type RuleID uint64

// A Rule says which requests get a fault, which fault, and when.
//
// A request matches a rule when it passes every matcher that is set
// (Methods, Path, Query, Match). Rules are tried in the order they were
// added, and the first rule that fires on a request decides its fault;
// the rules after it do not see that request at all (their counters do
// not move and they draw no random number).
//
// A matching request fires the rule when every firing condition that is
// set holds:
//   - Every K: this is the Kth, 2Kth, 3Kth... request that the rule matched;
//   - Probability P: a draw from the proxy's seeded source is below P;
//   - Next N: the rule has fired fewer than N times so far (a budget).
//
// A rule with none of them set fires on every matching request. So
// {Next: 1} fires on the next matching request only, {Every: 2} on every
// second one, and {Every: 2, Next: 3} on the 2nd, 4th and 6th and then
// never again.
type Rule struct {
	// Methods restricts the rule to these methods. Zero matches any method.
	Methods Methods

	// Path, if not empty, must occur in the request's path as it was
	// received, still percent-encoded: object "a/b c" appears in
	// "/storage/v1/b/B/o/a%2Fb%20c".
	Path string

	// Query, if not empty, must occur in the request's raw query,
	// for example "ifGenerationMatch=0" for creations.
	Query string

	// Match, if not nil, must report true. It is called while the proxy's
	// rule lock is held, so it must be quick and must not call the Proxy's
	// methods. It may read the request body; it gets a copy.
	Match func(*http.Request) bool

	// Fault is what happens to a request the rule fires on. It is required.
	Fault Fault

	// Delay, if positive, is waited before the fault is applied, for any
	// Fault. If the client gives up during the wait, nothing more happens:
	// the request is not forwarded. For Latency it is the added latency.
	Delay time.Duration

	// Keep is how many body bytes Truncate sends. Zero means half the body,
	// rounded down; it is capped at one byte less than the body.
	Keep int

	// Every, if positive, fires the rule only on every Everyth matching
	// request.
	Every int

	// Probability, if positive, fires the rule on a matching request with
	// this probability, drawn from the proxy's seeded source. 1 always
	// fires and draws nothing; zero means the condition is not set.
	Probability float64

	// Next, if positive, is how many times the rule fires in all; after
	// that it stays in place but never fires.
	Next int
}

// validate reports why r cannot be added, or nil.
func (r *Rule) validate() error {
	switch {
	case r.Fault == None || r.Fault >= numFaults:
		return fmt.Errorf("invalid Fault %v", r.Fault)
	case r.Delay < 0:
		return fmt.Errorf("negative Delay %v", r.Delay)
	case r.Keep < 0:
		return fmt.Errorf("negative Keep %d", r.Keep)
	case r.Every < 0:
		return fmt.Errorf("negative Every %d", r.Every)
	case r.Next < 0:
		return fmt.Errorf("negative Next %d", r.Next)
	case math.IsNaN(r.Probability) || r.Probability < 0 || r.Probability > 1:
		return fmt.Errorf("probability %v not in [0, 1]", r.Probability)
	}
	return nil
}

// matches reports whether req passes every matcher of r that is set.
func (r *Rule) matches(req *http.Request) bool {
	if r.Methods != 0 && r.Methods&methodBit(req.Method) == 0 {
		return false
	}
	if r.Path != "" && !strings.Contains(req.URL.EscapedPath(), r.Path) {
		return false
	}
	if r.Query != "" && !strings.Contains(req.URL.RawQuery, r.Query) {
		return false
	}
	return true
}

// rule is a Rule added to a Proxy, with its counters.
// Guarded by Proxy.mu.
type rule struct {
	id      RuleID
	Rule        // a copy; the caller's Rule may change afterwards
	matched int // requests matched (that reached this rule)
	fired   int // times fired
}
