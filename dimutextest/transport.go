package dimutextest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Transport returns an http.RoundTripper that hands each request to the
// server in memory, with no sockets. It ignores the request's scheme and
// host; see URL. If the request's context is already done, it returns the
// context's error, and the request never arrives. Otherwise it reads the
// request body in full, the request arrives, and the transport:
//
//   - with no Latency, handles the request synchronously on the caller's
//     goroutine;
//   - with a Latency, handles it on a goroutine of its own once the latency
//     has passed, and returns the answer, or the context's error if the
//     context ends first (the request is still handled when the latency has
//     passed).
//
// Faults are delivered as a real connection would deliver them: resets as
// errors wrapping syscall.ECONNRESET, TruncateAfter as a body that fails
// with io.ErrUnexpectedEOF, Hang by waiting for the context. The transport
// never retries.
func (s *Server) Transport() http.RoundTripper { return transport{s} }

// Client returns a new &http.Client{Transport: s.Transport()}.
func (s *Server) Client() *http.Client { return &http.Client{Transport: s.Transport()} }

type transport struct{ s *Server }

// RoundTrip implements http.RoundTripper.
func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	x := t.s.arrive(req.Method, req.URL.EscapedPath(), req.URL.RawQuery, req.Header, body)
	if d := x.req.Fault.Latency; d <= 0 {
		t.s.handle(x)
	} else {
		// The caller may reuse the request once it has given up: keep
		// nothing of it for the delayed handling.
		x.req.Header = x.req.Header.Clone()
		done := make(chan struct{})
		time.AfterFunc(d, func() {
			t.s.handle(x)
			close(done)
		})
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return x.response(req)
}

// readBody reads and closes a request's body.
func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	if n := req.ContentLength; n > 0 {
		b := make([]byte, n)
		if _, err := io.ReadFull(req.Body, b); err != nil {
			return nil, fmt.Errorf("dimutextest: reading the request body: %w", err)
		}
		return b, nil
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fmt.Errorf("dimutextest: reading the request body: %w", err)
	}
	return b, nil
}

// response delivers the answer of a handled request as the client sees it.
func (x *exchange) response(req *http.Request) (*http.Response, error) {
	switch x.req.Fault.Kind {
	case Hang:
		<-req.Context().Done()
		return nil, req.Context().Err()
	case ResetBefore, ResetAfter:
		return nil, resetError(req)
	}
	resp := &http.Response{
		Status:     statusLine(x.status),
		StatusCode: x.status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, 6),
		Request:    req,
	}
	x.fillHeader(resp.Header)
	n := len(x.rbody)
	switch {
	case x.req.Fault.Kind == TruncateAfter:
		if n == 0 || x.status == http.StatusNoContent || x.status == http.StatusNotModified {
			return nil, errTruncatedHeaders()
		}
		resp.Body = &body{data: x.rbody[:n/2], truncated: true}
	case x.status == http.StatusNoContent || x.status == http.StatusNotModified:
		n = 0
		resp.Body = http.NoBody
	case n == 0 || req.Method == http.MethodHead:
		resp.Body = http.NoBody
	default:
		resp.Body = &body{data: x.rbody}
	}
	resp.ContentLength = int64(n)
	return resp, nil
}

func errTruncatedHeaders() error {
	return fmt.Errorf("dimutextest: the connection closed before the response headers were complete: %w", io.ErrUnexpectedEOF)
}

