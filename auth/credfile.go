package auth

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"golang.org/x/oauth2/jwt"
)

// SourceGcloudADC is the CredentialsFileError.Source of the file written by
// "gcloud auth application-default login". A file named by
// $GOOGLE_APPLICATION_CREDENTIALS has Source CredentialsEnv.
const SourceGcloudADC = "gcloud ADC file"

// CredentialsFileError reports a credentials file that was named or found but
// cannot be used. It matches ErrBadCredentials. Neither its message nor Err
// contains anything read from the file: such files hold private keys and
// refresh tokens.
type CredentialsFileError struct {
	// Source is CredentialsEnv or SourceGcloudADC.
	Source string
	// Path is the file's path.
	Path string
	// Reason says what is wrong, without quoting the file.
	Reason string
	// Err is the underlying error, if any: a *fs.PathError when the file
	// cannot be read (so errors.Is(err, fs.ErrNotExist) works), or the error
	// of golang.org/x/oauth2/google when it rejects the file.
	Err error
}

// Error returns, for example,
//
//	auth: GOOGLE_APPLICATION_CREDENTIALS="/etc/key.json": not valid JSON (syntax error at byte offset 1)
//	auth: gcloud ADC file "/home/u/.config/gcloud/application_default_credentials.json": file is empty
func (e *CredentialsFileError) Error() string {
	if e.Source == CredentialsEnv {
		return fmt.Sprintf("auth: %s=%q: %s", e.Source, e.Path, e.Reason)
	}
	return fmt.Sprintf("auth: %s %q: %s", e.Source, e.Path, e.Reason)
}

// Is reports whether target is ErrBadCredentials.
func (e *CredentialsFileError) Is(target error) bool { return target == ErrBadCredentials }

// Unwrap returns e.Err.
func (e *CredentialsFileError) Unwrap() error { return e.Err }

func (c *Credentials) fromFile(ctx context.Context, source, path string, params google.CredentialsParams) (oauth2.TokenSource, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", &CredentialsFileError{Source: source, Path: path, Reason: "cannot read file: " + pathErrReason(err), Err: err}
	}
	return c.fromJSON(ctx, source, path, b, params)
}

// fromJSON checks a credentials file and makes its token source, which does
// no I/O until its first Token call.
//
// Two types are built in: service_account and authorized_user, the keys and
// the gcloud login that most users have. The other types that
// golang.org/x/oauth2/google knows (workload identity federation,
// impersonation, ...) go through its general resolver, which links about
// 190 KB more into every binary; only Credentials made by ApplicationDefault
// use it, so that programs that do not need it do not pay for it.
func (c *Credentials) fromJSON(ctx context.Context, source, path string, b []byte, params google.CredentialsParams) (oauth2.TokenSource, string, error) {
	fail := func(reason string, err error) (oauth2.TokenSource, string, error) {
		return nil, "", &CredentialsFileError{Source: source, Path: path, Reason: reason, Err: err}
	}
	typ, reason := checkCredentialsJSON(b)
	if reason != "" {
		return fail(reason, nil)
	}
	var ts oauth2.TokenSource
	var err error
	switch google.CredentialsType(typ) {
	case google.ServiceAccount:
		var cfg *jwt.Config
		if cfg, err = google.JWTConfigFromJSON(b, params.Scopes...); err == nil {
			ts = cfg.TokenSource(ctx)
		}
	case google.AuthorizedUser:
		ts, err = userTokenSource(ctx, b, params)
	default:
		if c.otherTypes == nil {
			return fail(fmt.Sprintf("credentials of type %q are not built in; "+
				"use WithTokenSource(auth.ApplicationDefault()), which resolves every type", typ), nil)
		}
		ts, err = c.otherTypes(ctx, b, typ, params)
	}
	if err != nil {
		// Its messages today name fields, not values; check rather than trust.
		if quotesFile(err.Error(), b) {
			return fail("rejected by golang.org/x/oauth2/google (its message quotes the file, so it is withheld)", nil)
		}
		return fail("rejected by golang.org/x/oauth2/google: "+err.Error(), err)
	}
	from := fmt.Sprintf("the credentials file %q named by $%s", path, CredentialsEnv)
	if source != CredentialsEnv {
		from = fmt.Sprintf("the %s %q", source, path)
	}
	return ts, from, nil
}

