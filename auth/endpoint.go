package auth

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SourceWithEndpoint is the EndpointError.Source of a value given through the
// WithEndpoint option. A value read from $STORAGE_EMULATOR_HOST has Source
// EmulatorHostEnv.
const SourceWithEndpoint = "WithEndpoint"

// Endpoint says where requests go and whether they may carry credentials.
type Endpoint struct {
	// URL is the root that JSON API paths such as "/storage/v1/b/B/o" are
	// appended to: scheme and host[:port], an optional path prefix, no
	// trailing slash, no query, fragment or userinfo.
	URL *url.URL

	// Emulator is true when URL came from $STORAGE_EMULATOR_HOST; requests to
	// an emulator are never authenticated.
	Emulator bool
}

// Authenticated reports whether requests to e carry credentials: false for an
// emulator and for any endpoint that is not https, so that no token ever
// travels in the clear.
func (e Endpoint) Authenticated() bool {
	return !e.Emulator && e.URL != nil && e.URL.Scheme == "https"
}

// String returns e's URL, followed by " (emulator)" for an emulator. It
// returns "" for the zero Endpoint.
func (e Endpoint) String() string {
	if e.URL == nil {
		return ""
	}
	if e.Emulator {
		return e.URL.String() + " (emulator)"
	}
	return e.URL.String()
}

// ResolveEndpoint picks the endpoint: explicit (the WithEndpoint option) if
// non-empty, parsed by ParseEndpoint; else $STORAGE_EMULATOR_HOST read through
// getenv, parsed by ParseEmulatorHost (an empty value counts as unset); else
// DefaultEndpoint. A nil getenv means os.Getenv.
//
// An invalid value is an error, never a silent fallback: a typo must not send
// an emulator's traffic, unauthenticated or not, to production.
func ResolveEndpoint(explicit string, getenv func(string) string) (Endpoint, error) {
	if explicit != "" {
		u, err := ParseEndpoint(explicit)
		if err != nil {
			return Endpoint{}, err
		}
		return Endpoint{URL: u}, nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if v := getenv(EmulatorHostEnv); v != "" {
		u, err := ParseEmulatorHost(v)
		if err != nil {
			return Endpoint{}, err
		}
		return Endpoint{URL: u, Emulator: true}, nil
	}
	u, err := ParseEndpoint(DefaultEndpoint)
	if err != nil {
		panic("auth: DefaultEndpoint does not parse: " + err.Error())
	}
	return Endpoint{URL: u}, nil
}

// ParseEndpoint parses an explicit endpoint URL, as given to the WithEndpoint
// option. It requires:
//   - scheme http or https, written as "scheme://";
//   - a host, and a port in 1-65535 if a port is given;
//   - no userinfo (it would leak credentials), no query, no fragment;
//   - no whitespace or control characters.
//
// A trailing "/storage/v1" or "/storage/v1/" (what users pass to the official
// SDK's option.WithEndpoint) is stripped, and then any trailing slash, so the
// result is the root the JSON API paths are appended to. The result has only
// Scheme, Host, Path and RawPath set.
//
// Errors are *EndpointError with Source SourceWithEndpoint; they match
// ErrInvalidEndpoint.
func ParseEndpoint(s string) (*url.URL, error) {
	return parseEndpoint(SourceWithEndpoint, s, s)
}

// ParseEmulatorHost parses a $STORAGE_EMULATOR_HOST value with the official Go
// SDK's rules: a value without "://" means "http://"+value; a value with a
// scheme is used as given (http or https only). Then it applies the same
// checks and the same path clean-up as ParseEndpoint; a path prefix such as
// "http://host:1/gcs" is kept.
//
// Errors are *EndpointError with Source EmulatorHostEnv; they match
// ErrInvalidEndpoint.
func ParseEmulatorHost(s string) (*url.URL, error) {
	full := s
	if s != "" && !strings.Contains(s, "://") {
		full = "http://" + s
	}
	return parseEndpoint(EmulatorHostEnv, s, full)
}

// EndpointError reports an endpoint value that cannot be used.
type EndpointError struct {
	// Source is where the value came from: SourceWithEndpoint or
	// EmulatorHostEnv.
	Source string
	// Value is the value as given, except that a password in it is
	// replaced by "xxxxx".
	Value string
	// Reason says what is wrong with Value.
	Reason string
}

// Error returns, for example,
//
//	auth: STORAGE_EMULATOR_HOST="localhost:99999": port 99999 out of range
//	auth: WithEndpoint("ftp://h"): unsupported scheme "ftp" (want http or https)
func (e *EndpointError) Error() string {
	if e.Source == EmulatorHostEnv {
		return fmt.Sprintf("auth: %s=%q: %s", e.Source, e.Value, e.Reason)
	}
	return fmt.Sprintf("auth: %s(%q): %s", e.Source, e.Value, e.Reason)
}

// Is reports whether target is ErrInvalidEndpoint.
func (e *EndpointError) Is(target error) bool { return target == ErrInvalidEndpoint }

func endpointError(source, value, reason string) error {
	return &EndpointError{Source: source, Value: redact(value), Reason: reason}
}

// parseEndpoint checks full, the URL to use, and reports problems against
// value, the text the user wrote, so messages quote what they will recognise.
func parseEndpoint(source, value, full string) (*url.URL, error) {
	fail := func(reason string) (*url.URL, error) {
		return nil, endpointError(source, value, reason)
	}
	if value == "" {
		return fail("empty value")
	}
	if reason := clean(value); reason != "" {
		return fail(reason)
	}
	if !strings.Contains(full, "://") {
		// Without this, url.Parse reads "host:8080" as scheme "host".
		return fail(`missing "scheme://" (want e.g. "https://host" or "http://host:port")`)
	}
	u, err := url.Parse(full)
	if err != nil {
		// url.Error repeats the whole URL; keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail(err.Error())
	}
	switch {
	case u.Scheme == "":
		return fail(`missing scheme (want "http://" or "https://")`)
	case u.Scheme != "http" && u.Scheme != "https":
		return fail(fmt.Sprintf("unsupported scheme %q (want http or https)", u.Scheme))
	case u.Opaque != "":
		return fail(fmt.Sprintf(`missing "//" after %q`, u.Scheme+":"))
	case u.User != nil:
		return fail("userinfo not allowed (it would leak credentials)")
	case u.Hostname() == "":
		return fail("missing host")
	case strings.HasSuffix(u.Host, ":"):
		return fail("empty port")
	case u.RawQuery != "" || u.ForceQuery:
		return fail("query not allowed")
	case u.Fragment != "" || strings.Contains(full, "#"):
		return fail("fragment not allowed")
	}
	if p := u.Port(); p != "" {
		// url.Parse checks only that the port is digits.
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fail(fmt.Sprintf("port %s out of range", p))
		}
	}
	return &url.URL{
		Scheme:  u.Scheme,
		Host:    u.Host,
		Path:    trimAPIPath(u.Path),
		RawPath: trimAPIPath(u.RawPath),
	}, nil
}

