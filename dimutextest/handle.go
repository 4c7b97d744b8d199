package dimutextest

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// exchange is one request on its way through the server, and its answer.
// One goroutine at a time owns it.
type exchange struct {
	req         Request
	body        []byte
	contentType string // the request's Content-Type
	route       gcsError

	// The answer.
	status int
	rbody  []byte
	rtype  string  // the Content-Type of rbody, if any
	media  *object // the object whose data rbody is (alt=media), if any
	date   string
}

// fail sets the answer to the error e.
func (x *exchange) fail(e gcsError) {
	x.status, x.rbody, x.rtype = e.code, e.body(), jsonType
}

// ok sets a successful answer.
func (x *exchange) ok(status int, body []byte, contentType string) {
	x.status, x.rbody, x.rtype = status, body, contentType
}

// ref names the object addressed as bucket/name, as GCS's messages do.
func (x *exchange) ref() string {
	if x.req.Object == "" {
		return ""
	}
	return x.req.Bucket + "/" + x.req.Object
}

// arrive registers a request that has arrived, with its body read in full,
// and asks the FaultFunc about it.
func (s *Server) arrive(method, escapedPath, rawQuery string, header http.Header, body []byte) *exchange {
	x := &exchange{body: body, contentType: header.Get("Content-Type")}
	r := &x.req
	r.Seq = int(s.seq.Add(1))
	r.At = time.Now()
	r.ServerTime = s.clock.Load().at(r.At)
	r.Method = method
	r.Header = header
	r.Op, r.Bucket, r.Object, x.route = route(method, escapedPath)
	q, err := url.ParseQuery(rawQuery)
	r.Query = q
	if r.Op == "insert" {
		r.Object = q.Get("name")
	}
	if err != nil && x.route.code == 0 {
		x.route = gcsError{code: http.StatusBadRequest, reason: "invalid", message: "Malformed query string."}
	}
	if f := s.faults.Load(); f != nil {
		r.Fault = (*f)(r)
		if r.Fault.Kind == FailBefore && r.Fault.Status != 0 && (r.Fault.Status < 400 || r.Fault.Status > 599) {
			panic(fmt.Sprintf("dimutextest: FailBefore needs a Status from 400 to 599, not %d", r.Fault.Status))
		}
	}
	return x
}

// handle handles a request whose latency has passed: it applies it unless
// its fault says otherwise, decides the answer, logs it and shows it to the
// observer. The answer's delivery is up to the caller.
func (s *Server) handle(x *exchange) {
	r := &x.req
	var p prepared
	switch r.Fault.Kind {
	case NoFault, ResetAfter, TruncateAfter:
		s.prepare(x, &p) // parsing, outside the lock
	}
	var logHeader http.Header
	if s.keepLog {
		logHeader = r.Header.Clone()
	}

	s.mu.Lock()
	trueNow := time.Now()
	now := s.clock.Load().at(trueNow)
	r.ServerTime = now
	x.date = s.dateLocked(now)
	switch r.Fault.Kind {
	case FailBefore:
		x.fail(standardError(cmp.Or(r.Fault.Status, http.StatusServiceUnavailable), x.ref()))
	case ResetBefore, Hang:
		// The server decided nothing.
	default:
		if x.status == 0 {
			s.applyLocked(x, &p, trueNow, now)
		}
	}
	r.Status = x.status
	entry := *r
	if s.keepLog {
		entry.Header = logHeader
		s.appendLogLocked(entry)
	}
	s.mu.Unlock()

	if f := s.observer.Load(); f != nil {
		(*f)(entry)
	}
}

// appendLogLocked adds e to the log, which it keeps sorted by Seq: a request
// delayed by its latency is handled after later ones.
func (s *Server) appendLogLocked(e Request) {
	s.log = append(s.log, e)
	for i := len(s.log) - 1; i > 0 && s.log[i-1].Seq > s.log[i].Seq; i-- {
		s.log[i-1], s.log[i] = s.log[i], s.log[i-1]
	}
}

