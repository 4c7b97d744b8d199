package dimutextest_test

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dimutex/dimutex/dimutextest"
)

// Buckets: POST /storage/v1/b?project=P creates one, once; GET reads it.
func TestBuckets(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		create := func(body string) reply {
			return a.do("POST", "/storage/v1/b?project=p", http.Header{"Content-Type": {"application/json"}}, []byte(body))
		}
		r := create(`{"name":"new-bucket"}`)
		if r.status != 200 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		m := r.json(t)
		if m["kind"] != "storage#bucket" || m["name"] != "new-bucket" || m["id"] != "new-bucket" {
			t.Errorf("bucket resource %s", r.body)
		}
		parseTime(t, m["timeCreated"])

		create(`{"name":"new-bucket"}`).wantError(t, 409, "conflict", "global")
		create(`{"name":"x"}`).wantError(t, 400, "invalid", "global")
		create(`{"name":"Upper-Case"}`).wantError(t, 400, "invalid", "global")
		create(`{"name":"goog-bucket"}`).wantError(t, 400, "invalid", "global")
		create(`{"name":`).wantError(t, 400, "invalid", "global")
		a.do("POST", "/storage/v1/b", nil, []byte(`{"name":"other-bucket"}`)).wantError(t, 400, "required", "global")

		if r := a.do("GET", "/storage/v1/b/new-bucket", nil, nil); r.status != 200 || r.json(t)["name"] != "new-bucket" {
			t.Errorf("get bucket: %d %s", r.status, r.body)
		}
		a.do("GET", "/storage/v1/b/no-such-bucket", nil, nil).wantError(t, 404, "notFound", "global")

		// The new bucket takes objects.
		if r := a.uploadRaw("new-bucket", "name=o&ifGenerationMatch=0", "multipart/related; boundary=x",
			multipart("x", `{}`, "text/plain", "data")); r.status != 200 {
			t.Errorf("upload to the new bucket: %d %s", r.status, r.body)
		}
	})
}

// An upload with ifGenerationMatch=0 creates the object once; the object
// resource has GCS's fields, 64-bit numbers as strings.
func TestUploadCreate(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		md := `{"name":"lock","contentType":"application/json","cacheControl":"no-store","metadata":{"owner":"me","b":"2"}}`
		r := a.uploadRaw(bkt, "name=lock&ifGenerationMatch=0", "multipart/related; boundary=XYZ",
			multipart("XYZ", md, "application/octet-stream", `{"x":1}`))
		if r.status != 200 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		m := r.json(t)
		g, _ := strconv.ParseInt(m["generation"].(string), 10, 64)
		want := map[string]any{
			"kind": "storage#object", "name": "lock", "bucket": bkt,
			"id":             bkt + "/lock/" + m["generation"].(string),
			"metageneration": "1", "size": "7",
			"contentType": "application/json", "cacheControl": "no-store",
			"md5Hash":  md5Base64(`{"x":1}`),
			"crc32c":   crc32cBase64(`{"x":1}`),
			"metadata": map[string]any{"owner": "me", "b": "2"},
		}
		for k, v := range want {
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				t.Errorf("%s = %v, want %v", k, m[k], v)
			}
		}
		if g <= 0 {
			t.Errorf("generation %v", m["generation"])
		}
		created, updated := parseTime(t, m["timeCreated"]), parseTime(t, m["updated"])
		if !created.Equal(updated) || created.UnixMicro() != g {
			t.Errorf("timeCreated %v, updated %v, generation %d: want equal, generation in µs", created, updated, g)
		}
		if !strings.HasSuffix(m["updated"].(string), "Z") || len(m["updated"].(string)) != len("2006-01-02T15:04:05.000000Z") {
			t.Errorf("updated %q: want RFC 3339 UTC with microseconds", m["updated"])
		}

		// Again: 412 conditionNotMet, nothing written.
		msg := a.uploadRaw(bkt, "name=lock&ifGenerationMatch=0", "multipart/related; boundary=XYZ",
			multipart("XYZ", md, "text/plain", "other")).wantError(t, 412, "conditionNotMet", "global")
		if msg != "At least one of the pre-conditions you specified did not hold." {
			t.Errorf("412 message %q", msg)
		}
		if o, _ := a.srv.Object(bkt, "lock"); string(o.Data) != `{"x":1}` || o.Generation != g {
			t.Errorf("after the refused upload: %+v", o)
		}
	})
}

