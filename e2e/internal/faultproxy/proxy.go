// Package faultproxy is a seeded, deterministic, fault-injecting reverse
// proxy for testing clients of the Google Cloud Storage JSON API against an
// emulator such as fake-gcs-server.
//
// A Proxy is an http.Handler. Serve it over HTTP/1.1 on the loopback
// interface, for example with httptest.NewServer, and point the client at
// that server. Each request is tried against the proxy's rules in order;
// the first Rule that fires decides its Fault. A request that no rule fires
// on is forwarded to the target unchanged.
//
//	p := faultproxy.New(emulatorURL, faultproxy.WithSeed(1))
//	defer p.Close()
//	front := httptest.NewServer(p)
//	defer front.Close()
//	p.Add(faultproxy.Rule{Methods: faultproxy.Writes, Fault: faultproxy.ResetAfter, Next: 1})
//	p.Add(faultproxy.Rule{Fault: faultproxy.Status503, Probability: 0.2})
//
// # Determinism
//
// Rule decisions are made one request at a time under a mutex, drawing
// from a math/rand/v2 source seeded by WithSeed. For the same seed, rules
// and order of arrival, the same requests get the same faults. A request
// "arrives" when its body has been read: the proxy reads every request
// body in full before deciding, so that a client that gives up is noticed
// at once (net/http cancels a request's context on disconnect only after
// its body has been read) and so that a fault never depends on how much of
// a body had been sent.
//
// Once the proxy forwards a request, it sees it through even if the client
// gives up meanwhile, so whether a request was applied never depends on
// when the client's timeout fired. A request the client gives up on while
// the proxy is still waiting (Rule.Delay, Latency, Hang) is never forwarded.
//
// # Connections
//
// Resets (ResetBefore, ResetAfter) and Truncate take over the connection
// with http.Hijacker, which only HTTP/1 servers offer; under HTTP/2 they
// fall back to aborting the stream with http.ErrAbortHandler. The proxy
// dials only loopback addresses and ignores HTTP_PROXY and the like.
//
// Forwarded requests keep their method, path (exactly as received, so an
// escaped "%2F" stays escaped), query, body and headers, except the
// hop-by-hop ones; Host becomes the target's. Answers are read in full,
// then relayed with their status and headers, the target's Date included.
//
// A client built on net/http transparently retries, once, a GET or HEAD
// without body that fails on a reused keep-alive connection before any
// byte of the answer arrives. A reset of such a request on a reused
// connection is therefore invisible to the caller if the retry succeeds;
// tests that need the caller to see it should use Next: 2, or a client
// with DisableKeepAlives.
//
// # GCS emulation
//
// fake-gcs-server v1.56.1 ignores ifGenerationMatch on DELETE. With
// WithDeletePreconditions the proxy checks that precondition itself, the
// way GCS does; see there.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proxy is a fault-injecting reverse proxy. Create it with New; its
// methods are safe for concurrent use, including while it serves.
type Proxy struct {
	target         *url.URL
	transport      *http.Transport
	enforceDeletes bool
	logLimit       int

	// ctx ends when Close is called. It bounds every wait and every
	// forwarded request, so nothing the proxy does outlives it.
	ctx    context.Context
	cancel context.CancelFunc

	// writeMu serializes the mutating requests the proxy forwards, when
	// enforceDeletes is set, so that a DELETE's precondition check and
	// the DELETE itself are atomic with respect to other writes.
	writeMu sync.Mutex

	mu      sync.Mutex // guards the fields below
	rng     *rand.Rand
	rules   []*rule
	lastID  RuleID
	seq     uint64
	stats   Stats
	log     []Entry // ring buffer of at most logLimit entries
	logNext int     // index in log of the next entry to write, once full
}

// An Option configures a Proxy in New.
type Option func(*Proxy)

// WithSeed seeds the proxy's random source, used by Rule.Probability.
// Without it the seed is 0, so runs are repeatable all the same.
func WithSeed(seed uint64) Option {
	return func(p *Proxy) { p.rng = rand.New(rand.NewPCG(seed, 0)) }
}

// WithLogLimit keeps at most the n most recent entries in the request log
// (see Proxy.Log). The default is 1000; zero or less disables the log.
func WithLogLimit(n int) Option {
	return func(p *Proxy) { p.logLimit = max(n, 0) }
}

// WithDeletePreconditions makes the proxy enforce a DELETE's
// ifGenerationMatch and ifGenerationNotMatch query parameters as GCS
// does, because fake-gcs-server v1.56.1 ignores them.
//
// Before forwarding such a DELETE, the proxy reads the object's metadata
// from the target (a GET of the same path, keeping a generation
// parameter). If the object is missing it answers 404 (reason
// "notFound"); if its generation fails the condition it answers 412
// (reason "conditionNotMet"), so ifGenerationMatch=0 on an existing object
// gets 412. A parameter that is not an integer gets 400 (reason
// "invalid"), and any other answer to the metadata read 502. Only if the
// condition holds is the DELETE forwarded. ifMetagenerationMatch is not
// checked (the emulator's metageneration is always 1).
//
// To make check and delete atomic, all the POST, PUT, PATCH and DELETE
// requests that the proxy forwards are then serialized. Writes that reach
// the target by another way are not.
func WithDeletePreconditions() Option {
	return func(p *Proxy) { p.enforceDeletes = true }
}

