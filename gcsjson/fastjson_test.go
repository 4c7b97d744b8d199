package gcsjson_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/dimutex/dimutex/gcsjson"
)

// The fast path decodes exactly what encoding/json decodes, or declines.
func FuzzFastJSON(f *testing.F) {
	for _, seed := range []string{
		`{"kind":"storage#object","id":"b/o/1","name":"a/b","bucket":"b","generation":"1712345678901234","metageneration":"1","contentType":"text/plain; charset=utf-8","cacheControl":"no-store","timeCreated":"2026-01-02T03:04:05.123456Z","updated":"2026-01-02T03:04:05.123456Z","size":"12","metadata":{"dimutex-lease":"0123","dimutex-ttl":"60000","dimutex-owner":"hôst/1"}}`,
		`{"name":"x","generation":5,"metadata":null,"acl":[{"entity":"a","x":[1,2.5e3,true,false,null]}],"owner":{"entity":"u"}}`,
		`{"Name":"x","generation":"1"}`,
		`{"name":"x\u0041","generation":"1"}`,
		`{"name":"x","name":"y","generation":"1"}`,
		`{"generation":"01"}`,
		`{"generation":-0}`,
		`{"kind":"storage#objects","items":[{"name":"a","generation":"1"},{"name":"b","generation":"2"}],"nextPageToken":"t"}`,
		`{"kind":"storage#objects"}`,
		`{"items":[]}`,
		`[]`, `null`, `{}`, ` { } `, `{"items":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if fast, ok := gcsjson.FastObject(data); ok {
			var slow gcsjson.ObjectJSON
			if err := json.Unmarshal(data, &slow); err != nil {
				t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, data)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("object %q:\nfast %+v\nslow %+v", data, fast, slow)
			}
		}
		if fast, ok := gcsjson.FastList(data); ok {
			var slow gcsjson.ListJSON
			if err := json.Unmarshal(data, &slow); err != nil {
				t.Fatalf("fast path accepted a list that encoding/json refuses (%v): %q", err, data)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("list %q:\nfast %+v\nslow %+v", data, fast, slow)
			}
		}
	})
}