// route parses a request's method and escaped path into an operation and
// the names it addresses. A route error is returned as a gcsError with a
// code; the names are still returned as far as they are known.
func route(method, p string) (op, bucket, object string, e gcsError) {
	notFound := gcsError{code: http.StatusNotFound, reason: "notFound", message: "Not Found"}
	notImplemented := gcsError{code: http.StatusNotImplemented, reason: "notImplemented",
		message: "dimutextest does not implement this method on this path."}
	unescape := func(seg string) (string, bool) {
		if !strings.Contains(seg, "%") {
			return seg, true
		}
		v, err := url.PathUnescape(seg)
		if err != nil {
			e = gcsError{code: http.StatusBadRequest, reason: "invalid", message: "Malformed escaping in the path."}
			return "", false
		}
		return v, true
	}
	switch {
	case strings.HasPrefix(p, "/storage/v1/b/"):
		rest := p[len("/storage/v1/b/"):]
		seg, sub, _ := strings.Cut(rest, "/")
		var ok bool
		if bucket, ok = unescape(seg); !ok {
			return "", "", "", e
		}
		switch {
		case !strings.Contains(rest, "/"):
			if method == http.MethodGet {
				return "bucket.get", bucket, "", e
			}
			return "", bucket, "", notImplemented
		case sub == "o":
			switch method {
			case http.MethodGet:
				return "list", bucket, "", e
			case http.MethodPost:
				// objects.insert without /upload: GCS answers 400.
				return "insert", bucket, "", gcsError{code: http.StatusBadRequest, reason: "wrongUrlForUpload",
					message: "Upload requests must include an uploadType URL parameter and a URL path beginning with /upload/"}
			}
			return "", bucket, "", notImplemented
		case strings.HasPrefix(sub, "o/"):
			if object, ok = unescape(sub[len("o/"):]); !ok {
				return "", bucket, "", e
			}
			switch method {
			case http.MethodGet:
				return "get", bucket, object, e
			case http.MethodDelete:
				return "delete", bucket, object, e
			}
			return "", bucket, object, notImplemented
		}
		return "", bucket, "", notFound
	case p == "/storage/v1/b" || p == "/storage/v1/b/":
		if method == http.MethodPost {
			return "bucket.insert", "", "", e
		}
		return "", "", "", notImplemented
	case strings.HasPrefix(p, "/upload/storage/v1/b/"):
		seg, sub, _ := strings.Cut(p[len("/upload/storage/v1/b/"):], "/")
		var ok bool
		if bucket, ok = unescape(seg); !ok {
			return "", "", "", e
		}
		if sub != "o" {
			return "", bucket, "", notFound
		}
		if method == http.MethodPost {
			return "insert", bucket, "", e
		}
		return "", bucket, "", notImplemented
	}
	return "", "", "", notFound
}

// prepared is what prepare parsed from a request, for applyLocked.
type prepared struct {
	pre preconditions
	// generation is the generation= parameter of a get or delete; 0 if none.
	generation int64
	media      bool // alt=media

	// An upload.
	contentType, cacheControl string
	data                      []byte
	metadata                  map[string]string

	// A listing.
	prefix, delimiter, pageToken string
	maxResults                   int
}