// New returns a Proxy that forwards to target, an absolute http or https
// URL such as fakestorage.Server.URL(). Target's path, if any, is put in
// front of each request's path. The target must be on a loopback address:
// the proxy refuses to dial any other (the client then gets 502). An https
// target's certificate must verify, so serve the emulator over http.
//
// New panics if target is not such a URL: that is a mistake in the test.
// Call Close when done.
func New(target string, opts ...Option) *Proxy {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		panic("faultproxy: target must be an absolute http(s) URL, got " + target)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target:   u,
		ctx:      ctx,
		cancel:   cancel,
		logLimit: 1000,
		rng:      rand.New(rand.NewPCG(0, 0)),
		stats:    newStats(),
		transport: &http.Transport{
			Proxy: nil, // never go through HTTP_PROXY: traffic stays on loopback
			DialContext: (&net.Dialer{
				Timeout: 5 * time.Second,
				Control: loopbackOnly,
			}).DialContext,
			// Pass bodies through byte for byte: Truncate needs the true
			// length, and the client's Accept-Encoding is forwarded as is.
			DisableCompression:  true,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// loopbackOnly is a net.Dialer Control function that refuses to connect
// anywhere but a loopback address. It runs after name resolution.
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("faultproxy: refusing to dial " + address + ": not a loopback address")
	}
	return nil
}

// Close stops the proxy: requests waiting in a Delay, Latency or Hang are
// released and answered 502 if their client is still there, requests being
// forwarded are canceled, idle connections to the target are closed, and
// later requests are answered 502 without being forwarded. Close does not
// close the server the proxy is served by; call it before that server's
// Close, which waits for handlers to return. Close always returns nil.
func (p *Proxy) Close() error {
	p.cancel()
	p.transport.CloseIdleConnections()
	return nil
}

// Add appends r to the proxy's rules, so it is tried after those already
// there, and returns its ID. Add panics if r is invalid: no Fault, or a
// negative or out-of-range field.
func (p *Proxy) Add(r Rule) RuleID {
	if err := r.validate(); err != nil {
		panic("faultproxy: invalid Rule: " + err.Error())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastID++
	p.rules = append(p.rules, &rule{id: p.lastID, Rule: r})
	return p.lastID
}

// Remove removes the rule with the given ID and reports whether it was
// there. A request already decided by that rule is not affected.
func (p *Proxy) Remove(id RuleID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.rules {
		if r.id == id {
			p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
			return true
		}
	}
	return false
}

// Clear removes every rule. Counters, the log and the random source are
// kept.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Fired returns how many times the rule with the given ID has fired, or 0
// if there is no such rule (any more).
func (p *Proxy) Fired(id RuleID) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if r.id == id {
			return r.fired
		}
	}
	return 0
}

// decide counts the request and, if apply is set, picks the rule that
// fires on it, if any. Each Match function gets a shallow copy of req whose
// Body reads body.
func (p *Proxy) decide(req *http.Request, body []byte, apply bool, e *Entry) *rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	e.Seq = p.seq
	p.stats.Requests++
	p.stats.ByMethod[req.Method]++
	if _, ok := req.Header["Authorization"]; ok {
		p.stats.Authorized++
	}
	if !apply {
		return nil
	}
	for _, r := range p.rules {
		if !r.matches(req) {
			continue
		}
		if r.Match != nil {
			mr := req.WithContext(req.Context()) // handlers must not modify req
			mr.Body = io.NopCloser(bytes.NewReader(body))
			if !r.Match(mr) {
				continue
			}
		}
		r.matched++
		if r.Next > 0 && r.fired >= r.Next {
			continue
		}
		if r.Every > 0 && r.matched%r.Every != 0 {
			continue
		}
		if r.Probability > 0 && r.Probability < 1 && p.rng.Float64() >= r.Probability {
			continue
		}
		r.fired++
		p.stats.Faults[r.Fault]++
		e.Rule, e.Fault = r.id, r.Fault
		return r
	}
	return nil
}

// waitResult says how a wait ended.
type waitResult int

const (
	waited   waitResult = iota // the time was up
	canceled                   // the client gave up first
	closed                     // the proxy was closed first
)

// wait waits for d, or forever if d < 0, unless the client gives up or the
// proxy is closed first.
func (p *Proxy) wait(ctx context.Context, d time.Duration) waitResult {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
	case <-ctx.Done():
	case <-p.ctx.Done():
	}
	// Check again even after the timer: if the client gave up at the same
	// moment, not forwarding is the deterministic choice.
	if p.ctx.Err() != nil {
		return closed
	}
	if ctx.Err() != nil {
		return canceled
	}
	return waited
}

