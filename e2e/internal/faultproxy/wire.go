package faultproxy

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// relay writes up to w as the answer to req. Date and the other headers of
// up are kept; Content-Length is set to the body's length.
func relay(w http.ResponseWriter, req *http.Request, up *response) {
	h := w.Header()
	for k, v := range up.header {
		h[k] = v
	}
	switch {
	case up.status == http.StatusNoContent || up.status == http.StatusNotModified:
		h.Del("Content-Length")
	case req.Method == http.MethodHead:
		// Keep the target's Content-Length: it tells the size a GET would get.
	default:
		h.Set("Content-Length", strconv.Itoa(len(up.body)))
	}
	w.WriteHeader(up.status)
	if req.Method != http.MethodHead {
		w.Write(up.body) // an error means the client is gone; nothing to do
	}
}

// writeTruncated takes over the connection, writes up's status line and
// headers with the true Content-Length but only keep bytes of the body
// (half if keep is 0, and always fewer than all), and closes the
// connection.
func writeTruncated(w http.ResponseWriter, up *response, keep int) {
	n := len(up.body)
	if keep == 0 {
		keep = n / 2
	}
	keep = max(min(keep, n-1), 0)

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream instead
	}
	defer conn.Close()
	// The client may not read; do not let it hold the handler.
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))

	h := up.header.Clone()
	h.Del("Transfer-Encoding")
	h.Set("Content-Length", strconv.Itoa(n))
	if h.Get("Date") == "" {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	fmt.Fprintf(brw, "HTTP/1.1 %03d %s\r\n", up.status, http.StatusText(up.status))
	h.Write(brw)
	brw.WriteString("\r\n")
	brw.Write(up.body[:keep])
	brw.Flush()
}

// resetConn takes over the connection and aborts it with a TCP RST
// (SO_LINGER 0), so the client sees "connection reset by peer" rather
// than a clean end of stream.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream instead
	}
	// Unwrap a *tls.Conn and close the TCP connection beneath it directly,
	// so that no close_notify alert makes the end look orderly.
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