// prepare parses the request, outside the lock. A malformed request gets
// its error answer here.
func (s *Server) prepare(x *exchange, p *prepared) {
	r := &x.req
	if x.route.code != 0 {
		x.fail(x.route)
		return
	}
	q := r.Query
	invalid := func(msg string) {
		x.fail(gcsError{code: http.StatusBadRequest, reason: "invalid", message: msg})
	}
	switch r.Op {
	case "insert":
		if err := p.pre.parse(q); err != "" {
			invalid(err)
			return
		}
		s.prepareUpload(x, p)
		if x.status != 0 {
			return
		}
		if err := validateObjectName(r.Object); err != nil {
			invalid("The specified object name is not valid: " + strings.TrimPrefix(err.Error(), "dimutextest: "))
		}
	case "get", "delete":
		if err := p.pre.parse(q); err != "" {
			invalid(err)
			return
		}
		if v := q.Get("generation"); v != "" {
			g, err := strconv.ParseInt(v, 10, 64)
			if err != nil || g <= 0 {
				invalid("Invalid value for generation: " + v)
				return
			}
			p.generation = g
		}
		if r.Op == "get" {
			switch alt := q.Get("alt"); alt {
			case "", "json":
			case "media":
				p.media = true
			default:
				invalid("Invalid value for alt: " + alt)
			}
		}
	case "list":
		p.prefix, p.delimiter = q.Get("prefix"), q.Get("delimiter")
		p.maxResults = 1000
		if v := q.Get("maxResults"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				invalid("Invalid value for maxResults: " + v)
				return
			}
			if n > 0 && n < p.maxResults {
				p.maxResults = n
			}
		}
		if t := q.Get("pageToken"); t != "" {
			last, err := base64.RawURLEncoding.DecodeString(t)
			if err != nil || len(last) == 0 {
				invalid("Invalid value for pageToken.")
				return
			}
			p.pageToken = string(last)
		}
	case "bucket.insert":
		if q.Get("project") == "" {
			x.fail(gcsError{code: http.StatusBadRequest, reason: "required", message: "Required parameter: project",
				locationType: "parameter", location: "project"})
			return
		}
		var body struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(x.body, &body); err != nil {
			invalid("The bucket resource in the request body is not valid JSON.")
			return
		}
		r.Bucket = body.Name
		if body.Name == "" {
			x.fail(gcsError{code: http.StatusBadRequest, reason: "required", message: "Required"})
			return
		}
		if err := validateBucketName(body.Name); err != nil {
			invalid("Invalid bucket name: '" + body.Name + "'")
		}
	}
}

// prepareUpload parses an upload's body.
func (s *Server) prepareUpload(x *exchange, p *prepared) {
	r := &x.req
	invalid := func(msg string) {
		x.fail(gcsError{code: http.StatusBadRequest, reason: "invalid", message: msg})
	}
	q := r.Query
	r.Object = q.Get("name")
	switch typ := q.Get("uploadType"); typ {
	case "media":
		if r.Object == "" {
			x.fail(gcsError{code: http.StatusBadRequest, reason: "required", message: "Required parameter: name",
				locationType: "parameter", location: "name"})
			return
		}
		p.contentType, p.data = x.contentType, x.body
	case "multipart":
		boundary, err := relatedBoundary(x.contentType)
		if err != nil {
			invalid("Invalid multipart request: " + err.Error())
			return
		}
		parts, err := splitRelated(x.body, boundary)
		if err == nil && len(parts) != 2 {
			err = fmt.Errorf("a multipart upload needs two parts, metadata and media, not %d", len(parts))
		}
		if err != nil {
			invalid("Invalid multipart request: " + err.Error())
			return
		}
		md, err := decodeMetadata(parts[0].data)
		if err != nil {
			invalid("Invalid multipart request: the metadata part is not a valid object resource: " + err.Error())
			return
		}
		if r.Object == "" {
			r.Object = md.Name // the name= parameter overrides the metadata's
		}
		p.contentType = md.ContentType
		if p.contentType == "" {
			p.contentType = parts[1].contentType
		}
		p.cacheControl, p.data = md.CacheControl, parts[1].data
		if len(md.Metadata) > 0 {
			p.metadata = md.Metadata
		}
	case "resumable":
		x.fail(gcsError{code: http.StatusNotImplemented, reason: "notImplemented",
			message: "dimutextest does not implement resumable uploads; use uploadType=multipart or media."})
		return
	case "":
		x.fail(gcsError{code: http.StatusBadRequest, reason: "required", message: "Upload requests must include an uploadType URL parameter and a URL path beginning with /upload/",
			locationType: "parameter", location: "uploadType"})
		return
	default:
		invalid("Invalid upload type: " + typ)
		return
	}
	if p.contentType == "" {
		p.contentType = "application/octet-stream"
	}
}