// ifGenerationMatch=<current> replaces the object with a new generation; a
// stale generation, or any generation on a missing object, is 412.
func TestUploadCompareAndSwap(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		g1 := generation(t, a.upload("obj", "one", "ifGenerationMatch=0"))
		g2 := generation(t, a.upload("obj", "two", "ifGenerationMatch="+g1))
		if n1, n2 := atoi(g1), atoi(g2); n2 <= n1 {
			t.Errorf("generations %d then %d", n1, n2)
		}
		a.upload("obj", "three", "ifGenerationMatch="+g1).wantError(t, 412, "conditionNotMet", "global")
		a.upload("missing", "x", "ifGenerationMatch="+g1).wantError(t, 412, "conditionNotMet", "global")
		if o, _ := a.srv.Object(bkt, "obj"); string(o.Data) != "two" {
			t.Errorf("data %q, want two", o.Data)
		}
		// No precondition: an unconditional overwrite.
		g3 := generation(t, a.upload("obj", "four", ""))
		// Metageneration preconditions: every generation starts at 1.
		a.upload("obj", "five", "ifMetagenerationMatch=2").wantError(t, 412, "conditionNotMet", "global")
		g4 := generation(t, a.upload("obj", "five", "ifMetagenerationMatch=1&ifGenerationMatch="+g3))
		a.upload("obj", "six", "ifGenerationNotMatch="+g4).wantError(t, 412, "conditionNotMet", "global")
		a.upload("obj", "six", "ifMetagenerationNotMatch=1").wantError(t, 412, "conditionNotMet", "global")
		generation(t, a.upload("obj", "six", "ifGenerationNotMatch="+g3))
		a.upload("missing", "x", "ifMetagenerationMatch=1").wantError(t, 412, "conditionNotMet", "global")
		a.upload("obj", "x", "ifGenerationMatch=abc").wantError(t, 400, "invalid", "global")
	})
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// An upload to a missing bucket is 404.
func TestUploadMissingBucket(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		a.uploadRaw("no-such-bucket", "name=o&ifGenerationMatch=0", "multipart/related; boundary=x",
			multipart("x", `{}`, "text/plain", "d")).wantError(t, 404, "notFound", "global")
	})
}

// uploadType=media: the body is the data, its Content-Type the object's.
func TestUploadMedia(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		r := a.uploadRaw(bkt, "uploadType=media&name=a%2Fb&ifGenerationMatch=0", "text/csv", []byte("1,2\n"))
		m := r.json(t)
		if r.status != 200 || m["name"] != "a/b" || m["contentType"] != "text/csv" || m["size"] != "4" || m["metadata"] != nil {
			t.Errorf("media upload: %d %s", r.status, r.body)
		}
		a.uploadRaw(bkt, "uploadType=media", "text/plain", []byte("x")).wantError(t, 400, "required", "global")
	})
}

