package dimutextest

import (
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// FaultFunc decides the fault of one request. The server calls it once per
// request, bucket calls and unknown routes included, as soon as the request
// has arrived, before doing anything else with it. It is called
// synchronously, without any lock held, possibly from several goroutines at
// once; it may call the Server's methods. r has Seq, At, ServerTime (the
// server's clock on arrival), Method, Op, Bucket, Object, Query and Header
// set; it must not be modified or kept after the call.
type FaultFunc func(r *Request) Fault

// FaultKind is what happens to a request.
type FaultKind int

// The kinds of fault. A fault's Latency applies to every kind.
const (
	// NoFault: the server handles the request and answers normally.
	NoFault FaultKind = iota
	// FailBefore: the server answers Fault.Status with a GCS-shaped error
	// body with the reason GCS gives for that status, and applies nothing.
	FailBefore
	// ResetBefore: the connection resets before the request is applied, and
	// nothing is applied. In memory, the client gets an error that wraps a
	// *net.OpError wrapping syscall.ECONNRESET, as a real reset gives;
	// errors.Is(err, syscall.ECONNRESET) is true.
	ResetBefore
	// ResetAfter: the server applies the request, then the connection resets
	// before the answer is sent; the client sees a reset as for ResetBefore.
	ResetAfter
	// TruncateAfter: the server applies the request, then sends the status
	// and headers, with the full Content-Length, and only the first half of
	// the body: the client's read of the body fails with io.ErrUnexpectedEOF.
	// An answer with no body (a delete's 204) is cut inside its headers
	// instead: the client's request fails with an error wrapping
	// io.ErrUnexpectedEOF.
	TruncateAfter
	// Hang: the server never answers and never applies the request; the
	// client waits until its request's context ends, and gets the context's
	// error. A client whose context never ends waits forever.
	Hang
)

// String returns the kind's Go name, such as "ResetAfter".
func (k FaultKind) String() string {
	switch k {
	case NoFault:
		return "NoFault"
	case FailBefore:
		return "FailBefore"
	case ResetBefore:
		return "ResetBefore"
	case ResetAfter:
		return "ResetAfter"
	case TruncateAfter:
		return "TruncateAfter"
	case Hang:
		return "Hang"
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// Fault is what a FaultFunc decides for one request. The zero Fault is no
// fault.
type Fault struct {
	Kind FaultKind
	// Status is the status that FailBefore answers: 400 to 599, such as 408,
	// 429, 500, 503, 400, 401 or 403. Zero means 503. Another value makes
	// the request panic.
	Status int
	// Latency delays the server's handling of the request. The request IS
	// handled once the latency has passed, even if the client gave up
	// meanwhile, as a real network may still deliver it: the client then
	// gets its context's error, and a write may land later.
	Latency time.Duration
	// Header, if not nil, edits the answer's headers before they are sent,
	// for instance to delete "Date" or set it to garbage. It is not called
	// for resets and hangs, which send no headers.
	Header func(h http.Header)
}

// Request is one request as the server saw it.
type Request struct {
	// Seq numbers requests 1, 2, ... in order of arrival.
	Seq int
	// At is time.Now() when the request arrived: true time, not the
	// server's clock.
	At time.Time
	// ServerTime is the server's clock when the request was handled: the
	// time its Date header and any write carry.
	ServerTime time.Time
	// Method is the HTTP method.
	Method string
	// Op is "insert", "get", "delete", "list", "bucket.insert" or
	// "bucket.get", or "" for a route or method this package does not
	// implement.
	Op string
	// Bucket and Object are the names the request addressed, unescaped,
	// from the path or, for an upload, the name= parameter. Two are known
	// only once the request is handled, not yet when the FaultFunc sees it:
	// a bucket insert's Bucket, which comes from its body, and the Object of
	// an upload without name=, which comes from its metadata part.
	Bucket, Object string
	// Query is the request's parsed query string.
	Query url.Values
	// Header is the request's headers (a copy, in the log). Tests can tag
	// their clients with a header of their own to tell them apart.
	Header http.Header
	// Fault is what the FaultFunc decided.
	Fault Fault
	// Status is the status the server decided, even if the client did not
	// receive it (ResetAfter); 0 if the server decided none (ResetBefore,
	// Hang).
	Status int
	// Applied reports that the request changed the server's state.
	Applied bool
	// Generation is the object's generation after a successful upload, the
	// generation deleted by a successful delete, or the generation read by a
	// successful get; 0 otherwise.
	Generation int64
	// Metadata is the custom metadata that an applied upload stored; nil
	// otherwise. It must not be modified.
	Metadata map[string]string
}
