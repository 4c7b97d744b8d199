// Package e2e_test runs the library against GCS emulators: fake-gcs-server
// in process, and Google's storage-testbench when DIMUTEX_TESTBENCH names
// one (see internal/backend).
package e2e_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/e2e/internal/backend"
	"github.com/dimutex/dimutex/e2e/internal/gcstest"
	"github.com/dimutex/dimutex/gcsjson"
)

// env is one test's world: a server of one backend with a bucket of the
// test's own, and a way to make Mutexes on it whose requests are recorded.
type env struct {
	t        *testing.T
	srv      *backend.Server
	raw      *gcsjson.Client  // a client for the test itself to meddle with
	endpoint string           // where the Mutexes send requests
	opts     []dimutex.Option // options every Mutex gets
}

func newEnv(t *testing.T, b *backend.Backend) *env {
	t.Helper()
	return envOn(t, b.Start(t))
}

// envOn returns an env on a server that the test already has.
func envOn(t *testing.T, srv *backend.Server) *env {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	raw, err := gcsjson.New(gcsjson.Config{Endpoint: u})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, raw: raw, endpoint: srv.URL}
}

// mutex returns a Mutex on name whose requests rec records (if not nil).
func (e *env) mutex(name string, rec *gcstest.Recorder, opts ...dimutex.Option) *dimutex.Mutex {
	e.t.Helper()
	base := append([]dimutex.Option{dimutex.WithEndpoint(e.endpoint)}, e.opts...)
	if rec != nil {
		base = append(base, dimutex.WithHTTPClient(rec.Client()))
	}
	m, err := dimutex.NewGCS(e.srv.Bucket, name, append(base, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// object reads the lock object directly; nil if it does not exist.
func (e *env) object(name string) *gcsjson.Object {
	e.t.Helper()
	obj, err := e.raw.Get(context.Background(), e.srv.Bucket, name)
	if gcsjson.IsNotFound(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return obj
}

func acquire(t *testing.T, m *dimutex.Mutex) *dimutex.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := m.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return l
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
