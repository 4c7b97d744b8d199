package prometheus

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// classify returns the class of a transport error, or "" if it is of none
// of the known classes. The classes are few and fixed, to keep label
// values few. (contrib/otel has the same function.)
func classify(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	return classifyMore(err)
}

// classifyMore is classify's slower half, apart so that the common classes
// are told without allocating.
func classifyMore(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &dnsErr):
		return "dns"
	case isHTTP2Reset(err):
		return "reset"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	}
	return ""
}

// isHTTP2Reset reports a stream reset, GOAWAY or lost connection of
// net/http's HTTP/2 transport, whose error types are not exported.
func isHTTP2Reset(err error) bool {
	s := err.Error()
	return strings.Contains(s, "stream error") || strings.Contains(s, "GOAWAY") ||
		strings.Contains(s, "http2: client connection lost") || strings.Contains(s, "http2: client connection force closed")
}