// clean returns why s cannot be an endpoint on character grounds, or "".
// url.Parse would let some of these through, and a stray newline or space
// from a shell or a config file should be named, not half-parsed.
func clean(s string) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			return "contains whitespace"
		case unicode.IsControl(r):
			return "contains a control character"
		}
	}
	return ""
}

// trimAPIPath strips a trailing "/storage/v1" and trailing slashes, turning
// what users pass to the official SDK into the root that dimutex appends
// "/storage/v1/..." and "/upload/storage/v1/..." to.
func trimAPIPath(p string) string {
	p = strings.TrimRight(p, "/")
	p = strings.TrimSuffix(p, "/storage/v1")
	return strings.TrimRight(p, "/")
}

// redact hides what may be a credential in an endpoint, so that an error
// about it does not itself leak one: the userinfo ("user:pw@" or
// "token@") becomes "xxxxx@", and a query ("?access_token=..."), "?xxxxx".
// It works on text that url.Parse may reject.
func redact(s string) string {
	if q := strings.IndexByte(s, '?'); q >= 0 && q+1 < len(s) {
		s = s[:q+1] + "xxxxx"
	}
	i := strings.Index(s, "://")
	if i < 0 {
		// ParseEmulatorHost accepts "user:pw@host" as "http://user:pw@host".
		i = -3
	}
	start := i + 3
	rest := s[start:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return s
	}
	return s[:start] + "xxxxx" + rest[at:]
}
