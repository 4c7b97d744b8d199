// Package clients builds the two clients under comparison the same way:
// each gets its own http.Client over its own clone of http.DefaultTransport
// (keep-alive on), wrapped in a Counter, with no credentials.
package clients

import (
	"context"
	"net/http"
	"sync/atomic"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/dimutex/dimutex"
)

// Counter is an http.RoundTripper that counts the requests it passes on,
// by kind. It costs two atomic adds per request and allocates nothing.
type Counter struct {
	Next http.RoundTripper

	Reads, Writes atomic.Int64
}

// RoundTrip counts req and passes it on.
func (c *Counter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet || req.Method == http.MethodHead {
		c.Reads.Add(1)
	} else {
		c.Writes.Add(1)
	}
	return c.Next.RoundTrip(req)
}

// Reset zeroes the counts.
func (c *Counter) Reset() { c.Reads.Store(0); c.Writes.Store(0) }

// NewHTTP returns an http.Client over a fresh clone of
// http.DefaultTransport, counted by the returned Counter.
func NewHTTP() (*http.Client, *Counter) {
	c := &Counter{Next: http.DefaultTransport.(*http.Transport).Clone()}
	return &http.Client{Transport: c}, c
}

// Dimutex returns a Mutex on name at the emulator url, sending through hc.
func Dimutex(url, bucket, name string, hc *http.Client, opts ...dimutex.Option) (*dimutex.Mutex, error) {
	base := []dimutex.Option{dimutex.WithEndpoint(url), dimutex.WithHTTPClient(hc)}
	return dimutex.NewGCS(bucket, name, append(base, opts...)...)
}

// SDK returns an official SDK client for the emulator at url, sending
// through hc, unauthenticated, as STORAGE_EMULATOR_HOST would configure it.
func SDK(ctx context.Context, url string, hc *http.Client) (*storage.Client, error) {
	return storage.NewClient(ctx,
		option.WithEndpoint(url+"/storage/v1/"),
		option.WithoutAuthentication(),
		option.WithHTTPClient(hc),
	)
}