// Malformed uploads are 400 and write nothing; resumable ones are 501.
func TestUploadBadRequests(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		ok := multipart("x", `{}`, "text/plain", "d")
		a.do("POST", "/upload/storage/v1/b/"+bkt+"/o?name=o", http.Header{"Content-Type": {"multipart/related; boundary=x"}}, ok).
			wantError(t, 400, "required", "global")
		a.do("POST", "/storage/v1/b/"+bkt+"/o?name=o&uploadType=multipart", http.Header{"Content-Type": {"multipart/related; boundary=x"}}, ok).
			wantError(t, 400, "wrongUrlForUpload", "global")
		a.uploadRaw(bkt, "name=o&uploadType=other", "multipart/related; boundary=x", ok).wantError(t, 400, "invalid", "global")
		a.uploadRaw(bkt, "name=o&uploadType=resumable", "application/json", []byte(`{}`)).wantError(t, 501, "notImplemented", "global")
		for _, c := range []struct{ what, ctype, body string }{
			{"not multipart", "text/plain", string(ok)},
			{"no boundary", "multipart/related", string(ok)},
			{"wrong boundary", "multipart/related; boundary=y", string(ok)},
			{"no close delimiter", "multipart/related; boundary=x", strings.TrimSuffix(string(ok), "--x--\r\n")},
			{"one part", "multipart/related; boundary=x", "--x\r\n\r\n{}\r\n--x--\r\n"},
			{"three parts", "multipart/related; boundary=x", "--x\r\n\r\n{}\r\n--x\r\n\r\na\r\n--x\r\n\r\nb\r\n--x--\r\n"},
			{"metadata not JSON", "multipart/related; boundary=x", string(multipart("x", `{"name":`, "text/plain", "d"))},
			{"metadata value not a string", "multipart/related; boundary=x", string(multipart("x", `{"metadata":{"a":1}}`, "text/plain", "d"))},
			{"bad base64", "multipart/related; boundary=x", "--x\r\n\r\n{}\r\n--x\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--x--\r\n"},
		} {
			r := a.uploadRaw(bkt, "name=o", c.ctype, []byte(c.body))
			if r.status != 400 {
				t.Errorf("%s: %d %s, want 400", c.what, r.status, r.body)
			}
		}
		long := strings.Repeat("a", 1025)
		for _, name := range []string{"", long, "bad\xffutf8", "line\nfeed", "carriage\rreturn", ".", ".."} {
			a.uploadRaw(bkt, "name="+url.QueryEscape(name), "multipart/related; boundary=x",
				multipart("x", `{}`, "text/plain", "d")).wantError(t, 400, "invalid", "global")
		}
		if got := a.srv.Objects(bkt, ""); len(got) != 0 {
			t.Errorf("objects after bad uploads: %v", got)
		}
		// 1024 bytes is allowed.
		generation(t, a.uploadRaw(bkt, "name="+long[:1024], "multipart/related; boundary=x", multipart("x", `{}`, "text/plain", "d")))
	})
}

// The multipart parser accepts what clients send: our client's form, curl
// bodies with bare LF, quoted boundaries, preambles, base64 parts, and
// metadata that needs a full JSON decoder.
func TestUploadMultipartForms(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		for _, c := range []struct {
			what, ctype, body string
			name, data, typ   string
			metadata          map[string]string
		}{
			{"LF lines", "multipart/related; boundary=foo_bar_baz",
				"--foo_bar_baz\nContent-Type: application/json; charset=UTF-8\n\n{\"name\": \"lf\"}\n--foo_bar_baz\nContent-Type: image/jpeg\n\nJPEG\n--foo_bar_baz--\n",
				"lf", "JPEG", "image/jpeg", nil},
			{"quoted boundary, preamble, epilogue", `Multipart/Related; boundary="a b:c"; type="application/json"`,
				"preamble\r\n--a b:c\r\ncontent-type: application/json\r\n\r\n{\"name\":\"q\",\"contentType\":\"text/x\"}\r\n--a b:c\r\n\r\nline1\r\nline2\r\n--a b:c--\r\nepilogue",
				"q", "line1\r\nline2", "text/x", nil},
			{"base64 media", "multipart/related; boundary=x",
				"--x\r\nContent-Type: application/json\r\n\r\n{\"name\":\"b64\"}\r\n--x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n--x--\r\n",
				"b64", "hello", "text/plain", nil},
			{"escapes and unknown fields", "multipart/related; boundary=x",
				string(multipart("x", `{"name":"esc\u00e9\"q","storageClass":"STANDARD","metadata":{"k\n":"v\\"},"acl":[{"entity":"allUsers"}],"size":3}`, "text/plain", "abc")),
				"escé\"q", "abc", "text/plain", map[string]string{"k\n": "v\\"}},
			{"empty media, no metadata name", "multipart/related; boundary=x",
				"--x\r\n\r\n{}\r\n--x\r\n\r\n\r\n--x--", "", "", "application/octet-stream", nil},
			{"delimiter-like data", "multipart/related; boundary=x",
				string(multipart("x", `{}`, "text/plain", "--xy\r\n--x-\r\n-x")), "", "--xy\r\n--x-\r\n-x", "text/plain", nil},
		} {
			name := c.name
			q := ""
			if name == "" {
				name = "noname"
				q = "name=noname"
			}
			r := a.uploadRaw(bkt, q, c.ctype, []byte(c.body))
			if r.status != 200 {
				t.Errorf("%s: %d %s", c.what, r.status, r.body)
				continue
			}
			o, ok := a.srv.Object(bkt, name)
			if !ok || string(o.Data) != c.data || o.ContentType != c.typ || fmt.Sprint(o.Metadata) != fmt.Sprint(c.metadata) {
				t.Errorf("%s: stored %+v %q, want data %q type %q metadata %v", c.what, o, o.Data, c.data, c.typ, c.metadata)
			}
		}
		// name= overrides the metadata's name.
		a.uploadRaw(bkt, "name=from-query", "multipart/related; boundary=x", multipart("x", `{"name":"from-body"}`, "text/plain", "d"))
		if _, ok := a.srv.Object(bkt, "from-query"); !ok {
			t.Errorf("name= did not override the metadata's name: %v", a.srv.Objects(bkt, "from"))
		}
	})
}

