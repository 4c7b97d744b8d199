package dimutextest

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Server is an in-memory GCS JSON API. Create it with NewServer; the zero
// Server is not usable. It is safe for concurrent use, including while it
// serves. It needs no closing: it holds no sockets and, once its requests
// are answered, no goroutines.
type Server struct {
	rateLimit bool // WithWriteRateLimit
	keepLog   bool // not WithoutRequestLog

	seq      atomic.Int64
	clock    atomic.Pointer[clock]
	faults   atomic.Pointer[FaultFunc]
	observer atomic.Pointer[func(Request)]

	mu      sync.Mutex
	buckets map[string]*bucket
	lastGen int64     // the last generation given out, by any bucket
	log     []Request // sorted by Seq
	dateSec int64     // the second that date formats
	date    string    // the Date header for dateSec
}

// bucket is one bucket and its live objects.
type bucket struct {
	name     string
	created  time.Time
	resource []byte // the bucket resource, JSON
	objects  map[string]*object
	// lastWrite is the true time (time.Now) of the last accepted mutation of
	// each name, kept only with WithWriteRateLimit. Entries older than a
	// second are pruned when the map has doubled since the last pruning.
	lastWrite map[string]time.Time
	pruneAt   int
}

// object is one live object version. It is never modified once stored: a
// write replaces it, so its resource and data may be shared by answers.
type object struct {
	bucket, name   string
	gen, metagen   int64
	contentType    string
	cacheControl   string
	data           []byte
	metadata       map[string]string
	created        time.Time
	updated        time.Time
	resource       []byte // the object resource, JSON
	metageneration string // metagen as a decimal string
	generation     string // gen as a decimal string
}

// Option configures a Server; pass options to NewServer.
type Option func(*Server)

// WithBucket creates the bucket name when the server starts. It may be
// given more than once. NewServer panics if name is not a valid bucket name
// or is given twice.
func WithBucket(name string) Option {
	return func(s *Server) {
		if err := s.CreateBucket(name); err != nil {
			panic(err.Error())
		}
	}
}

// WithWriteRateLimit enforces GCS's limit of about one write per second to
// one object name: an upload or delete of a name less than one second (of
// true time, time.Now, not the server's clock) after the last accepted
// mutation of that name is refused with 429, reason rateLimitExceeded,
// domain usageLimits, and is not applied. Refused requests do not count,
// and neither do the direct-access methods (PutObject, DeleteObject), which
// are never limited.
func WithWriteRateLimit() Option { return func(s *Server) { s.rateLimit = true } }

// WithoutRequestLog keeps no request log, for long simulations: Requests
// then always returns nil. OnRequest still sees every request.
func WithoutRequestLog() Option { return func(s *Server) { s.keepLog = false } }

// NewServer returns a Server with no buckets, a clock equal to time.Now,
// no faults and an empty request log, configured by opts in order.
func NewServer(opts ...Option) *Server {
	s := &Server{keepLog: true, buckets: make(map[string]*bucket)}
	now := time.Now()
	s.clock.Store(&clock{anchorNow: now, anchorServer: wall(now), rate: 1})
	for _, o := range opts {
		o(s)
	}
	return s
}

// URL returns "http://dimutextest.invalid", the endpoint to give a client
// that uses Transport or Client. The in-memory transport ignores the
// scheme and host of requests, and .invalid can never resolve, so a client
// given this URL with another transport fails at once instead of reaching
// some real host. Over httptest, use the httptest server's URL instead.
func (s *Server) URL() string { return "http://dimutextest.invalid" }

// clock maps true time to server time: anchorServer + (now-anchorNow)*rate.
// It is immutable; SetClock replaces it.
type clock struct {
	anchorNow    time.Time // true time, with its monotonic reading
	anchorServer time.Time // server time at anchorNow: wall clock only, UTC
	rate         float64
}

func (c *clock) at(now time.Time) time.Time {
	d := now.Sub(c.anchorNow)
	if c.rate != 1 {
		d = time.Duration(float64(d) * c.rate)
	}
	return c.anchorServer.Add(d)
}

// wall strips t's monotonic reading and returns it in UTC.
func wall(t time.Time) time.Time { return t.Round(0).UTC() }

// Now returns the server's clock: the time its answers' Date headers,
// timeCreated and updated fields, and generations come from. It is in UTC
// and has no monotonic reading.
func (s *Server) Now() time.Time { return s.clock.Load().at(time.Now()) }

