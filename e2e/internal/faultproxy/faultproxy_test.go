package faultproxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dimutex/dimutex/e2e/internal/faultproxy"
	"github.com/fsouza/fake-gcs-server/fakestorage"
)

const bucket = "locks"

// harness is fake-gcs-server on 127.0.0.1, a Proxy in front of it served by
// an httptest.Server, and a client of that server.
type harness struct {
	t      *testing.T
	gcs    *fakestorage.Server
	p      *faultproxy.Proxy
	front  *httptest.Server
	client *http.Client
}

// newHarness starts the emulator and the proxy. The client makes a new
// connection for every request, so that a reset is never hidden by
// net/http's retry of idempotent requests on reused connections (see
// TestResetOfReusedConnectionIsRetriedByNetHTTP).
func newHarness(t *testing.T, opts ...faultproxy.Option) *harness {
	t.Helper()
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       "127.0.0.1",
		NoListener: false,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcs.Stop)
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	if !strings.HasPrefix(gcs.URL(), "http://127.0.0.1:") {
		t.Fatalf("emulator at %s, want http://127.0.0.1", gcs.URL())
	}

	p := faultproxy.New(gcs.URL(), opts...)
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	// Cleanups run last-in first-out: close the proxy first, so that a
	// request it holds cannot keep front.Close waiting.
	t.Cleanup(func() { p.Close() })

	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &harness{t: t, gcs: gcs, p: p, front: front, client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

// result is what a client got for one request.
type result struct {
	status int
	header http.Header
	body   []byte
	err    error // from Do or from reading the body
}

// do sends req and reads the whole answer.
func (h *harness) do(req *http.Request) result {
	h.t.Helper()
	resp, err := h.client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// uploadReq builds the protocol's multipart upload of data to name, with
// ifGenerationMatch=gen.
func uploadReq(t *testing.T, base, name string, gen int64, data string) *http.Request {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	meta, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json; charset=UTF-8"}})
	json.NewEncoder(meta).Encode(map[string]string{"name": name})
	media, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/octet-stream"}})
	io.WriteString(media, data)
	mw.Close()

	u := fmt.Sprintf("%s/upload/storage/v1/b/%s/o?uploadType=multipart&name=%s&ifGenerationMatch=%d",
		base, bucket, url.QueryEscape(name), gen)
	req, err := http.NewRequest(http.MethodPost, u, &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "multipart/related; boundary="+mw.Boundary())
	return req
}

// getReq builds the protocol's metadata read of name.
func getReq(t *testing.T, base, name string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/storage/v1/b/%s/o/%s", base, bucket, url.PathEscape(name)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// deleteReq builds the protocol's conditional delete of name; gen is the
// ifGenerationMatch value as sent.
func deleteReq(t *testing.T, base, name, gen string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete,
		fmt.Sprintf("%s/storage/v1/b/%s/o/%s?ifGenerationMatch=%s", base, bucket, url.PathEscape(name), gen), nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func (h *harness) upload(name string, gen int64, data string) result {
	return h.do(uploadReq(h.t, h.front.URL, name, gen, data))
}

func (h *harness) get(name string) result {
	return h.do(getReq(h.t, h.front.URL, name))
}

func (h *harness) delete(name, gen string) result {
	return h.do(deleteReq(h.t, h.front.URL, name, gen))
}

// generation returns the generation in an object resource, which GCS
// sends as a JSON string.
func generation(t *testing.T, r result) int64 {
	t.Helper()
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("want 200 with an object, got %d %v: %s", r.status, r.err, r.body)
	}
	var obj struct{ Generation string }
	if err := json.Unmarshal(r.body, &obj); err != nil {
		t.Fatalf("object resource: %v: %s", err, r.body)
	}
	g, err := strconv.ParseInt(obj.Generation, 10, 64)
	if err != nil {
		t.Fatalf("generation %q: %v", obj.Generation, err)
	}
	return g
}

// gcsErr is the GCS JSON API error body.
type gcsErr struct {
	Error struct {
		Code    int
		Message string
		Errors  []struct{ Domain, Reason, Message string }
	}
}

// parseGCSError checks that r is a GCS JSON error with the given code and
// returns its domain and reason.
func parseGCSError(t *testing.T, r result, code int) (domain, reason string) {
	t.Helper()
	if r.err != nil || r.status != code {
		t.Fatalf("want %d, got %d %v: %s", code, r.status, r.err, r.body)
	}
	var e gcsErr
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body: %v: %s", err, r.body)
	}
	if e.Error.Code != code || len(e.Error.Errors) != 1 || e.Error.Message == "" {
		t.Fatalf("error body %s: want code %d and one error item", r.body, code)
	}
	return e.Error.Errors[0].Domain, e.Error.Errors[0].Reason
}

// exists reports whether name is on the emulator, asked directly.
func (h *harness) exists(name string) bool {
	_, err := h.gcs.GetObject(bucket, name)
	return err == nil
}

// waitLog waits until the proxy has logged n requests, and returns them.
func waitLog(t *testing.T, p *faultproxy.Proxy, n int) []faultproxy.Entry {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		log := p.Log()
		if len(log) >= n {
			return log
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy logged %d requests, want %d", len(log), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A status fault answers at once with a GCS error body and does not
// forward the request.
func TestStatusFaults(t *testing.T) {
	tests := []struct {
		fault          faultproxy.Fault
		code           int
		domain, reason string
	}{
		{faultproxy.Status500, 500, "global", "backendError"},
		{faultproxy.Status503, 503, "global", "backendError"},
		{faultproxy.Status429, 429, "usageLimits", "rateLimitExceeded"},
		{faultproxy.Status408, 408, "global", "requestTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.fault.String(), func(t *testing.T) {
			h := newHarness(t)
			h.p.Add(faultproxy.Rule{Methods: faultproxy.Writes, Fault: tt.fault, Next: 1})

			r := h.upload("lock", 0, "x")
			domain, reason := parseGCSError(t, r, tt.code)
			if domain != tt.domain || reason != tt.reason {
				t.Errorf("domain, reason = %q, %q; want %q, %q", domain, reason, tt.domain, tt.reason)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			if r.header.Get("Date") == "" {
				t.Error("no Date header")
			}
			if h.exists("lock") {
				t.Fatal("the upload was applied")
			}
			if s := h.p.Stats(); s.Forwarded != 0 || s.Faults[tt.fault] != 1 {
				t.Errorf("Forwarded = %d, Faults = %v; want 0 and 1 %v", s.Forwarded, s.Faults, tt.fault)
			}

			// Next: 1 is spent: the retry goes through.
			generation(t, h.upload("lock", 0, "x"))
			if !h.exists("lock") {
				t.Fatal("the retried upload was not applied")
			}
		})
	}
}

// ResetBefore: the client gets a connection error, nothing was applied.
// ResetAfter: the client gets a connection error, but the write was applied.
func TestResets(t *testing.T) {
	tests := []struct {
		fault       faultproxy.Fault
		wantApplied bool
	}{
		{faultproxy.ResetBefore, false},
		{faultproxy.ResetAfter, true},
	}
	for _, tt := range tests {
		t.Run(tt.fault.String(), func(t *testing.T) {
			h := newHarness(t)
			h.p.Add(faultproxy.Rule{Methods: faultproxy.MethodPost, Fault: tt.fault, Next: 1})

			r := h.upload("lock", 0, "x")
			if r.err == nil {
				t.Fatalf("got %d, want a connection error", r.status)
			}
			if !errors.Is(r.err, syscall.ECONNRESET) {
				t.Errorf("error %v, want ECONNRESET", r.err)
			}
			if got := h.exists("lock"); got != tt.wantApplied {
				t.Fatalf("object exists = %v, want %v", got, tt.wantApplied)
			}

			log := waitLog(t, h.p, 1)
			e := log[0]
			if e.Fault != tt.fault || e.Forwarded != tt.wantApplied || e.Status != 0 {
				t.Errorf("log entry %+v", e)
			}
			if tt.wantApplied && e.TargetStatus != http.StatusOK {
				t.Errorf("TargetStatus = %d, want 200", e.TargetStatus)
			}

			// A retry of the create now tells the two cases apart.
			retry := h.upload("lock", 0, "x")
			if tt.wantApplied {
				parseGCSError(t, retry, http.StatusPreconditionFailed)
			} else {
				generation(t, retry)
			}
		})
	}
}

// Latency delays a request; a client that gives up first gets a timeout,
// and the request is then never forwarded.
func TestLatency(t *testing.T) {
	tests := []struct {
		name          string
		delay         time.Duration
		clientTimeout time.Duration
		wantApplied   bool
	}{
		{"within the client timeout", 50 * time.Millisecond, 3 * time.Second, true},
		{"beyond the client timeout", 3 * time.Second, 100 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.p.Add(faultproxy.Rule{Fault: faultproxy.Latency, Delay: tt.delay})
			h.client.Timeout = tt.clientTimeout

			start := time.Now()
			r := h.upload("lock", 0, "x")
			elapsed := time.Since(start)

			if tt.wantApplied {
				generation(t, r)
				if elapsed < tt.delay {
					t.Errorf("answered after %v, want at least %v", elapsed, tt.delay)
				}
			} else {
				var ne net.Error
				if !errors.As(r.err, &ne) || !ne.Timeout() {
					t.Fatalf("got %d %v, want a timeout", r.status, r.err)
				}
				if elapsed > tt.delay {
					t.Errorf("client waited %v", elapsed)
				}
			}

			log := waitLog(t, h.p, 1)
			if log[0].Canceled == tt.wantApplied || log[0].Forwarded != tt.wantApplied {
				t.Errorf("log entry %+v", log[0])
			}
			if got := h.exists("lock"); got != tt.wantApplied {
				t.Errorf("object exists = %v, want %v", got, tt.wantApplied)
			}
			if s := h.p.Stats(); s.Faults[faultproxy.Latency] != 1 || s.Canceled != boolToInt(!tt.wantApplied) {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Truncate forwards, then sends the true Content-Length with only part of
// the body: the client's read fails with io.ErrUnexpectedEOF.
func TestTruncate(t *testing.T) {
	h := newHarness(t)
	whole := h.upload("lock", 0, "x")
	generation(t, whole)
	full := h.get("lock")
	generation(t, full)

	id := h.p.Add(faultproxy.Rule{Methods: faultproxy.MethodGet, Fault: faultproxy.Truncate, Next: 1})
	resp, err := h.client.Do(getReq(t, h.front.URL, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(full.body)) {
		t.Errorf("status %d, Content-Length %d; want 200 and %d", resp.StatusCode, resp.ContentLength, len(full.body))
	}
	if resp.Header.Get("Date") == "" {
		t.Error("no Date header")
	}
	got, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the body: %v, want io.ErrUnexpectedEOF", err)
	}
	if want := full.body[:len(full.body)/2]; !bytes.Equal(got, want) {
		t.Errorf("got body %q, want its first half %q", got, want)
	}
	if h.p.Fired(id) != 1 {
		t.Errorf("Fired = %d", h.p.Fired(id))
	}

	// A truncated write was applied all the same.
	h.p.Add(faultproxy.Rule{Methods: faultproxy.MethodPost, Fault: faultproxy.Truncate, Keep: 3, Next: 1})
	r := h.upload("other", 0, "y")
	if !errors.Is(r.err, io.ErrUnexpectedEOF) || r.status != http.StatusOK || len(r.body) != 3 {
		t.Errorf("got %d, %d bytes, %v; want 200, 3 bytes, io.ErrUnexpectedEOF", r.status, len(r.body), r.err)
	}
	if !h.exists("other") {
		t.Error("the truncated upload was not applied")
	}
}

// Hang never answers: the client's own deadline ends the request, which is
// not forwarded.
func TestHang(t *testing.T) {
	h := newHarness(t)
	h.p.Add(faultproxy.Rule{Fault: faultproxy.Hang})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r := h.do(uploadReq(t, h.front.URL, "lock", 0, "x").WithContext(ctx))
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("got %d %v, want context.DeadlineExceeded", r.status, r.err)
	}
	log := waitLog(t, h.p, 1)
	if !log[0].Canceled || log[0].Forwarded {
		t.Errorf("log entry %+v", log[0])
	}
	if h.exists("lock") {
		t.Error("the upload was applied")
	}
}

// Close releases a hanging request with 502, without forwarding it.
func TestCloseReleasesHang(t *testing.T) {
	h := newHarness(t)
	h.p.Add(faultproxy.Rule{Fault: faultproxy.Hang})

	done := make(chan result)
	go func() { done <- h.get("lock") }()
	for h.p.Stats().Requests == 0 {
		time.Sleep(time.Millisecond)
	}
	h.p.Close()
	r := <-done
	parseGCSError(t, r, http.StatusBadGateway)
	if s := h.p.Stats(); s.Forwarded != 0 {
		t.Errorf("Forwarded = %d", s.Forwarded)
	}
	// Later requests get 502 too.
	parseGCSError(t, h.get("lock"), http.StatusBadGateway)
}

// statuses sends n reads of a missing object and returns what each got.
func statuses(h *harness, n int) []int {
	var got []int
	for range n {
		got = append(got, h.get("missing").status)
	}
	return got
}

// Next: N fires on exactly the next N matching requests.
func TestNext(t *testing.T) {
	h := newHarness(t)
	id := h.p.Add(faultproxy.Rule{Fault: faultproxy.Status503, Next: 3})

	got := statuses(h, 6)
	want := []int{503, 503, 503, 404, 404, 404}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if h.p.Fired(id) != 3 {
		t.Errorf("Fired = %d, want 3", h.p.Fired(id))
	}
}

// Every: 2 answers 429 to every second write on the object, as GCS does
// above one write per second; reads and other objects are not counted.
func TestEverySecondWrite(t *testing.T) {
	h := newHarness(t)
	onLock := func(r *http.Request) bool {
		return r.URL.Query().Get("name") == "lock" || strings.HasSuffix(r.URL.Path, "/o/lock")
	}
	id := h.p.Add(faultproxy.Rule{Methods: faultproxy.Writes, Match: onLock, Fault: faultproxy.Status429, Every: 2})

	gen := generation(t, h.upload("lock", 0, "1")) // write 1
	generation(t, h.get("lock"))
	generation(t, h.upload("other", 0, "1"))                            // another object
	parseGCSError(t, h.upload("lock", gen, "2"), 429)                   // write 2
	gen = generation(t, h.upload("lock", gen, "2"))                     // write 3
	parseGCSError(t, h.delete("lock", strconv.FormatInt(gen, 10)), 429) // write 4
	generation(t, h.get("lock"))
	if r := h.delete("lock", strconv.FormatInt(gen, 10)); r.status/100 != 2 { // write 5
		t.Fatalf("delete: %d %v", r.status, r.err)
	}
	if h.p.Fired(id) != 2 {
		t.Errorf("Fired = %d, want 2", h.p.Fired(id))
	}
}

// With a fixed seed, Probability gives the same faults to the same
// sequence of requests.
func TestProbabilityIsSeeded(t *testing.T) {
	run := func(seed uint64) []int {
		h := newHarness(t, faultproxy.WithSeed(seed))
		h.p.Add(faultproxy.Rule{Fault: faultproxy.Status503, Probability: 0.3})
		return statuses(h, 60)
	}
	a, b, c := run(7), run(7), run(8)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("seed 7 gave\n%v\nthen\n%v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 7 and 8 gave the same sequence %v", a)
	}
	n := 0
	for _, s := range a {
		if s == 503 {
			n++
		}
	}
	if n < 5 || n > 35 {
		t.Errorf("%d faults in 60 requests at probability 0.3", n)
	}
}

// Which requests a rule matches.
func TestMatchers(t *testing.T) {
	h := newHarness(t)
	generation(t, h.upload("a/b", 0, "x"))
	h.p.ResetStats()

	upload := func() *http.Request { return uploadReq(t, h.front.URL, "c", 0, "x") }
	get := func() *http.Request { return getReq(t, h.front.URL, "a/b") }
	del := func() *http.Request { return deleteReq(t, h.front.URL, "nope", "1") }
	withHeader := func() *http.Request {
		r := get()
		r.Header.Set("X-Test", "1")
		return r
	}

	tests := []struct {
		name string
		rule faultproxy.Rule
		req  func() *http.Request
		want bool
	}{
		{"any method matches a GET", faultproxy.Rule{}, get, true},
		{"Reads match a GET", faultproxy.Rule{Methods: faultproxy.Reads}, get, true},
		{"Reads skip a POST", faultproxy.Rule{Methods: faultproxy.Reads}, upload, false},
		{"Writes match a POST", faultproxy.Rule{Methods: faultproxy.Writes}, upload, true},
		{"Writes match a DELETE", faultproxy.Rule{Methods: faultproxy.Writes}, del, true},
		{"Writes skip a GET", faultproxy.Rule{Methods: faultproxy.Writes}, get, false},
		{"MethodDelete skips a POST", faultproxy.Rule{Methods: faultproxy.MethodDelete}, upload, false},
		{"GET|DELETE match a DELETE", faultproxy.Rule{Methods: faultproxy.MethodGet | faultproxy.MethodDelete}, del, true},
		{"Path sees the escaped path", faultproxy.Rule{Path: "/o/a%2Fb"}, get, true},
		{"Path is not decoded", faultproxy.Rule{Path: "/o/a/b"}, get, false},
		{"Path on uploads", faultproxy.Rule{Path: "/upload/"}, upload, true},
		{"Query matches creations", faultproxy.Rule{Query: "ifGenerationMatch=0"}, upload, true},
		{"Query skips other preconditions", faultproxy.Rule{Query: "ifGenerationMatch=0"}, del, false},
		{"Match func true", faultproxy.Rule{Match: func(r *http.Request) bool { return r.Header.Get("X-Test") == "1" }}, withHeader, true},
		{"Match func false", faultproxy.Rule{Match: func(r *http.Request) bool { return r.Header.Get("X-Test") == "1" }}, get, false},
		{"Match func may read the body", faultproxy.Rule{Match: func(r *http.Request) bool {
			b, _ := io.ReadAll(r.Body)
			return bytes.Contains(b, []byte(`"name":"c"`))
		}}, upload, true},
		{"all matchers must hold", faultproxy.Rule{Methods: faultproxy.Writes, Path: "/o/a%2Fb"}, get, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.p.Clear()
			rule := tt.rule
			rule.Fault = faultproxy.Status503
			id := h.p.Add(rule)
			r := h.do(tt.req())
			if got := r.status == 503; got != tt.want || h.p.Fired(id) != boolToInt(tt.want) {
				t.Errorf("status %d, fired %d; want fired = %v", r.status, h.p.Fired(id), tt.want)
			}
		})
	}
	// The Match func's read did not take the body from the forwarded
	// request.
	h.p.Clear()
	h.p.Add(faultproxy.Rule{Fault: faultproxy.Latency, Match: func(r *http.Request) bool {
		io.ReadAll(r.Body)
		return true
	}})
	generation(t, h.upload("d", 0, "x"))
}

// The first rule that fires wins; a rule that matches but does not fire
// lets the next one try.
func TestFirstFiringRuleWins(t *testing.T) {
	h := newHarness(t)
	exempt := h.p.Add(faultproxy.Rule{Path: "/o/free", Fault: faultproxy.Latency}) // pass-through
	second := h.p.Add(faultproxy.Rule{Fault: faultproxy.Status500, Every: 2})
	rest := h.p.Add(faultproxy.Rule{Fault: faultproxy.Status503})

	var got []int
	for _, name := range []string{"free", "x", "x", "free", "x", "x"} {
		got = append(got, h.get(name).status)
	}
	if want := "[404 503 500 404 503 500]"; fmt.Sprint(got) != want {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if h.p.Fired(exempt) != 2 || h.p.Fired(second) != 2 || h.p.Fired(rest) != 2 {
		t.Errorf("fired %d, %d, %d; want 2 each", h.p.Fired(exempt), h.p.Fired(second), h.p.Fired(rest))
	}

	if !h.p.Remove(second) || h.p.Remove(second) {
		t.Error("Remove should report true once")
	}
	if s := h.get("x").status; s != 503 {
		t.Errorf("after Remove: %d, want 503", s)
	}
	h.p.Clear()
	if s := h.get("x").status; s != 404 {
		t.Errorf("after Clear: %d, want 404", s)
	}
}

// The counters and the log describe what happened.
func TestStatsAndLog(t *testing.T) {
	h := newHarness(t)
	h.p.Add(faultproxy.Rule{Methods: faultproxy.MethodGet, Fault: faultproxy.Status503, Next: 1})

	h.get("lock")                                  // 503, not forwarded
	gen := generation(t, h.upload("lock", 0, "x")) // forwarded
	generation(t, h.get("lock"))                   // forwarded
	h.delete("lock", strconv.FormatInt(gen, 10))   // forwarded

	want := faultproxy.Stats{
		Requests:  4,
		ByMethod:  map[string]int{"GET": 2, "POST": 1, "DELETE": 1},
		Forwarded: 3,
		Faults:    map[faultproxy.Fault]int{faultproxy.Status503: 1},
	}
	if got := h.p.Stats(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Stats() = %+v\nwant       %+v", got, want)
	}
	if n := h.p.Stats().FaultsTotal(); n != 1 {
		t.Errorf("FaultsTotal = %d", n)
	}

	log := h.p.Log()
	var lines []string
	for _, e := range log {
		lines = append(lines, fmt.Sprintf("%d %s %s %v forwarded=%v %d", e.Seq, e.Method, e.Path, e.Fault, e.Forwarded, e.Status))
	}
	wantLines := []string{
		"1 GET /storage/v1/b/locks/o/lock 503 forwarded=false 503",
		"2 POST /upload/storage/v1/b/locks/o none forwarded=true 200",
		"3 GET /storage/v1/b/locks/o/lock none forwarded=true 200",
		"4 DELETE /storage/v1/b/locks/o/lock none forwarded=true 200",
	}
	if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
	}
	if !strings.Contains(log[1].Query, "ifGenerationMatch=0") || log[1].Time.IsZero() {
		t.Errorf("entry %+v", log[1])
	}

	// The client of a lock against an emulator sends no credentials; one
	// that does is counted.
	if n := h.p.Stats().Authorized; n != 0 {
		t.Errorf("Authorized = %d before any credentials", n)
	}
	req := getReq(t, h.front.URL, "lock")
	req.Header.Set("Authorization", "Bearer token")
	h.do(req)
	if n := h.p.Stats().Authorized; n != 1 {
		t.Errorf("Authorized = %d, want 1", n)
	}

	h.p.ResetStats()
	if s := h.p.Stats(); s.Requests != 0 || len(s.ByMethod) != 0 || len(h.p.Log()) != 0 {
		t.Errorf("after ResetStats: %+v, %d log entries", s, len(h.p.Log()))
	}
}

// WithLogLimit keeps the most recent entries.
func TestLogLimit(t *testing.T) {
	h := newHarness(t, faultproxy.WithLogLimit(3))
	statuses(h, 5)
	var seqs []uint64
	for _, e := range h.p.Log() {
		seqs = append(seqs, e.Seq)
	}
	if fmt.Sprint(seqs) != "[3 4 5]" {
		t.Errorf("log holds %v, want [3 4 5]", seqs)
	}
}

// fake-gcs-server v1.56.1 deletes whatever ifGenerationMatch says; this is
// why WithDeletePreconditions exists. If this test fails, the emulator
// has been fixed.
func TestEmulatorIgnoresDeletePrecondition(t *testing.T) {
	h := newHarness(t)
	gen := generation(t, h.upload("lock", 0, "x"))
	r := h.delete("lock", strconv.FormatInt(gen+1, 10))
	if r.status/100 != 2 || h.exists("lock") {
		t.Fatalf("wrong-generation delete: %d, exists %v; the emulator now enforces it", r.status, h.exists("lock"))
	}
}

// WithDeletePreconditions answers DELETE preconditions the way GCS does.
func TestDeletePreconditions(t *testing.T) {
	h := newHarness(t, faultproxy.WithDeletePreconditions())
	gen := generation(t, h.upload("lock", 0, "x"))
	G := strconv.FormatInt(gen, 10)

	steps := []struct {
		name       string
		ifGen      string
		wantStatus int
		wantReason string
		wantExists bool
	}{
		{"wrong generation", strconv.FormatInt(gen+1, 10), 412, "conditionNotMet", true},
		{"must not exist", "0", 412, "conditionNotMet", true},
		{"not a number", "x", 400, "invalid", true},
		{"right generation", G, 200, "", false},
		{"already gone", G, 404, "notFound", false},
	}
	for _, s := range steps {
		r := h.delete("lock", s.ifGen)
		if s.wantReason == "" {
			if r.status/100 != 2 {
				t.Errorf("%s: got %d %v: %s, want 2xx", s.name, r.status, r.err, r.body)
			}
		} else if _, reason := parseGCSError(t, r, s.wantStatus); reason != s.wantReason {
			t.Errorf("%s: reason %q, want %q", s.name, reason, s.wantReason)
		}
		if got := h.exists("lock"); got != s.wantExists {
			t.Errorf("%s: exists = %v, want %v", s.name, got, s.wantExists)
		}
	}
	if s := h.p.Stats(); s.PreconditionFailed != 4 || s.Forwarded != 2 {
		t.Errorf("PreconditionFailed = %d, Forwarded = %d; want 4 and 2", s.PreconditionFailed, s.Forwarded)
	}

	// A DELETE without precondition is forwarded unchecked.
	generation(t, h.upload("lock", 0, "x"))
	req, _ := http.NewRequest(http.MethodDelete, h.front.URL+"/storage/v1/b/"+bucket+"/o/lock", nil)
	if r := h.do(req); r.status/100 != 2 || h.exists("lock") {
		t.Errorf("unconditional delete: %d", r.status)
	}
}

// The check and the delete are atomic: of many deletes of the same
// generation, racing with overwrites, each generation is deleted at most
// once and only while current.
func TestDeletePreconditionsAreAtomic(t *testing.T) {
	h := newHarness(t, faultproxy.WithDeletePreconditions())
	for round := range 5 {
		gen := generation(t, h.upload("lock", 0, "x"))
		G := strconv.FormatInt(gen, 10)
		var wg sync.WaitGroup
		results := make(chan int, 20)
		for range 10 {
			wg.Go(func() { results <- h.delete("lock", G).status })
			wg.Go(func() { results <- h.upload("lock", gen, "y").status })
		}
		wg.Wait()
		close(results)
		wins := 0
		for s := range results {
			if s/100 == 2 {
				wins++
			} else if s != 404 && s != 412 {
				t.Fatalf("round %d: status %d", round, s)
			}
		}
		// Exactly one request acted on generation gen: a delete or an
		// overwrite. Clean up what an overwrite left.
		if wins != 1 {
			t.Fatalf("round %d: %d requests succeeded on one generation, want 1", round, wins)
		}
		if h.exists("lock") {
			obj, _ := h.gcs.GetObject(bucket, "lock")
			h.delete("lock", strconv.FormatInt(obj.Generation, 10))
		}
	}
}

// Object names with escaped slashes, spaces and the like reach the
// emulator unmangled.
func TestEscapedNames(t *testing.T) {
	h := newHarness(t)
	names := []string{"a/b c+d", "a/b/c", "with space", "plus+sign", "question?mark", "hash#tag",
		"percent%20literal", "ünïcødé/名前", "semi;colon=eq&amp", "a/../b", "trailing/"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			gen := generation(t, h.upload(name, 0, "x"))
			if !h.exists(name) {
				t.Fatal("not on the emulator under that name")
			}
			r := h.get(name)
			var obj struct{ Name string }
			json.Unmarshal(r.body, &obj)
			if r.status != 200 || obj.Name != name {
				t.Errorf("GET: %d, name %q", r.status, obj.Name)
			}
			log := h.p.Log()
			if p := log[len(log)-1].Path; !strings.HasSuffix(p, "/o/"+url.PathEscape(name)) {
				t.Errorf("logged path %q", p)
			}
			if r := h.delete(name, strconv.FormatInt(gen, 10)); r.status/100 != 2 || h.exists(name) {
				t.Errorf("DELETE: %d", r.status)
			}
		})
	}
}

// The request reaches the target as sent (path, query, headers, body) and
// the target's answer, Date included, reaches the client.
func TestForwardingIsTransparent(t *testing.T) {
	const date = "Mon, 02 Jan 2006 15:04:05 GMT"
	type seen struct {
		uri, auth, agent, custom string
		body                     []byte
	}
	got := make(chan seen, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.RequestURI, r.Header.Get("Authorization"), r.Header.Get("User-Agent"), r.Header.Get("X-Goog-Test"), b}
		w.Header().Set("Date", date)
		w.Header().Set("X-Answer", "yes")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"ok":true}`)
	}))
	defer target.Close()
	p := faultproxy.New(target.URL)
	defer p.Close()
	front := httptest.NewServer(p)
	defer front.Close()

	const uri = "/storage/v1/b/B/o/a%2Fb%20c%2Bd?x=1&y=%2F+"
	req, _ := http.NewRequest(http.MethodPatch, front.URL+uri, strings.NewReader("payload"))
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Set("User-Agent", "dimutex-test")
	req.Header.Set("X-Goog-Test", "v")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	s := <-got
	if s.uri != uri || s.auth != "Bearer t" || s.agent != "dimutex-test" || s.custom != "v" || string(s.body) != "payload" {
		t.Errorf("target saw %+v", s)
	}
	if resp.StatusCode != 201 || string(body) != `{"ok":true}` || resp.Header.Get("Date") != date || resp.Header.Get("X-Answer") != "yes" {
		t.Errorf("client got %d %q, headers %v", resp.StatusCode, body, resp.Header)
	}
}

// The proxy does not dial anything but loopback.
func TestNonLoopbackTargetRefused(t *testing.T) {
	p := faultproxy.New("http://192.0.2.1:9") // TEST-NET-1: never reached
	defer p.Close()
	front := httptest.NewServer(p)
	defer front.Close()
	resp, err := http.Get(front.URL + "/storage/v1/b/B/o/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "loopback") {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
}

// A caveat for test writers: net/http retries a GET once when a reused
// keep-alive connection is reset before any answer, so a single
// ResetBefore on a GET can go unseen by the caller.
func TestResetOfReusedConnectionIsRetriedByNetHTTP(t *testing.T) {
	h := newHarness(t)
	tr := &http.Transport{Proxy: nil} // keep-alives on
	defer tr.CloseIdleConnections()
	h.client = &http.Client{Transport: tr, Timeout: 5 * time.Second}

	h.get("missing") // leaves an idle connection to reuse
	id := h.p.Add(faultproxy.Rule{Methods: faultproxy.MethodGet, Fault: faultproxy.ResetBefore, Next: 1})
	if r := h.get("missing"); r.err != nil || r.status != 404 {
		t.Fatalf("got %d %v, want the retry's 404", r.status, r.err)
	}
	if h.p.Fired(id) != 1 || h.p.Stats().ByMethod["GET"] != 3 {
		t.Errorf("fired %d, GETs %d; want 1 and 3", h.p.Fired(id), h.p.Stats().ByMethod["GET"])
	}
}

// Rules can change while requests are being served (run with -race).
func TestConcurrentRuleChanges(t *testing.T) {
	h := newHarness(t, faultproxy.WithSeed(3))
	const workers, each = 8, 15
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var changer sync.WaitGroup
	changer.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			id := h.p.Add(faultproxy.Rule{Fault: faultproxy.Status503, Probability: 0.5})
			h.p.Add(faultproxy.Rule{Methods: faultproxy.Reads, Fault: faultproxy.Status429, Every: 3})
			h.p.Stats()
			h.p.Log()
			h.p.Remove(id)
			h.p.Clear()
		}
	})
	var mu sync.Mutex
	counts := map[int]int{}
	for range workers {
		wg.Go(func() {
			for range each {
				s := h.get("missing").status
				mu.Lock()
				counts[s]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	changer.Wait()
	for s := range counts {
		if s != 404 && s != 503 && s != 429 {
			t.Errorf("unexpected status %d", s)
		}
	}
	if s := h.p.Stats(); s.Requests != workers*each || s.Forwarded+s.FaultsTotal() != workers*each {
		t.Errorf("stats %+v, want %d requests, each forwarded or faulted", s, workers*each)
	}
}

// Add panics on a rule that cannot work.
func TestAddRejectsInvalidRules(t *testing.T) {
	bad := []faultproxy.Rule{
		{},
		{Fault: faultproxy.Status503, Probability: 1.5},
		{Fault: faultproxy.Status503, Probability: -0.1},
		{Fault: faultproxy.Status503, Every: -1},
		{Fault: faultproxy.Status503, Next: -1},
		{Fault: faultproxy.Latency, Delay: -time.Second},
		{Fault: faultproxy.Truncate, Keep: -1},
		{Fault: faultproxy.Fault(200)},
	}
	p := faultproxy.New("http://127.0.0.1:1")
	defer p.Close()
	for _, r := range bad {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Add(%+v) did not panic", r)
				}
			}()
			p.Add(r)
		}()
	}
}
