package dimutextest

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"mime/multipart"
	"strings"
	"testing"
	"time"
)

// The hand-written metadata decoder agrees with encoding/json on whatever
// it accepts.
func FuzzDecodeMetadata(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { "name" : "a" , "contentType":"t","cacheControl":"c","metadata":{"k":"v","k2":""}} `,
		`{"Name":"a"}`, `{"name":"a\"b"}`, `{"metadata":{}}`, `{"metadata":null}`, `{"x":"y","name":"n"}`,
		`{"name":"a","name":"b"}`, `{"metadata":{"a":"1"},"metadata":{"b":"2"}}`, "{\"name\":\"\xff\"}", `{"name":1}`,
		`{"name":"a"} x`, `{"name":"a",}`, `{`, ``, `{"ﬁle":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeMetadataFast(data)
		if !ok {
			return
		}
		var slow uploadMetadata
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", data, err)
		}
		if fast.Name != slow.Name || fast.ContentType != slow.ContentType || fast.CacheControl != slow.CacheControl ||
			!maps.Equal(fast.Metadata, slow.Metadata) || (fast.Metadata == nil) != (slow.Metadata == nil) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", data, fast, slow)
		}
	})
}

// The multipart splitter agrees with mime/multipart on bodies that
// mime/multipart reads as exactly two parts.
func FuzzSplitRelated(f *testing.F) {
	f.Add("b0", "{}", "text/plain", "data", false)
	f.Add("x y", `{"name":"n"}`, "", "--x y\r\n--x yz", true)
	f.Add("a", "", "application/json", "", false)
	f.Fuzz(func(t *testing.T, boundary, meta, mediaType, data string, lf bool) {
		if strings.ContainsAny(mediaType, "\r\n:") {
			return
		}
		nl := "\r\n"
		if lf {
			nl = "\n"
		}
		body := "--" + boundary + nl + "Content-Type: application/json" + nl + nl + meta + nl +
			"--" + boundary + nl
		if mediaType != "" {
			body += "Content-Type: " + mediaType + nl
		}
		body += nl + data + nl + "--" + boundary + "--" + nl
		var want []part
		r := multipart.NewReader(strings.NewReader(body), boundary)
		for {
			p, err := r.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return // not a body mime/multipart can read
			}
			d, err := io.ReadAll(p)
			if err != nil {
				return
			}
			want = append(want, part{contentType: p.Header.Get("Content-Type"), data: d})
		}
		if len(want) != 2 {
			return
		}
		got, err := splitRelated([]byte(body), boundary)
		if err != nil {
			t.Fatalf("%q: %v; mime/multipart read %+v", body, err, want)
		}
		if len(got) != 2 {
			t.Fatalf("%q: %d parts", body, len(got))
		}
		for i := range 2 {
			if !bytes.Equal(got[i].data, want[i].data) || got[i].contentType != strings.TrimSpace(want[i].contentType) {
				t.Fatalf("%q part %d: got %q %q, want %q %q", body, i, got[i].contentType, got[i].data, want[i].contentType, want[i].data)
			}
		}
	})
}

// Object resources are valid JSON that decodes to the object's fields,
// whatever the names and metadata hold.
func FuzzObjectResource(f *testing.F) {
	f.Add("b", "n", "k", "v", "text/plain")
	f.Add("b", "a\"\\\n\x00\u2028\xff", "\x01", "</script>", "")
	f.Fuzz(func(t *testing.T, bucket, name, k, v, ct string) {
		o := &object{bucket: bucket, name: name, gen: 123, metagen: 1, contentType: ct, cacheControl: "no-store",
			data: []byte("d"), metadata: map[string]string{k: v, "z": "last"}, created: time.Unix(1, 2000), updated: time.Unix(1, 2000)}
		b := appendObjectResource(nil, o)
		var got struct {
			Name, Bucket, ContentType, Generation, ID string
			Metadata                                  map[string]string
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		fix := func(s string) string { // what encoding/json makes of s
			b, _ := json.Marshal(s)
			var out string
			json.Unmarshal(b, &out)
			return out
		}
		if got.Name != fix(name) || got.Bucket != fix(bucket) || got.ContentType != fix(ct) || got.Generation != "123" ||
			got.ID != fix(bucket)+"/"+fix(name)+"/123" || k != "z" && got.Metadata[fix(k)] != fix(v) {
			t.Fatalf("%q decoded to %+v", b, got)
		}
	})
}

// The same, on arbitrary bodies: wherever mime/multipart reads exactly two
// parts, splitRelated reads the same two. (mime/multipart also accepts a
// body without its close delimiter; splitRelated, like GCS, does not.)
func FuzzSplitRelatedRaw(f *testing.F) {
	f.Add([]byte("--b\r\n\r\n{}\r\n--b\r\nContent-Type: text/plain\r\n\r\ndata\r\n--b--\r\n"), "b")
	f.Add([]byte("pre\n--b \n\n{}\n--b\nContent-Type: a\n\n\r\n--b--"), "b")
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		if boundary == "" {
			return
		}
		var want []part
		r := multipart.NewReader(bytes.NewReader(body), boundary)
		for {
			p, err := r.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
			d, err := io.ReadAll(p)
			if err != nil {
				return
			}
			want = append(want, part{contentType: p.Header.Get("Content-Type"), data: d})
			if len(want) > 2 {
				return
			}
		}
		if len(want) != 2 || !bytes.Contains(body, []byte("--"+boundary+"--")) {
			return
		}
		got, err := splitRelated(body, boundary)
		if err != nil {
			t.Fatalf("%q: %v; mime/multipart read %q", body, err, want)
		}
		for i := range 2 {
			if !bytes.Equal(got[i].data, want[i].data) {
				t.Fatalf("%q part %d: got %q, want %q", body, i, got[i].data, want[i].data)
			}
		}
	})
}
