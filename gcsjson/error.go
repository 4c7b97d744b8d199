package gcsjson

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// Sentinels matched by an *Error with errors.Is.
var (
	// ErrNotFound matches an *Error with status 404: the object or bucket
	// does not exist.
	ErrNotFound = errors.New("gcsjson: not found")
	// ErrPreconditionFailed matches an *Error with status 412: the object's
	// generation did not match ifGenerationMatch, so nothing was written.
	ErrPreconditionFailed = errors.New("gcsjson: precondition failed")
)

// Error is a failed call: a response from the JSON API with a status other
// than 2xx, or, with Code 0, a transport failure (Err says which).
type Error struct {
	// Op is the call that failed: "insert", "get", "delete" or "list".
	Op string
	// Bucket and Object name what the call addressed.
	Bucket, Object string
	// Code is the HTTP status code of the last attempt, or 0 if the last
	// attempt got no complete response; Err then says why.
	Code int
	// Reason is the first reason in the error body, such as
	// "conditionNotMet", "notFound" or "rateLimitExceeded"; it may be empty.
	Reason string
	// Message is the server's human-readable message; it may be empty.
	Message string
	// Attempts is how many requests the call sent, retries included.
	Attempts int
	// MayHaveApplied reports that an earlier attempt of this call ended
	// without a definite answer (a timeout, a reset or a 5xx), so the write
	// may have been applied even though this final answer says otherwise.
	MayHaveApplied bool
	// Err is the cause when Code is 0: a transport error, or the context's
	// error when the caller gave up. Message then holds the last attempt's
	// error, if another.
	Err error
}

// Error names the call, the object and the failure.
func (e *Error) Error() string {
	s := fmt.Sprintf("gcsjson: %s %s: %s", e.Op, objectRef(e.Bucket, e.Object), e.cause())
	if e.Attempts > 1 {
		s += fmt.Sprintf(" [after %d attempts]", e.Attempts)
	}
	return s
}

// objectRef names an object as gs://bucket/name, quoted if the name holds
// characters that are not printable (GCS allows all but CR and LF).
func objectRef(bucket, name string) string {
	ref := "gs://" + bucket + "/" + name
	if strings.ContainsFunc(ref, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(ref)
	}
	return ref
}

// cause describes the failure without naming the call.
func (e *Error) cause() string {
	var b strings.Builder
	if e.Code == 0 {
		fmt.Fprintf(&b, "%v", e.Err)
		if e.Message != "" {
			fmt.Fprintf(&b, " (last attempt: %s)", e.Message)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "%d %s", e.Code, http.StatusText(e.Code))
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	if e.Message != "" && e.Message != http.StatusText(e.Code) {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) and errors.Is(err,
// ErrPreconditionFailed) work on the status code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	case ErrPreconditionFailed:
		return e.Code == http.StatusPreconditionFailed
	}
	return false
}

// Unwrap returns Err, so errors.Is(err, context.DeadlineExceeded) works.
func (e *Error) Unwrap() error { return e.Err }

// IsNotFound reports whether err is, or wraps, a 404 from the API.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsPreconditionFailed reports whether err is, or wraps, a 412 from the API.
func IsPreconditionFailed(err error) bool { return errors.Is(err, ErrPreconditionFailed) }

// IsRateLimited reports whether err is, or wraps, a 429 from the API: GCS's
// limit of about one write per second per object, or a quota.
func IsRateLimited(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == http.StatusTooManyRequests
}

// errorBody is GCS's error envelope:
// {"error":{"code":412,"message":"...","errors":[{"domain":"global","reason":"conditionNotMet"}]}}.
type errorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Errors  []struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"errors"`
	} `json:"error"`
}

// maxMessage bounds how much of a server's message reaches an error string.
const maxMessage = 256

// ParseError builds an *Error from a response's status and body. A body that
// is not GCS's JSON envelope still gives an *Error with the status code and a
// short, printable excerpt of the body. It never panics, whatever the input.
func ParseError(code int, body []byte) *Error {
	e := &Error{Code: code}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && (eb.Error.Code != 0 || eb.Error.Message != "" || len(eb.Error.Errors) > 0) {
		e.Message = eb.Error.Message
		if len(eb.Error.Errors) > 0 {
			e.Reason = eb.Error.Errors[0].Reason
			if e.Message == "" {
				e.Message = eb.Error.Errors[0].Message
			}
		}
	} else {
		e.Message = string(body)
	}
	e.Message = printable(e.Message, maxMessage)
	e.Reason = printable(e.Reason, maxMessage)
	return e
}

// printable trims s to at most n bytes of valid UTF-8 on one line, so that a
// hostile or broken server cannot forge log lines through an error.
func printable(s string, n int) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for i, r := range s {
		if i >= n {
			b.WriteString("…")
			break
		}
		switch {
		case r == utf8.RuneError:
			b.WriteRune('�')
		case !unicode.IsPrint(r):
			b.WriteByte(' ') // control characters, line separators, and the like
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ErrorClass returns the class of a transport error, for metrics that want
// few label values: "canceled", "timeout", "reset" (a connection reset or
// aborted, a stream reset, a connection the server had closed), "eof" (an
// answer cut short), "refused", "dns", or "" for an error of none of these
// classes, and for nil. The common classes are told without allocating.
func ErrorClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &dnsErr):
		return "dns"
	case isHTTP2Reset(err), isServerClosedIdle(err):
		return "reset"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	}
	return ""
}
