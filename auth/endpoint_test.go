package auth

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// A parse case: want is the resulting URL, or "" when the value is rejected
// with a reason containing reason. The error quotes the value as in, or as
// value if that is set.
type parseCase struct {
	in     string
	want   string
	reason string
	value  string
}

func TestParseEmulatorHost(t *testing.T) {
	tests := []parseCase{
		// Accepted, as the official Go SDK accepts them.
		{in: "127.0.0.1:4443", want: "http://127.0.0.1:4443"},
		{in: "localhost:8080", want: "http://localhost:8080"},
		{in: "localhost", want: "http://localhost"},
		{in: "[::1]:4443", want: "http://[::1]:4443"},
		{in: "http://127.0.0.1:1/", want: "http://127.0.0.1:1"},
		{in: "https://h:1/storage/v1/", want: "https://h:1"},
		{in: "http://h:1/storage/v1", want: "http://h:1"},
		{in: "h:1/storage/v1/", want: "http://h:1"},
		{in: "HTTP://H:1", want: "http://H:1"},
		{in: "http://h:65535", want: "http://h:65535"},
		{in: "http://h:1/gcs/", want: "http://h:1/gcs"},
		{in: "http://h:1//", want: "http://h:1"},

		// Rejected.
		{in: "", reason: "empty value"},
		{in: " ", reason: "contains whitespace"},
		{in: " localhost:8080", reason: "contains whitespace"},
		{in: "host with space:1", reason: "contains whitespace"},
		{in: "localhost:8080\n", reason: "contains whitespace"},
		{in: "http://h\n", reason: "contains whitespace"},
		{in: "h\x00:1", reason: "contains a control character"},
		{in: "h\x7f:1", reason: "contains a control character"},
		{in: "h\xff:1", reason: "not valid UTF-8"},
		{in: "http://", reason: "missing host"},
		{in: "http://:8080", reason: "missing host"},
		{in: "http:///storage/v1", reason: "missing host"},
		{in: "://h", reason: "missing protocol scheme"},
		{in: "ftp://h", reason: `unsupported scheme "ftp" (want http or https)`},
		{in: "gs://bucket", reason: `unsupported scheme "gs"`},
		{in: "h:abc", reason: `invalid port ":abc" after host`},
		{in: "h:", reason: "empty port"},
		{in: "h:0", reason: "port 0 out of range"},
		{in: "h:70000", reason: "port 70000 out of range"},
		{in: "localhost:99999", reason: "port 99999 out of range"},
		{in: "h:99999999999999999999", reason: "port 99999999999999999999 out of range"},
		{in: "::1:4443", reason: "invalid port"},
		{in: "[::1", reason: "missing ']' in host"},
		{in: "http://user:pw@h", reason: "userinfo not allowed", value: "http://xxxxx@h"},
		{in: "user@h:1", reason: "userinfo not allowed", value: "xxxxx@h:1"},
		{in: "http://h/?x=1", reason: "query not allowed", value: "http://h/?xxxxx"},
		{in: "http://h/?", reason: "query not allowed"},
		{in: "http://h/#f", reason: "fragment not allowed"},
		{in: "http://h/#", reason: "fragment not allowed"},
	}
	runParseCases(t, ParseEmulatorHost, EmulatorHostEnv, tests)
}

func TestParseEndpoint(t *testing.T) {
	tests := []parseCase{
		// Accepted.
		{in: "https://storage.googleapis.com", want: "https://storage.googleapis.com"},
		{in: "https://storage.googleapis.com/", want: "https://storage.googleapis.com"},
		{in: "https://storage.googleapis.com/storage/v1/", want: "https://storage.googleapis.com"},
		{in: "https://storage.googleapis.com/storage/v1", want: "https://storage.googleapis.com"},
		{in: "https://private.example.com:8443/proxy/storage/v1/", want: "https://private.example.com:8443/proxy"},
		{in: "https://h/a%2Fb/", want: "https://h/a%2Fb"},
		{in: "http://127.0.0.1:1/", want: "http://127.0.0.1:1"},
		{in: "http://[::1]:4443", want: "http://[::1]:4443"},

		// Rejected. Unlike STORAGE_EMULATOR_HOST, the scheme is required.
		{in: "", reason: "empty value"},
		{in: " ", reason: "contains whitespace"},
		{in: "https://h ", reason: "contains whitespace"},
		{in: "https://h\t", reason: "contains whitespace"},
		{in: "storage.googleapis.com", reason: `missing "scheme://"`},
		{in: "localhost:8080", reason: `missing "scheme://"`},
		{in: "h:abc", reason: `missing "scheme://"`},
		{in: "https:h", reason: `missing "scheme://"`},
		{in: "://h", reason: "missing protocol scheme"},
		{in: "https://", reason: "missing host"},
		{in: "ftp://h", reason: `unsupported scheme "ftp"`},
		{in: "https://h:0", reason: "port 0 out of range"},
		{in: "https://h:70000", reason: "port 70000 out of range"},
		{in: "https://user:pw@h", reason: "userinfo not allowed", value: "https://xxxxx@h"},
		{in: "https://h/?x=1", reason: "query not allowed", value: "https://h/?xxxxx"},
		{in: "https://h/#f", reason: "fragment not allowed"},
		{in: "https://h%zz/", reason: `invalid URL escape "%zz"`},
	}
	runParseCases(t, ParseEndpoint, SourceWithEndpoint, tests)
}

