package dimutextest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dimutex/dimutex/dimutextest"
)

// mode is one way of reaching a Server: in memory, or through httptest.
type mode struct {
	name  string
	start func(t *testing.T, srv *dimutextest.Server) (endpoint string, hc *http.Client)
}

// modes are the two ways to reach a Server.
var modes = []mode{
	{"memory", func(t *testing.T, srv *dimutextest.Server) (string, *http.Client) {
		return srv.URL(), srv.Client()
	}},
	{"httptest", func(t *testing.T, srv *dimutextest.Server) (string, *http.Client) {
		ts := httptest.NewServer(srv)
		t.Cleanup(ts.Close)
		// No keep-alive: every request on its own connection, so a reset
		// never makes net/http retry a GET behind the test's back.
		tr := &http.Transport{DisableKeepAlives: true}
		t.Cleanup(tr.CloseIdleConnections)
		return ts.URL, &http.Client{Transport: tr}
	}},
}

// forEachMode runs f as a subtest against a new Server in each mode.
func forEachMode(t *testing.T, f func(t *testing.T, a *api)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			srv := dimutextest.NewServer(dimutextest.WithBucket(bkt))
			ep, hc := m.start(t, srv)
			f(t, &api{t: t, srv: srv, base: ep, hc: hc})
		})
	}
}

// bkt is the bucket most tests use.
const bkt = "test-bucket"

// api sends raw JSON API requests.
type api struct {
	t    *testing.T
	srv  *dimutextest.Server
	base string
	hc   *http.Client
}

// reply is an answer, read in full.
type reply struct {
	status int
	header http.Header
	body   []byte
	length int64 // resp.ContentLength
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d, body %q is not JSON: %v", r.status, r.body, err)
	}
	return m
}

// gcsError is the decoded error body.
type gcsError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Errors  []struct {
			Domain  string `json:"domain"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"errors"`
	} `json:"error"`
}

// wantError checks that r is an error answer with this status, reason and
// domain, GCS-shaped, and returns its message.
func (r reply) wantError(t *testing.T, status int, reason, domain string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var e gcsError
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if e.Error.Code != status || len(e.Error.Errors) != 1 || e.Error.Errors[0].Reason != reason ||
		e.Error.Errors[0].Domain != domain || e.Error.Message == "" {
		t.Fatalf("error body %s: want code %d, reason %q, domain %q and a message", r.body, status, reason, domain)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=UTF-8" {
		t.Errorf("error Content-Type %q", ct)
	}
	return e.Error.Message
}

func (a *api) do(method, path string, header http.Header, body []byte) reply {
	a.t.Helper()
	r, err := a.try(context.Background(), method, path, header, body)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (a *api) try(ctx context.Context, method, path string, header http.Header, body []byte) (reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: data, length: resp.ContentLength}
	return r, err
}

// multipart builds an upload body as our client does, with CRLF lines.
func multipart(boundary, metadata, mediaType, data string) []byte {
	return []byte("--" + boundary + "\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n" + metadata +
		"\r\n--" + boundary + "\r\nContent-Type: " + mediaType + "\r\n\r\n" + data + "\r\n--" + boundary + "--\r\n")
}

// upload sends a multipart upload of data to name with extra query
// parameters (such as "ifGenerationMatch=0").
func (a *api) upload(name, data, query string) reply {
	a.t.Helper()
	md := `{"name":` + jsonString(name) + `,"contentType":"text/plain","metadata":{"k":"v"}}`
	return a.uploadRaw(bkt, "name="+url.QueryEscape(name)+"&"+query, "multipart/related; boundary=b0undary",
		multipart("b0undary", md, "text/plain", data))
}

func (a *api) uploadRaw(bucket, query, contentType string, body []byte) reply {
	a.t.Helper()
	q := "uploadType=multipart"
	if strings.Contains(query, "uploadType=") {
		q = ""
	}
	if query != "" {
		if q != "" {
			q += "&"
		}
		q += query
	}
	return a.do("POST", "/upload/storage/v1/b/"+url.PathEscape(bucket)+"/o?"+q,
		http.Header{"Content-Type": {contentType}}, body)
}

func (a *api) get(name, query string) reply {
	a.t.Helper()
	return a.do("GET", objectPath(bkt, name)+query, nil, nil)
}

func (a *api) del(name, query string) reply {
	a.t.Helper()
	return a.do("DELETE", objectPath(bkt, name)+query, nil, nil)
}

func objectPath(bucket, name string) string {
	return "/storage/v1/b/" + url.PathEscape(bucket) + "/o/" + url.PathEscape(name)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// generation returns the generation of an object resource answer.
func generation(t *testing.T, r reply) string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
	}
	g, ok := r.json(t)["generation"].(string)
	if !ok || g == "" {
		t.Fatalf("no string generation in %s", r.body)
	}
	return g
}

// parseTime parses a resource's time.
func parseTime(t *testing.T, s any) time.Time {
	t.Helper()
	str, _ := s.(string)
	tm, err := time.Parse(time.RFC3339Nano, str)
	if err != nil {
		t.Fatalf("time %v: %v", s, err)
	}
	return tm
}