// userTokenSource makes the token source of an authorized_user file, as
// golang.org/x/oauth2/google does: a refresh token for Google's OAuth2
// endpoint, or for the file's token_uri.
func userTokenSource(ctx context.Context, b []byte, params google.CredentialsParams) (oauth2.TokenSource, error) {
	var f struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		RefreshToken string `json:"refresh_token"`
		AuthURI      string `json:"auth_uri"`
		TokenURI     string `json:"token_uri"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, errors.New("authorized_user file does not decode")
	}
	cfg := &oauth2.Config{
		ClientID:     f.ClientID,
		ClientSecret: f.ClientSecret,
		Scopes:       params.Scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   cmp.Or(f.AuthURI, google.Endpoint.AuthURL),
			TokenURL:  cmp.Or(f.TokenURI, google.Endpoint.TokenURL),
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
	return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: f.RefreshToken}), nil
}

// checkCredentialsJSON returns the file's "type", or a reason it is unusable
// that never quotes the file.
func checkCredentialsJSON(b []byte) (typ, reason string) {
	if len(bytes.TrimSpace(b)) == 0 {
		return "", "file is empty"
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		// A json.SyntaxError's message quotes the offending character.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return "", fmt.Sprintf("not valid JSON (syntax error at byte offset %d)", se.Offset)
		}
		return "", "not a JSON object"
	}
	if doc == nil {
		return "", "not a JSON object"
	}
	// x/oauth2/google would take these as a three-legged OAuth flow, which
	// needs a browser and panics without one.
	if _, ok := doc["web"]; ok {
		return "", `an OAuth client ID file ("web"), not a credentials file`
	}
	if _, ok := doc["installed"]; ok {
		return "", `an OAuth client ID file ("installed"), not a credentials file`
	}
	raw, ok := doc["type"]
	if !ok {
		return "", `no "type" field (want one of ` + supportedTypes + ")"
	}
	if err := json.Unmarshal(raw, &typ); err != nil {
		return "", `"type" is not a string`
	}
	required, ok := requiredFields(typ)
	if !ok {
		// The value is not quoted: it is file content, and this may not be
		// a credentials file at all.
		return "", `unsupported "type" (want one of ` + supportedTypes + ")"
	}
	for _, f := range required {
		var v string
		if json.Unmarshal(doc[f], &v) != nil || v == "" {
			return "", fmt.Sprintf("%s file without %q", typ, f)
		}
	}
	return typ, ""
}

const supportedTypes = "service_account, authorized_user, external_account, " +
	"external_account_authorized_user, impersonated_service_account, gdch_service_account"

// requiredFields reports whether x/oauth2/google supports typ and which
// fields it needs that it would otherwise only miss at the first token fetch.
func requiredFields(typ string) (fields []string, ok bool) {
	switch google.CredentialsType(typ) {
	case google.ServiceAccount:
		return []string{"client_email", "private_key"}, true
	case google.AuthorizedUser:
		return []string{"client_id", "client_secret", "refresh_token"}, true
	case google.ExternalAccount, google.ExternalAccountAuthorizedUser,
		google.ImpersonatedServiceAccount, google.GDCHServiceAccount:
		return nil, true
	}
	return nil, false
}

// quotesFile reports whether msg contains any string value of the JSON
// document b long enough to be a secret or part of one.
func quotesFile(msg string, b []byte) bool {
	var doc any
	if json.Unmarshal(b, &doc) != nil {
		return true // cannot tell: assume the worst
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case string:
			return len(v) >= 8 && strings.Contains(msg, v)
		case []any:
			for _, e := range v {
				if walk(e) {
					return true
				}
			}
		case map[string]any:
			for _, e := range v {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(doc)
}

// pathErrReason is err without the path, which the caller prints already.
func pathErrReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// gcloudADCPath is where gcloud writes Application Default Credentials,
// computed as golang.org/x/oauth2/google does.
func gcloudADCPath() string {
	const f = "application_default_credentials.json"
	if runtime.GOOS == "windows" {
		return filepath.Join(os.Getenv("APPDATA"), "gcloud", f)
	}
	return filepath.Join(homeDir(), ".config", "gcloud", f)
}

// homeDir prefers $HOME over os/user, as x/oauth2/google does
// (golang.org/issue/13470).
func homeDir() string {
	if v := os.Getenv("HOME"); v != "" {
		return v
	}
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return ""
}