func runParseCases(t *testing.T, parse func(string) (*url.URL, error), source string, tests []parseCase) {
	t.Helper()
	for _, tt := range tests {
		u, err := parse(tt.in)
		if tt.want != "" {
			if err != nil {
				t.Errorf("%q: unexpected error: %v", tt.in, err)
			} else if got := u.String(); got != tt.want {
				t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q: got %q, want an error containing %q", tt.in, u, tt.reason)
			continue
		}
		if !errors.Is(err, ErrInvalidEndpoint) {
			t.Errorf("%q: errors.Is(%v, ErrInvalidEndpoint) = false", tt.in, err)
		}
		var ee *EndpointError
		if !errors.As(err, &ee) {
			t.Errorf("%q: error %v is not an *EndpointError", tt.in, err)
			continue
		}
		value := tt.in
		if tt.value != "" {
			value = tt.value
		}
		if ee.Source != source || ee.Value != value || !strings.Contains(ee.Reason, tt.reason) {
			t.Errorf("%q: got %#v, want Source %q, Value %q, Reason containing %q", tt.in, ee, source, value, tt.reason)
		}
		// The message names where the value came from and quotes it.
		if msg := err.Error(); !strings.Contains(msg, source) || !strings.Contains(msg, strconv.Quote(value)) {
			t.Errorf("%q: message %q does not name %s and the value", tt.in, msg, source)
		}
	}
}

func TestEndpointErrorMessages(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			name: "emulator host",
			err:  second(ParseEmulatorHost("localhost:99999")),
			want: `auth: STORAGE_EMULATOR_HOST="localhost:99999": port 99999 out of range`,
		},
		{
			name: "WithEndpoint option",
			err:  second(ParseEndpoint("ftp://h")),
			want: `auth: WithEndpoint("ftp://h"): unsupported scheme "ftp" (want http or https)`,
		},
		{
			name: "a password is never echoed",
			err:  second(ParseEndpoint("https://alice:hunter2@h")),
			want: `auth: WithEndpoint("https://xxxxx@h"): userinfo not allowed (it would leak credentials)`,
		},
		{
			name: "nor a token as the userinfo",
			err:  second(ParseEndpoint("https://ya29.secret@h")),
			want: `auth: WithEndpoint("https://xxxxx@h"): userinfo not allowed (it would leak credentials)`,
		},
		{
			name: "nor a token in the query",
			err:  second(ParseEndpoint("https://h/?access_token=ya29.secret")),
			want: `auth: WithEndpoint("https://h/?xxxxx"): query not allowed`,
		},
		{
			name: "nor when the URL does not parse",
			err:  second(ParseEmulatorHost("alice:hunter2@h:abc/x")),
			want: `auth: STORAGE_EMULATOR_HOST="xxxxx@h:abc/x": invalid port ":abc" after host`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

func TestResolveEndpoint(t *testing.T) {
	tests := []struct {
		name          string
		explicit      string
		emulator      string // $STORAGE_EMULATOR_HOST
		want          string // Endpoint.String()
		authenticated bool
		errSource     string // if non-empty, want an *EndpointError from here
	}{
		{name: "default", want: "https://storage.googleapis.com", authenticated: true},
		{name: "emulator without scheme", emulator: "127.0.0.1:4443", want: "http://127.0.0.1:4443 (emulator)"},
		{name: "https emulator is still unauthenticated", emulator: "https://localhost:4443", want: "https://localhost:4443 (emulator)"},
		{name: "explicit wins over emulator", explicit: "https://h/storage/v1/", emulator: "localhost:1", want: "https://h", authenticated: true},
		{name: "explicit http is never authenticated", explicit: "http://localhost:9000", want: "http://localhost:9000"},
		{name: "bad emulator is an error, not a fallback", emulator: "localhost:99999", errSource: EmulatorHostEnv},
		{name: "blank emulator is set, and bad", emulator: " ", errSource: EmulatorHostEnv},
		{name: "bad explicit", explicit: "storage.googleapis.com", errSource: SourceWithEndpoint},
		{name: "bad explicit wins over good emulator", explicit: "ftp://h", emulator: "localhost:1", errSource: SourceWithEndpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == EmulatorHostEnv {
					return tt.emulator
				}
				return ""
			}
			e, err := ResolveEndpoint(tt.explicit, getenv)
			if tt.errSource != "" {
				var ee *EndpointError
				if !errors.As(err, &ee) || ee.Source != tt.errSource {
					t.Fatalf("got %v, %v; want an *EndpointError from %s", e, err, tt.errSource)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := e.Authenticated(); got != tt.authenticated {
				t.Errorf("Authenticated() = %v, want %v", got, tt.authenticated)
			}
			if e.Emulator != (tt.emulator != "" && tt.explicit == "") {
				t.Errorf("Emulator = %v", e.Emulator)
			}
		})
	}
}

func TestResolveEndpointNilGetenvReadsEnvironment(t *testing.T) {
	t.Setenv(EmulatorHostEnv, "localhost:4443")
	e, err := ResolveEndpoint("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.String(), "http://localhost:4443 (emulator)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEndpointAuthenticated(t *testing.T) {
	https, _ := ParseEndpoint("https://h")
	http, _ := ParseEndpoint("http://h")
	tests := []struct {
		e    Endpoint
		want bool
	}{
		{Endpoint{URL: https}, true},
		{Endpoint{URL: https, Emulator: true}, false},
		{Endpoint{URL: http}, false},
		{Endpoint{URL: http, Emulator: true}, false},
		{Endpoint{}, false},
	}
	for _, tt := range tests {
		if got := tt.e.Authenticated(); got != tt.want {
			t.Errorf("%+v.Authenticated() = %v, want %v", tt.e, got, tt.want)
		}
	}
}