// SetClock sets the server's clock to time.Now() + offset at the moment of
// the call, running at rate times true time from then on: server time =
// anchorServer + (now−anchorNow)·rate, re-anchored at each call.
// SetClock(0, 1) is the default: the server's clock is time.Now. A call
// whose offset differs from the current one, s.Now().Sub(time.Now()),
// makes the clock jump, possibly backwards; to change only the rate, pass
// the current offset. Generations still increase when the clock goes
// backwards. SetClock panics if rate is not a finite number greater than 0.
func (s *Server) SetClock(offset time.Duration, rate float64) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		panic(fmt.Sprintf("dimutextest: SetClock rate %v must be a finite number greater than 0", rate))
	}
	now := time.Now()
	s.clock.Store(&clock{anchorNow: now, anchorServer: wall(now).Add(offset), rate: rate})
}

// dateLocked returns the Date header for server time t, truncated to the
// second. s.mu must be held.
func (s *Server) dateLocked(t time.Time) string {
	if sec := t.Unix(); sec != s.dateSec || s.date == "" {
		s.dateSec, s.date = sec, t.Format(http.TimeFormat)
	}
	return s.date
}

// nextGenLocked returns a new generation: the server time in microseconds,
// or the last generation plus one if that is not greater. s.mu must be held.
func (s *Server) nextGenLocked(now time.Time) int64 {
	g := max(s.lastGen+1, now.UnixMicro())
	s.lastGen = g
	return g
}

// Object is a snapshot of one object, as the direct-access methods return
// it. Its slices and maps are copies: changing them changes nothing in the
// server.
type Object struct {
	Bucket, Name   string
	Generation     int64
	Metageneration int64
	ContentType    string
	CacheControl   string
	Data           []byte
	// Metadata is a copy of the custom metadata, nil if there is none.
	Metadata map[string]string
	// TimeCreated and Updated are the server's clock when this generation
	// was written, to the microsecond, in UTC: the times the JSON resource
	// carries. They are equal, since nothing here changes an object's
	// metadata without writing a new generation.
	TimeCreated time.Time
	Updated     time.Time
}

func (o *object) snapshot() Object {
	var md map[string]string
	if len(o.metadata) > 0 {
		md = maps.Clone(o.metadata)
	}
	return Object{
		Bucket:         o.bucket,
		Name:           o.name,
		Generation:     o.gen,
		Metageneration: o.metagen,
		ContentType:    o.contentType,
		CacheControl:   o.cacheControl,
		Data:           slices.Clone(o.data),
		Metadata:       md,
		TimeCreated:    o.created,
		Updated:        o.updated,
	}
}

// CreateBucket creates a bucket, as an operator would: it is not a request,
// so it is neither logged nor subject to faults. It returns an error if the
// bucket exists or name is not a valid bucket name (3 to 63 characters of
// lowercase letters, digits, '-', '_' and '.', starting and ending with a
// letter or digit; up to 222 with dots, 63 per dot-separated part; not
// starting with "goog").
func (s *Server) CreateBucket(name string) error {
	if err := validateBucketName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets[name] != nil {
		return fmt.Errorf("dimutextest: bucket %q already exists", name)
	}
	s.createBucketLocked(name, s.Now())
	return nil
}

func (s *Server) createBucketLocked(name string, now time.Time) *bucket {
	b := &bucket{name: name, created: now.Truncate(time.Microsecond), objects: make(map[string]*object)}
	if s.rateLimit {
		b.lastWrite = make(map[string]time.Time)
	}
	b.resource = appendBucketResource(nil, b)
	s.buckets[name] = b
	return b
}

// Object returns a snapshot of the live object name in bucket, and whether
// it exists. It is not a request: it is neither logged nor subject to
// faults.
func (s *Server) Object(bucket, name string) (Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.buckets[bucket]; b != nil {
		if o := b.objects[name]; o != nil {
			return o.snapshot(), true
		}
	}
	return Object{}, false
}

// PutObject writes a new generation of name in bucket unconditionally, as
// another tool overwriting it would, with content type
// application/octet-stream and a copy of data and metadata. It is not a
// request: it is neither logged, nor subject to faults, nor rate limited,
// nor counted by the rate limit. It returns an error if the bucket does
// not exist or the name is not a valid object name.
func (s *Server) PutObject(bucket, name string, data []byte, metadata map[string]string) (Object, error) {
	if err := validateObjectName(name); err != nil {
		return Object{}, err
	}
	data = slices.Clone(data)
	if len(metadata) > 0 {
		metadata = maps.Clone(metadata)
	} else {
		metadata = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucket]
	if b == nil {
		return Object{}, fmt.Errorf("dimutextest: bucket %q does not exist", bucket)
	}
	o := s.storeLocked(b, name, "application/octet-stream", "", data, metadata, s.Now())
	return o.snapshot(), nil
}

