package gcsjson_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"

	"github.com/dimutex/dimutex/gcsjson"
)

// The error parser never panics, and what it returns is one printable line.
func FuzzParseError(f *testing.F) {
	f.Add(412, []byte(`{"error":{"code":412,"message":"Precondition failed","errors":[{"domain":"global","reason":"conditionNotMet"}]}}`))
	f.Add(404, []byte(`{"error":{"code":404,"message":"No such object: b/o","errors":[{"reason":"notFound"}]}}`))
	f.Add(429, []byte(`{"error":{"errors":[{"domain":"usageLimits","reason":"rateLimitExceeded","message":"slow down"}]}}`))
	f.Add(503, []byte("<html>Service Unavailable\r\nInjected: header</html>"))
	f.Add(500, []byte(`{"error":"flat string"}`))
	f.Add(400, []byte("\xff\xfe\x00"))
	f.Fuzz(func(t *testing.T, code int, body []byte) {
		e := gcsjson.ParseError(code, body)
		for _, s := range []string{e.Error(), e.Message, e.Reason} {
			if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
				t.Fatalf("%q carries characters that are not printable", s)
			}
		}
	})
}

// The object parser never panics, and accepts only positive generations.
func FuzzParseObject(f *testing.F) {
	f.Add([]byte(`{"name":"a/b","bucket":"b","generation":"1712345678901234","metageneration":"1","size":"3",` +
		`"updated":"2026-01-02T03:04:05.123456Z","timeCreated":"2026-01-02T03:04:05Z","metadata":{"dimutex-lease":"ab"}}`))
	f.Add([]byte(`{"generation":12}`))
	f.Add([]byte(`{"generation":"-1"}`))
	f.Add([]byte(`{"generation":"99999999999999999999"}`))
	f.Add([]byte(`{"generation":"1","updated":"yesterday"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := gcsjson.ParseObject(data)
		if err == nil && obj.Generation <= 0 {
			t.Fatalf("accepted generation %d", obj.Generation)
		}
	})
}

// The hand-written JSON string encoder of uploads agrees with encoding/json.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `quo"te`, `back\slash`, "nul\x00", "tab\t", "ünï", "\xff\xfe", "\u2028", "🔒"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := gcsjson.AppendJSONString(nil, s)
		var got, want string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%q encodes as %s, which is not JSON: %v", s, enc, err)
		}
		std, _ := json.Marshal(s)
		json.Unmarshal(std, &want)
		if got != want {
			t.Fatalf("%q round-trips as %q; through encoding/json, as %q", s, got, want)
		}
	})
}
