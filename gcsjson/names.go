package gcsjson

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// ErrInvalidName matches the errors of ValidateBucketName and
// ValidateObjectName.
var ErrInvalidName = errors.New("gcsjson: invalid name")

// NameError reports a bucket or object name that GCS would refuse.
type NameError struct {
	Kind   string // "bucket" or "object"
	Name   string
	Reason string
}

// Error names the bad name and the rule it breaks.
func (e *NameError) Error() string {
	name := e.Name
	if len(name) > 80 {
		name = name[:80] + "…"
	}
	return fmt.Sprintf("invalid %s name %q: %s", e.Kind, name, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidName) true.
func (e *NameError) Is(target error) bool { return target == ErrInvalidName }

// ValidateBucketName checks name against GCS's bucket naming rules:
// https://cloud.google.com/storage/docs/buckets#naming.
func ValidateBucketName(name string) error {
	bad := func(reason string) error { return &NameError{Kind: "bucket", Name: name, Reason: reason} }
	switch {
	case name == "":
		return bad("must not be empty")
	case len(name) < 3:
		return bad("must be at least 3 characters")
	case len(name) > 222:
		return bad("must be at most 222 characters")
	case !strings.Contains(name, ".") && len(name) > 63:
		return bad("must be at most 63 characters unless it contains dots")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return bad(fmt.Sprintf("character %q is not allowed: use lowercase letters, digits, '-', '_' and '.'", r))
		}
	}
	if !isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return bad("must start and end with a letter or digit")
	}
	for _, part := range strings.Split(name, ".") {
		if part == "" {
			return bad("must not contain empty dot-separated parts")
		}
		if len(part) > 63 {
			return bad("each dot-separated part must be at most 63 characters")
		}
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return bad("must not be an IP address")
	}
	if strings.HasPrefix(name, "goog") {
		return bad(`must not start with "goog"`)
	}
	if strings.Contains(name, "google") || strings.Contains(name, "g00gle") {
		return bad(`must not contain "google" or a misspelling of it`)
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// MaxObjectNameBytes is the longest object name GCS accepts, in bytes of UTF-8.
const MaxObjectNameBytes = 1024

// ValidateObjectName checks name against GCS's object naming rules:
// https://cloud.google.com/storage/docs/objects#naming.
func ValidateObjectName(name string) error {
	bad := func(reason string) error { return &NameError{Kind: "object", Name: name, Reason: reason} }
	switch {
	case name == "":
		return bad("must not be empty")
	case len(name) > MaxObjectNameBytes:
		return bad(fmt.Sprintf("is %d bytes; the limit is %d bytes of UTF-8", len(name), MaxObjectNameBytes))
	case !utf8.ValidString(name):
		return bad("must be valid UTF-8")
	case strings.ContainsAny(name, "\r\n"):
		return bad("must not contain carriage return or line feed")
	case name == "." || name == "..":
		return bad(`must not be "." or ".."`)
	case strings.HasPrefix(name, ".well-known/acme-challenge/"):
		return bad(`must not start with ".well-known/acme-challenge/"`)
	}
	return nil
}