// GET reads an object's resource, or its data with alt=media, and honours
// preconditions; a missing object or bucket is 404.
func TestGet(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		g := generation(t, a.upload("dir/obj", "data", "ifGenerationMatch=0"))
		r := a.get("dir/obj", "")
		if r.status != 200 || r.json(t)["generation"] != g || r.json(t)["name"] != "dir/obj" {
			t.Errorf("get: %d %s", r.status, r.body)
		}
		if r := a.get("dir/obj", "?alt=media"); r.status != 200 || string(r.body) != "data" ||
			r.header.Get("Content-Type") != "text/plain" || r.header.Get("X-Goog-Generation") != g {
			t.Errorf("alt=media: %d %q %v", r.status, r.body, r.header)
		}
		if msg := a.get("dir/missing", "").wantError(t, 404, "notFound", "global"); msg != "No such object: "+bkt+"/dir/missing" {
			t.Errorf("404 message %q", msg)
		}
		a.do("GET", objectPath("no-such-bucket", "dir/obj"), nil, nil).wantError(t, 404, "notFound", "global")
		a.get("dir/obj", "?ifGenerationMatch=1").wantError(t, 412, "conditionNotMet", "global")
		a.get("dir/obj", "?ifMetagenerationMatch=2").wantError(t, 412, "conditionNotMet", "global")
		a.get("dir/obj", "?ifGenerationNotMatch="+g).wantError(t, 412, "conditionNotMet", "global")
		if r := a.get("dir/obj", "?ifGenerationMatch="+g+"&ifMetagenerationMatch=1"); r.status != 200 {
			t.Errorf("matching preconditions: %d %s", r.status, r.body)
		}
		a.get("dir/missing", "?ifGenerationMatch=0").wantError(t, 404, "notFound", "global")
		a.get("dir/obj", "?generation=1").wantError(t, 404, "notFound", "global")
		if r := a.get("dir/obj", "?generation="+g); r.status != 200 {
			t.Errorf("generation=live: %d", r.status)
		}
		a.get("dir/obj", "?alt=xml").wantError(t, 400, "invalid", "global")
	})
}

// DELETE enforces its preconditions, unlike fake-gcs-server: a mismatch is
// 412 and the object is kept. Success is 204 with an empty body.
func TestDelete(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		g := generation(t, a.upload("obj", "data", "ifGenerationMatch=0"))
		a.del("obj", "?ifGenerationMatch=1").wantError(t, 412, "conditionNotMet", "global")
		a.del("obj", "?ifMetagenerationMatch=7").wantError(t, 412, "conditionNotMet", "global")
		a.del("obj", "?ifGenerationNotMatch="+g).wantError(t, 412, "conditionNotMet", "global")
		a.del("obj", "?ifGenerationMatch=0").wantError(t, 412, "conditionNotMet", "global")
		if _, ok := a.srv.Object(bkt, "obj"); !ok {
			t.Fatal("a DELETE whose precondition failed deleted the object")
		}
		r := a.del("obj", "?ifGenerationMatch="+g+"&ifMetagenerationMatch=1")
		if r.status != 204 || len(r.body) != 0 || r.length != 0 || r.header.Get("Content-Type") != "" || r.header.Get("Date") == "" {
			t.Errorf("delete: %d %q length %d header %v", r.status, r.body, r.length, r.header)
		}
		if _, ok := a.srv.Object(bkt, "obj"); ok {
			t.Error("the object survived its delete")
		}
		a.del("obj", "?ifGenerationMatch="+g).wantError(t, 404, "notFound", "global")
		a.del("obj", "").wantError(t, 404, "notFound", "global")
		a.do("DELETE", objectPath("no-such-bucket", "obj"), nil, nil).wantError(t, 404, "notFound", "global")
		// Unconditional delete.
		generation(t, a.upload("obj", "data", "ifGenerationMatch=0"))
		if r := a.del("obj", ""); r.status != 204 {
			t.Errorf("unconditional delete: %d", r.status)
		}
	})
}