// resetError is the error of a connection reset by the server, shaped as
// net/http's Transport reports one.
func resetError(req *http.Request) error {
	return &net.OpError{Op: "read", Net: "tcp", Addr: memAddr(req.URL.Host),
		Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

// memAddr is the server's address as a reset error names it.
type memAddr string

func (a memAddr) Network() string { return "tcp" }
func (a memAddr) String() string  { return string(a) }

// statusLine returns the Status of a response, such as "200 OK".
func statusLine(code int) string {
	switch code {
	case http.StatusOK:
		return "200 OK"
	case http.StatusNoContent:
		return "204 No Content"
	case http.StatusNotFound:
		return "404 Not Found"
	case http.StatusPreconditionFailed:
		return "412 Precondition Failed"
	case http.StatusTooManyRequests:
		return "429 Too Many Requests"
	case http.StatusServiceUnavailable:
		return "503 Service Unavailable"
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// body is an in-memory response body. A truncated body fails with
// io.ErrUnexpectedEOF after its data, as net/http's body does when the
// connection ends before Content-Length bytes.
type body struct {
	data      []byte
	off       int
	truncated bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.off >= len(b.data) {
		if b.truncated {
			return 0, io.ErrUnexpectedEOF
		}
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

func (b *body) Close() error { return nil }

// fillHeader sets the answer's headers in h, then lets the fault's Header
// function edit them.
func (x *exchange) fillHeader(h http.Header) {
	vals := make([]string, 0, 5)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("Date", x.date)
	if x.rtype != "" {
		set("Content-Type", x.rtype)
	}
	if x.status != http.StatusNoContent && x.status != http.StatusNotModified {
		set("Content-Length", strconv.Itoa(len(x.rbody)))
	}
	if o := x.media; o != nil {
		set("X-Goog-Generation", o.generation)
		set("X-Goog-Metageneration", o.metageneration)
	}
	if f := x.req.Fault.Header; f != nil {
		f(h)
	}
}

// ServeHTTP serves the JSON API over a real connection, for use with
// httptest.NewServer. It reads the request body in full before the request
// counts as arrived. Faults are delivered on the connection: FailBefore as
// an error answer; ResetBefore and ResetAfter by closing the connection with
// a TCP reset (SO_LINGER 0); TruncateAfter by writing the status line, the
// headers with the full Content-Length and half the body, then closing the
// connection (a normal close, so that the client reliably sees the body
// end early rather than a reset); Hang by waiting until the request's
// context ends, that is until the client disconnects (or
// httptest.Server.CloseClientConnections is called), then aborting. Until
// then the hung request keeps httptest.Server.Close waiting. Latency holds
// the handler for its duration even if the client has gone.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		panic(http.ErrAbortHandler) // the client broke off: nothing arrived
	}
	x := s.arrive(r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header, data)
	if d := x.req.Fault.Latency; d > 0 {
		time.Sleep(d)
	}
	s.handle(x)
	switch x.req.Fault.Kind {
	case Hang:
		<-r.Context().Done()
		panic(http.ErrAbortHandler)
	case ResetBefore, ResetAfter:
		resetConn(w)
		return
	case TruncateAfter:
		writeTruncated(w, x)
		return
	}
	h := w.Header()
	x.fillHeader(h)
	// Keep net/http from adding what the Header function removed.
	for _, k := range [...]string{"Date", "Content-Type"} {
		if _, ok := h[k]; !ok {
			h[k] = nil
		}
	}
	w.WriteHeader(x.status)
	if r.Method != http.MethodHead && len(x.rbody) > 0 {
		w.Write(x.rbody) // an error means the client is gone
	}
}

// resetConn takes over the connection and aborts it with a TCP reset
// (SO_LINGER 0), so the client sees "connection reset by peer". Without a
// hijackable connection (HTTP/2) it aborts the handler instead.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	// Close the TCP connection beneath any TLS one, so that no close_notify
	// makes the end look orderly.
	c := conn
	for {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
			break
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	c.Close()
}

// writeTruncated takes over the connection, writes the answer's status line
// and headers, with the full Content-Length, and half its body, then closes
// the connection. An answer without a body is cut in its headers.
func writeTruncated(w http.ResponseWriter, x *exchange) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second)) // the client may not read
	h := make(http.Header, 6)
	x.fillHeader(h)
	var head bytes.Buffer
	fmt.Fprintf(&head, "HTTP/1.1 %03d %s\r\n", x.status, http.StatusText(x.status))
	h.Write(&head)
	head.WriteString("\r\n")
	if n := len(x.rbody); n > 0 && x.status != http.StatusNoContent {
		brw.Write(head.Bytes())
		brw.Write(x.rbody[:n/2])
	} else {
		brw.Write(head.Bytes()[:head.Len()/2])
	}
	brw.Flush()
}