// preconditions are the ifGeneration… and ifMetageneration… parameters.
type preconditions struct {
	has                     uint8 // which are set: bits of the consts below
	genMatch, genNotMatch   int64
	metaMatch, metaNotMatch int64
}

const (
	hasGenMatch = 1 << iota
	hasGenNotMatch
	hasMetaMatch
	hasMetaNotMatch
)

// parse reads the preconditions; it returns a message for a bad value.
func (c *preconditions) parse(q url.Values) string {
	for _, f := range [...]struct {
		name string
		bit  uint8
		v    *int64
	}{
		{"ifGenerationMatch", hasGenMatch, &c.genMatch},
		{"ifGenerationNotMatch", hasGenNotMatch, &c.genNotMatch},
		{"ifMetagenerationMatch", hasMetaMatch, &c.metaMatch},
		{"ifMetagenerationNotMatch", hasMetaNotMatch, &c.metaNotMatch},
	} {
		vs, ok := q[f.name]
		if !ok || len(vs) == 0 {
			continue
		}
		n, err := strconv.ParseInt(vs[0], 10, 64)
		if err != nil || n < 0 {
			return "Invalid value for " + f.name + ": " + vs[0]
		}
		*f.v = n
		c.has |= f.bit
	}
	return ""
}

// hold reports whether the preconditions hold for the live object o (nil if
// none). ifGenerationMatch=0 holds only if there is no live object; every
// other precondition fails if there is none.
func (c *preconditions) hold(o *object) bool {
	if c.has == 0 {
		return true
	}
	if o == nil {
		return c.has == hasGenMatch && c.genMatch == 0
	}
	return (c.has&hasGenMatch == 0 || o.gen == c.genMatch) &&
		(c.has&hasGenNotMatch == 0 || o.gen != c.genNotMatch) &&
		(c.has&hasMetaMatch == 0 || o.metagen == c.metaMatch) &&
		(c.has&hasMetaNotMatch == 0 || o.metagen != c.metaNotMatch)
}

// bucketNotFound is GCS's answer for a missing bucket.
func bucketNotFound() gcsError {
	return gcsError{code: http.StatusNotFound, reason: "notFound", message: "The specified bucket does not exist."}
}

// applyLocked carries out a well-formed request. s.mu must be held.
func (s *Server) applyLocked(x *exchange, p *prepared, trueNow, now time.Time) {
	r := &x.req
	switch r.Op {
	case "bucket.insert":
		if s.buckets[r.Bucket] != nil {
			x.fail(gcsError{code: http.StatusConflict, reason: "conflict",
				message: "Your previous request to create the named bucket succeeded and you already own it."})
			return
		}
		b := s.createBucketLocked(r.Bucket, now)
		r.Applied = true
		x.ok(http.StatusOK, b.resource, jsonType)
		return
	}
	b := s.buckets[r.Bucket]
	if b == nil {
		x.fail(bucketNotFound())
		return
	}
	switch r.Op {
	case "bucket.get":
		x.ok(http.StatusOK, b.resource, jsonType)
	case "insert":
		if s.limitedLocked(b, r.Object, trueNow) {
			x.fail(standardError(http.StatusTooManyRequests, x.ref()))
			return
		}
		if !p.pre.hold(b.objects[r.Object]) {
			x.fail(standardError(http.StatusPreconditionFailed, ""))
			return
		}
		o := s.storeLocked(b, r.Object, p.contentType, p.cacheControl, p.data, p.metadata, now)
		s.markWriteLocked(b, r.Object, trueNow)
		r.Applied, r.Generation, r.Metadata = true, o.gen, o.metadata
		x.ok(http.StatusOK, o.resource, jsonType)
	case "get", "delete":
		o := b.objects[r.Object]
		if o == nil || p.generation != 0 && p.generation != o.gen {
			x.fail(standardError(http.StatusNotFound, x.ref()))
			return
		}
		if r.Op == "delete" && s.limitedLocked(b, r.Object, trueNow) {
			x.fail(standardError(http.StatusTooManyRequests, x.ref()))
			return
		}
		if !p.pre.hold(o) {
			x.fail(standardError(http.StatusPreconditionFailed, ""))
			return
		}
		r.Generation = o.gen
		switch {
		case r.Op == "delete":
			delete(b.objects, r.Object)
			s.markWriteLocked(b, r.Object, trueNow)
			r.Applied = true
			x.ok(http.StatusNoContent, nil, "")
		case p.media:
			x.ok(http.StatusOK, o.data, o.contentType)
			x.media = o
		default:
			x.ok(http.StatusOK, o.resource, jsonType)
		}
	case "list":
		x.ok(http.StatusOK, b.list(p), jsonType)
	}
}