// Listing: sorted by name, prefix, maxResults and pageToken paging, items
// omitted when empty, delimiter prefixes.
func TestList(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		names := []string{"a/1", "a/2", "a/b/3", "b", "c/4", "a/0"}
		for _, n := range names {
			a.srv.PutObject(bkt, n, []byte(n), nil)
		}
		list := func(q string) (items []string, prefixes []string, next string) {
			t.Helper()
			r := a.do("GET", "/storage/v1/b/"+bkt+"/o"+q, nil, nil)
			m := r.json(t)
			if r.status != 200 || m["kind"] != "storage#objects" {
				t.Fatalf("list %s: %d %s", q, r.status, r.body)
			}
			if v, ok := m["items"]; ok {
				for _, it := range v.([]any) {
					items = append(items, it.(map[string]any)["name"].(string))
				}
				if len(items) == 0 {
					t.Errorf("list %s: empty items present", q)
				}
			}
			ps, _ := m["prefixes"].([]any)
			for _, p := range ps {
				prefixes = append(prefixes, p.(string))
			}
			next, _ = m["nextPageToken"].(string)
			return
		}
		if items, _, next := list(""); !slices.Equal(items, []string{"a/0", "a/1", "a/2", "a/b/3", "b", "c/4"}) || next != "" {
			t.Errorf("all: %v %q", items, next)
		}
		if items, _, _ := list("?prefix=a%2F"); !slices.Equal(items, []string{"a/0", "a/1", "a/2", "a/b/3"}) {
			t.Errorf("prefix a/: %v", items)
		}
		var paged []string
		token := ""
		for i := 0; ; i++ {
			q := "?prefix=a/&maxResults=3"
			if token != "" {
				q += "&pageToken=" + url.QueryEscape(token)
			}
			items, _, next := list(q)
			paged = append(paged, items...)
			if next == "" {
				break
			}
			token = next
			if i > 3 {
				t.Fatal("paging does not end")
			}
		}
		if !slices.Equal(paged, []string{"a/0", "a/1", "a/2", "a/b/3"}) {
			t.Errorf("paged: %v", paged)
		}
		if items, _, _ := list("?prefix=zzz"); items != nil {
			t.Errorf("no match: %v", items)
		}
		items, prefixes, _ := list("?delimiter=/")
		if !slices.Equal(items, []string{"b"}) || !slices.Equal(prefixes, []string{"a/", "c/"}) {
			t.Errorf("delimiter: items %v prefixes %v", items, prefixes)
		}
		items, prefixes, next := list("?delimiter=/&prefix=a/&maxResults=3")
		if !slices.Equal(items, []string{"a/0", "a/1", "a/2"}) || prefixes != nil || next == "" {
			t.Errorf("delimiter page 1: %v %v %q", items, prefixes, next)
		}
		items, prefixes, next = list("?delimiter=/&prefix=a/&maxResults=3&pageToken=" + next)
		if items != nil || !slices.Equal(prefixes, []string{"a/b/"}) || next != "" {
			t.Errorf("delimiter page 2: %v %v %q", items, prefixes, next)
		}
		a.do("GET", "/storage/v1/b/no-such-bucket/o", nil, nil).wantError(t, 404, "notFound", "global")
		a.do("GET", "/storage/v1/b/"+bkt+"/o?pageToken=%21%21", nil, nil).wantError(t, 400, "invalid", "global")
		a.do("GET", "/storage/v1/b/"+bkt+"/o?maxResults=-1", nil, nil).wantError(t, 400, "invalid", "global")

		// maxResults defaults to, and is capped at, 1000.
		for i := range 1001 {
			a.srv.PutObject(bkt, fmt.Sprintf("many/%04d", i), nil, nil)
		}
		for _, q := range []string{"?prefix=many/", "?prefix=many/&maxResults=5000"} {
			items, _, next := list(q)
			if len(items) != 1000 || next == "" {
				t.Errorf("%s: %d items, next %q", q, len(items), next)
			}
			if items, _, next := list(q + "&pageToken=" + next); !slices.Equal(items, []string{"many/1000"}) || next != "" {
				t.Errorf("%s, page 2: %v %q", q, items, next)
			}
		}
	})
}