// storeLocked writes a new generation of name, dated now (server time).
func (s *Server) storeLocked(b *bucket, name, contentType, cacheControl string, data []byte, metadata map[string]string, now time.Time) *object {
	t := now.Truncate(time.Microsecond)
	o := &object{
		bucket:       b.name,
		name:         name,
		gen:          s.nextGenLocked(now),
		metagen:      1,
		contentType:  contentType,
		cacheControl: cacheControl,
		data:         data,
		metadata:     metadata,
		created:      t,
		updated:      t,
	}
	o.resource = appendObjectResource(nil, o)
	b.objects[name] = o
	return o
}

// DeleteObject deletes the live object name in bucket, unconditionally, and
// reports whether it existed. It is not a request: it is neither logged,
// nor subject to faults, nor rate limited.
func (s *Server) DeleteObject(bucket, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucket]
	if b == nil || b.objects[name] == nil {
		return false
	}
	delete(b.objects, name)
	return true
}

// Objects returns snapshots of the live objects in bucket whose names start
// with prefix, sorted by name; nil if there are none or the bucket does not
// exist.
func (s *Server) Objects(bucket, prefix string) []Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucket]
	if b == nil {
		return nil
	}
	var out []Object
	for name, o := range b.objects {
		if strings.HasPrefix(name, prefix) {
			out = append(out, o.snapshot())
		}
	}
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Requests returns a copy of the request log, in order of arrival (Seq). A
// request enters the log once the server has handled it: a request waiting
// out its Latency is not there yet. The Query and Header maps of the
// entries are shared with the log and must not be modified. It returns nil
// with WithoutRequestLog.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// ClearRequests empties the request log. Seq keeps counting.
func (s *Server) ClearRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// OnRequest sets a function called synchronously with each request once the
// server has handled it (after it enters the log, before the client gets the
// answer), on the goroutine that handled it. It must not block; it may call
// the Server's methods. Nil removes it.
func (s *Server) OnRequest(f func(Request)) {
	if f == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&f)
}

// SetFaults sets the function that decides each request's fault. Nil means
// no faults.
func (s *Server) SetFaults(f FaultFunc) {
	if f == nil {
		s.faults.Store(nil)
		return
	}
	s.faults.Store(&f)
}

// validateBucketName applies GCS's main bucket naming rules.
func validateBucketName(name string) error {
	bad := func(reason string) error {
		return fmt.Errorf("dimutextest: invalid bucket name %q: %s", name, reason)
	}
	switch {
	case len(name) < 3:
		return bad("must be at least 3 characters")
	case len(name) > 222:
		return bad("must be at most 222 characters")
	case !strings.Contains(name, ".") && len(name) > 63:
		return bad("must be at most 63 characters unless it contains dots")
	case strings.HasPrefix(name, "goog"):
		return bad(`must not start with "goog"`)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isAlnum(c) || c == '-' || c == '_' || c == '.') {
			return bad("may contain only lowercase letters, digits, '-', '_' and '.'")
		}
	}
	if !isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return bad("must start and end with a letter or digit")
	}
	for part := range strings.SplitSeq(name, ".") {
		if part == "" || len(part) > 63 {
			return bad("each dot-separated part must have 1 to 63 characters")
		}
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// validateObjectName applies GCS's object naming rules: 1 to 1024 bytes of
// valid UTF-8, no carriage return or line feed, not "." or "..", not under
// ".well-known/acme-challenge/".
func validateObjectName(name string) error {
	reason := ""
	switch {
	case name == "":
		reason = "must not be empty"
	case len(name) > 1024:
		reason = "must be at most 1024 bytes"
	case !utf8.ValidString(name):
		reason = "must be valid UTF-8"
	case strings.ContainsAny(name, "\r\n"):
		reason = "must not contain carriage return or line feed"
	case name == "." || name == "..":
		reason = `must not be "." or ".."`
	case strings.HasPrefix(name, ".well-known/acme-challenge/"):
		reason = `must not start with ".well-known/acme-challenge/"`
	default:
		return nil
	}
	return fmt.Errorf("dimutextest: invalid object name %q: %s", name, reason)
}
