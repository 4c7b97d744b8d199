// Package gcstest runs fake-gcs-server in process for tests and the demo, and
// records the requests a client sends to it.
package gcstest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// Bucket is the bucket that Start creates.
const Bucket = "dimutex-test"

// Server is an in-process fake-gcs-server listening on 127.0.0.1 over plain
// http.
type Server struct {
	*fakestorage.Server
}

// New starts a server with the given buckets (Bucket if none). Stop it
// with Stop.
func New(buckets ...string) (*Server, error) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http",
		Host:   "127.0.0.1",
	})
	if err != nil {
		return nil, fmt.Errorf("gcstest: starting fake-gcs-server: %w", err)
	}
	if len(buckets) == 0 {
		buckets = []string{Bucket}
	}
	for _, b := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	return &Server{srv}, nil
}

// Start starts a server for one test and stops it when the test ends.
func Start(tb testing.TB, buckets ...string) *Server {
	tb.Helper()
	s, err := New(buckets...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// HostPort returns the server's address in the form STORAGE_EMULATOR_HOST
// takes: "127.0.0.1:PORT".
func (s *Server) HostPort() string {
	u, _ := url.Parse(s.URL())
	return u.Host
}

// Request is one request that a Recorder saw.
type Request struct {
	Method string
	// Path is the escaped path, as sent.
	Path  string
	Query url.Values
	// Authorization reports whether the request carried that header.
	Authorization bool
	Status        int // 0 if no response arrived
	Start, End    time.Time
}

// IsWrite reports whether r is a POST, PUT, PATCH or DELETE.
func (r Request) IsWrite() bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// String describes r on one line.
func (r Request) String() string {
	return fmt.Sprintf("%s %s?%s -> %d", r.Method, r.Path, r.Query.Encode(), r.Status)
}

// Recorder is an http.RoundTripper that records each request it passes to
// Next (http.DefaultTransport if nil). It is safe for concurrent use.
type Recorder struct {
	Next http.RoundTripper

	mu   sync.Mutex
	reqs []Request
}

// RoundTrip records req and passes it on.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	next := r.Next
	if next == nil {
		next = http.DefaultTransport
	}
	rec := Request{
		Method:        req.Method,
		Path:          req.URL.EscapedPath(),
		Query:         req.URL.Query(),
		Authorization: req.Header.Get("Authorization") != "",
		Start:         time.Now(),
	}
	resp, err := next.RoundTrip(req)
	rec.End = time.Now()
	if err == nil {
		rec.Status = resp.StatusCode
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return resp, err
}

// Requests returns a copy of what was recorded so far.
func (r *Recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Reset forgets what was recorded.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.reqs = nil
	r.mu.Unlock()
}

// Client returns an http.Client that sends through r.
func (r *Recorder) Client() *http.Client { return &http.Client{Transport: r} }

// Summary counts requests by method, e.g. "POST=1 GET=1".
func Summary(reqs []Request) string {
	counts := map[string]int{}
	var order []string
	for _, q := range reqs {
		if counts[q.Method] == 0 {
			order = append(order, q.Method)
		}
		counts[q.Method]++
	}
	var parts []string
	for _, m := range order {
		parts = append(parts, fmt.Sprintf("%s=%d", m, counts[m]))
	}
	return strings.Join(parts, " ")
}