// limitedLocked reports whether a mutation of name at trueNow breaks the
// write rate limit.
func (s *Server) limitedLocked(b *bucket, name string, trueNow time.Time) bool {
	if !s.rateLimit {
		return false
	}
	t, ok := b.lastWrite[name]
	return ok && trueNow.Sub(t) < time.Second
}

// markWriteLocked records an accepted mutation of name for the rate limit.
func (s *Server) markWriteLocked(b *bucket, name string, trueNow time.Time) {
	if !s.rateLimit {
		return
	}
	if b.lastWrite == nil {
		b.lastWrite = make(map[string]time.Time)
	}
	b.lastWrite[name] = trueNow
	if len(b.lastWrite) > b.pruneAt {
		for k, t := range b.lastWrite {
			if trueNow.Sub(t) >= time.Second {
				delete(b.lastWrite, k)
			}
		}
		b.pruneAt = max(1024, 2*len(b.lastWrite))
	}
}

// list answers a listing: the entries (objects, and prefixes if there is a
// delimiter) after the page token, in name order, at most maxResults.
func (b *bucket) list(p *prepared) []byte {
	var names []string
	var prefixes map[string]bool
	for name := range b.objects {
		if !strings.HasPrefix(name, p.prefix) {
			continue
		}
		if p.delimiter != "" {
			if i := strings.Index(name[len(p.prefix):], p.delimiter); i >= 0 {
				pre := name[:len(p.prefix)+i+len(p.delimiter)]
				if prefixes == nil {
					prefixes = make(map[string]bool)
				}
				if !prefixes[pre] && pre > p.pageToken {
					prefixes[pre] = true
					names = append(names, pre)
				}
				continue
			}
		}
		if name > p.pageToken {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	more := len(names) > p.maxResults
	if more {
		names = names[:p.maxResults]
	}
	out := make([]byte, 0, 64)
	out = append(out, `{"kind":"storage#objects"`...)
	if more {
		out = append(out, `,"nextPageToken":"`...)
		out = base64.RawURLEncoding.AppendEncode(out, []byte(names[len(names)-1]))
		out = append(out, '"')
	}
	if len(prefixes) > 0 {
		n := 0
		for _, name := range names {
			if prefixes[name] {
				if n == 0 {
					out = append(out, `,"prefixes":[`...)
				} else {
					out = append(out, ',')
				}
				out = appendJSONString(out, name)
				n++
			}
		}
		if n > 0 {
			out = append(out, ']')
		}
	}
	n := 0
	for _, name := range names {
		if o := b.objects[name]; o != nil && !prefixes[name] {
			if n == 0 {
				out = append(out, `,"items":[`...)
			} else {
				out = append(out, ',')
			}
			out = append(out, o.resource...)
			n++
		}
	}
	if n > 0 {
		out = append(out, ']')
	}
	return append(out, '}')
}
