// Package auth resolves where dimutex sends requests and what credentials it
// sends.
//
// [ResolveEndpoint] picks the endpoint: an explicit URL (the WithEndpoint
// option), else $STORAGE_EMULATOR_HOST, else [DefaultEndpoint]. Requests to
// an emulator or to any plain-http endpoint are never authenticated; see
// [Endpoint.Authenticated].
//
// [Credentials] supplies OAuth2 access tokens, either from a caller's
// [golang.org/x/oauth2.TokenSource] or from Application Default Credentials,
// resolved lazily at the first request. [Credentials.Authorize] refuses to put
// a token on a request that is not https.
//
// Nothing in this package puts an access token, or the contents of a
// credentials file, into an error message or into the String or GoString
// output of its types.
package auth

import "errors"

const (
	// DefaultEndpoint is the root of the GCS JSON API, used when neither the
	// WithEndpoint option nor $STORAGE_EMULATOR_HOST is set.
	DefaultEndpoint = "https://storage.googleapis.com"

	// EmulatorHostEnv names the environment variable that points clients at a
	// GCS emulator, as the official SDKs read it.
	EmulatorHostEnv = "STORAGE_EMULATOR_HOST"

	// CredentialsEnv names the environment variable that holds the path of a
	// credentials file for Application Default Credentials.
	CredentialsEnv = "GOOGLE_APPLICATION_CREDENTIALS"

	// Scope is the OAuth2 scope requested for Application Default
	// Credentials: reading and writing objects, nothing more.
	Scope = "https://www.googleapis.com/auth/devstorage.read_write"
)

var (
	// ErrInvalidEndpoint is matched (errors.Is) by every *EndpointError.
	ErrInvalidEndpoint = errors.New("auth: invalid endpoint")

	// ErrNoCredentials means no credentials were found in any of the places
	// Application Default Credentials looks. The error's message lists the
	// places.
	ErrNoCredentials = errors.New("auth: no credentials found")

	// ErrBadCredentials is matched (errors.Is) by every *CredentialsFileError:
	// a credentials file was named or found but cannot be used.
	ErrBadCredentials = errors.New("auth: unusable credentials file")

	// ErrInsecureTransport means a caller asked to put credentials on a
	// request that is not https.
	ErrInsecureTransport = errors.New("auth: refusing to send credentials without https")
)

// kindError is an error with its own message that still matches a sentinel
// with errors.Is, so messages need not repeat the sentinel's text.
type kindError struct {
	kind error  // the sentinel it matches
	msg  string // the whole message
	err  error  // optional cause, for errors.Is/As
}

// Error returns the message.
func (e *kindError) Error() string { return e.msg }

// Is reports whether target is the sentinel e matches.
func (e *kindError) Is(target error) bool { return target == e.kind }

// Unwrap returns the underlying error, if any.
func (e *kindError) Unwrap() error { return e.err }