// Listings are strongly consistent: a write is listed at once.
func TestListConsistent(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		generation(t, a.upload("new", "x", "ifGenerationMatch=0"))
		r := a.do("GET", "/storage/v1/b/"+bkt+"/o?prefix=new", nil, nil)
		if !strings.Contains(string(r.body), `"name":"new"`) {
			t.Errorf("new object not listed: %s", r.body)
		}
	})
}

// Unknown routes are 404, unimplemented methods 501, GCS-shaped.
func TestUnknownRoutes(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		a.do("GET", "/", nil, nil).wantError(t, 404, "notFound", "global")
		a.do("GET", "/storage/v1/b/"+bkt+"/x", nil, nil).wantError(t, 404, "notFound", "global")
		a.do("GET", "/upload/storage/v1/b/"+bkt+"/x", nil, nil).wantError(t, 404, "notFound", "global")
		a.do("PATCH", objectPath(bkt, "o"), nil, []byte(`{}`)).wantError(t, 501, "notImplemented", "global")
		a.do("PUT", "/upload/storage/v1/b/"+bkt+"/o", nil, nil).wantError(t, 501, "notImplemented", "global")
		a.do("DELETE", "/storage/v1/b/"+bkt, nil, nil).wantError(t, 501, "notImplemented", "global")
		for _, r := range a.srv.Requests() {
			if r.Op != "" {
				t.Errorf("request %s %s: Op %q, want empty", r.Method, r.Query, r.Op)
			}
		}
	})
}

// Names with '/', spaces, '%', '+', '?', '#' and non-ASCII round-trip, with
// '/' escaped as %2F in the path and query escaping in name=.
func TestNames(t *testing.T) {
	names := []string{"a/b/c", "with space", "plus+sign", "question?mark", "hash#tag", "percent%20literal",
		"ünïcødé/名前", "semi;colon=eq&amp", "a/../b", "trailing/", "%2F", "tab\there", "emoji 🔒"}
	forEachMode(t, func(t *testing.T, a *api) {
		for _, name := range names {
			g := generation(t, a.upload(name, "data:"+name, "ifGenerationMatch=0"))
			r := a.get(name, "")
			if r.status != 200 || r.json(t)["name"] != name || r.json(t)["generation"] != g {
				t.Errorf("get %q: %d %s", name, r.status, r.body)
			}
			if o, ok := a.srv.Object(bkt, name); !ok || string(o.Data) != "data:"+name {
				t.Errorf("stored %q: %v %+v", name, ok, o)
			}
			if r := a.del(name, "?ifGenerationMatch="+g); r.status != 204 {
				t.Errorf("delete %q: %d %s", name, r.status, r.body)
			}
		}
		for _, r := range a.srv.Requests() {
			if !slices.Contains(names, r.Object) {
				t.Errorf("request %d logged object %q", r.Seq, r.Object)
			}
		}
	})
}