// ServeHTTP applies the first rule that fires on req, or else forwards it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	e := Entry{
		Time:   time.Now(),
		Method: req.Method,
		Path:   req.URL.EscapedPath(),
		Query:  req.URL.RawQuery,
	}
	defer p.record(&e)

	body, readErr := io.ReadAll(req.Body)
	isClosed := p.ctx.Err() != nil
	// A request that is not served does not use up a rule's firings.
	r := p.decide(req, body, readErr == nil && !isClosed, &e)
	if readErr != nil {
		// The client stopped sending; there is nothing to answer.
		e.Canceled = true
		p.count(func(s *Stats) { s.Canceled++ })
		return
	}
	if isClosed {
		e.Status = writeProxyError(w, req, "faultproxy: proxy closed")
		return
	}
	if r == nil {
		p.forwardAndRelay(w, req, body, &e)
		return
	}

	if r.Delay > 0 && !p.waitOrGiveUp(w, req, r.Delay, &e) {
		return
	}
	switch r.Fault {
	case Status500, Status503, Status429, Status408, Status400, Status401:
		e.Status = writeFault(w, req, r.Fault)
	case ResetBefore:
		resetConn(w)
	case ResetAfter:
		p.forward(req, body, &e)
		resetConn(w)
	case Latency:
		p.forwardAndRelay(w, req, body, &e)
	case Truncate:
		up, err := p.forward(req, body, &e)
		if err != nil {
			e.Status = writeProxyError(w, req, err.Error())
			return
		}
		e.Status = up.status
		writeTruncated(w, up, r.Keep)
	case Hang:
		p.waitOrGiveUp(w, req, -1, &e)
	}
}

// waitOrGiveUp waits d (forever if d < 0) and reports whether to go on.
// If the proxy was closed meanwhile it answers 502.
func (p *Proxy) waitOrGiveUp(w http.ResponseWriter, req *http.Request, d time.Duration, e *Entry) bool {
	switch p.wait(req.Context(), d) {
	case waited:
		return true
	case canceled:
		e.Canceled = true
		p.count(func(s *Stats) { s.Canceled++ })
	case closed:
		e.Status = writeProxyError(w, req, "faultproxy: proxy closed")
	}
	return false
}

// forwardAndRelay forwards req and copies the answer to w.
func (p *Proxy) forwardAndRelay(w http.ResponseWriter, req *http.Request, body []byte, e *Entry) {
	up, err := p.forward(req, body, e)
	if err != nil {
		e.Status = writeProxyError(w, req, err.Error())
		return
	}
	e.Status = up.status
	relay(w, req, up)
}

// response is an answer from the target, read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// isMutating reports whether method may change the target.
func isMutating(method string) bool {
	return methodBit(method)&Writes != 0
}

// forward sends req, with the given body, to the target and reads the
// answer in full. With WithDeletePreconditions the answer may instead come
// from the precondition check, and then nothing is forwarded.
func (p *Proxy) forward(req *http.Request, body []byte, e *Entry) (*response, error) {
	if p.enforceDeletes && isMutating(req.Method) {
		p.writeMu.Lock()
		defer p.writeMu.Unlock()
	}
	if p.enforceDeletes && req.Method == http.MethodDelete {
		up, err := p.checkDelete(req)
		if err != nil {
			return nil, err
		}
		if up != nil {
			e.TargetStatus = up.status
			p.count(func(s *Stats) { s.PreconditionFailed++ })
			return up, nil
		}
	}

	out, err := http.NewRequestWithContext(p.ctx, req.Method, p.targetURL(req.URL, req.URL.RawQuery), nil)
	if err != nil {
		return nil, err
	}
	out.Header = req.Header.Clone()
	removeHopHeaders(out.Header)
	if _, ok := out.Header["User-Agent"]; !ok {
		// Keep net/http from adding its own.
		out.Header.Set("User-Agent", "")
	}
	if len(body) > 0 {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
	}

	e.Forwarded = true
	p.count(func(s *Stats) { s.Forwarded++ })
	up, err := p.roundTrip(out)
	if err != nil {
		return nil, err
	}
	e.TargetStatus = up.status
	return up, nil
}

// roundTrip sends out and reads the whole answer.
func (p *Proxy) roundTrip(out *http.Request) (*response, error) {
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	h := resp.Header.Clone()
	removeHopHeaders(h)
	return &response{status: resp.StatusCode, header: h, body: b}, nil
}

// targetURL returns the target URL for a request to u, keeping u's path
// exactly as received (an escaped "%2F" stays escaped) and using rawQuery.
func (p *Proxy) targetURL(u *url.URL, rawQuery string) string {
	t := *p.target
	t.Path = strings.TrimSuffix(p.target.Path, "/") + u.Path
	t.RawPath = strings.TrimSuffix(p.target.EscapedPath(), "/") + u.EscapedPath()
	t.RawQuery = rawQuery
	t.Fragment, t.RawFragment = "", ""
	return t.String()
}

// removeHopHeaders deletes from h the headers that belong to one
// connection, not to the request or answer (RFC 9110, section 7.6.1),
// including those named in its Connection header.
func removeHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range [...]string{
		"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	} {
		h.Del(name)
	}
}