// Every answer carries Date, the server's clock in whole seconds, an exact
// Content-Length, and Content-Type for JSON.
func TestResponseHeaders(t *testing.T) {
	forEachMode(t, func(t *testing.T, a *api) {
		for _, r := range []reply{
			a.upload("h", "data", "ifGenerationMatch=0"),
			a.upload("h", "data", "ifGenerationMatch=0"),
			a.get("h", ""),
			a.get("nope", ""),
			a.do("GET", "/storage/v1/b/"+bkt+"/o", nil, nil),
			a.do("GET", "/storage/v1/b/"+bkt, nil, nil),
			a.do("GET", "/nowhere", nil, nil),
		} {
			if ct := r.header.Get("Content-Type"); ct != "application/json; charset=UTF-8" {
				t.Errorf("status %d: Content-Type %q", r.status, ct)
			}
			if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) || r.length != int64(len(r.body)) {
				t.Errorf("status %d: Content-Length %q (%d), body %d bytes", r.status, cl, r.length, len(r.body))
			}
			d, err := http.ParseTime(r.header.Get("Date"))
			if err != nil {
				t.Errorf("status %d: Date %q: %v", r.status, r.header.Get("Date"), err)
			}
			if now := a.srv.Now(); d.After(now) || now.Sub(d) > 5*time.Second {
				t.Errorf("Date %v, server now %v", d, now)
			}
		}
	})
}

// Generations strictly increase across buckets, names, overwrites and
// deletes.
func TestGenerationsIncrease(t *testing.T) {
	srv := dimutextest.NewServer(dimutextest.WithBucket(bkt), dimutextest.WithBucket("second"))
	a := &api{t: t, srv: srv, base: srv.URL(), hc: srv.Client()}
	var last int64
	for i := range 300 {
		var g int64
		switch i % 3 {
		case 0:
			g = atoi(generation(t, a.upload("x", "d", "")))
		case 1:
			o, _ := srv.PutObject("second", "y", nil, nil)
			g = o.Generation
		case 2:
			r := a.upload("x", "d", "")
			g = atoi(generation(t, r))
			a.del("x", "")
		}
		if g <= last {
			t.Fatalf("generation %d after %d", g, last)
		}
		last = g
	}
}

// Concurrent creates with ifGenerationMatch=0 have exactly one winner.
func TestConcurrentCreate(t *testing.T) {
	srv := dimutextest.NewServer(dimutextest.WithBucket(bkt))
	a := &api{t: t, srv: srv, base: srv.URL(), hc: srv.Client()}
	for round := range 20 {
		name := "race" + strconv.Itoa(round)
		var wg sync.WaitGroup
		codes := make([]int, 20)
		for i := range codes {
			wg.Go(func() {
				req, _ := http.NewRequest("POST", srv.URL()+"/upload/storage/v1/b/"+bkt+"/o?uploadType=media&ifGenerationMatch=0&name="+name, strings.NewReader("x"))
				resp, err := a.hc.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				codes[i] = resp.StatusCode
			})
		}
		wg.Wait()
		var ok, refused int
		for _, c := range codes {
			switch c {
			case 200:
				ok++
			case 412:
				refused++
			}
		}
		if ok != 1 || refused != len(codes)-1 {
			t.Fatalf("round %d: codes %v, want one 200 and the rest 412", round, codes)
		}
	}
}

// The page token is opaque but stable: base64 of the last name given out.
func TestListTokenOpaque(t *testing.T) {
	srv := dimutextest.NewServer(dimutextest.WithBucket(bkt))
	a := &api{t: t, srv: srv, base: srv.URL(), hc: srv.Client()}
	srv.PutObject(bkt, "p1", nil, nil)
	srv.PutObject(bkt, "p2", nil, nil)
	r := a.do("GET", "/storage/v1/b/"+bkt+"/o?maxResults=1", nil, nil)
	tok, _ := r.json(t)["nextPageToken"].(string)
	if _, err := base64.RawURLEncoding.DecodeString(tok); err != nil || tok == "" {
		t.Errorf("token %q", tok)
	}
	// Deleting the last object listed does not break the next page.
	srv.DeleteObject(bkt, "p1")
	r = a.do("GET", "/storage/v1/b/"+bkt+"/o?maxResults=1&pageToken="+tok, nil, nil)
	if !strings.Contains(string(r.body), `"name":"p2"`) {
		t.Errorf("page 2 after deleting p1: %s", r.body)
	}
}

func md5Base64(s string) string {
	sum := md5.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func crc32cBase64(s string) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc32.Checksum([]byte(s), crc32.MakeTable(crc32.Castagnoli)))
	return base64.StdEncoding.EncodeToString(b[:])
}
