// Package backend names the GCS JSON API servers that the e2e tests run
// against, and gives each test a server and a fresh bucket on one.
//
// Each test that talks to a server runs once per backend, as a subtest named
// after it:
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		backend.Each(t, func(t *testing.T, b *backend.Backend) {
//			s := b.Start(t) // a server, and an empty bucket s.Bucket on it
//			...
//		})
//	}
//
// A backend that cannot run here (the testbench without DIMUTEX_TESTBENCH)
// skips its subtest with the reason.
//
// To add a backend, declare a *Backend with its Open function and add it to
// All, as Memory is.
package backend

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dimutex/dimutex/dimutextest"
	"github.com/dimutex/dimutex/e2e/internal/gcstest"
	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// Backend is one implementation of the GCS JSON API.
type Backend struct {
	// Name names the backend's subtests: "fake", "testbench".
	Name string
	// DeletePreconditions reports whether DELETE honours ifGenerationMatch
	// as GCS does (412, object kept). Tests that need it put a faultproxy
	// with WithDeletePreconditions in front of a backend without it.
	DeletePreconditions bool
	// GCSErrors reports whether error bodies have GCS's shape,
	// {"error":{"code":N,"message":"...","errors":[{"reason":"..."}]}}, so
	// that an error's Reason can be checked. Without it, only the status is.
	GCSErrors bool
	// Unavailable, if set, returns why the backend cannot run here, or "".
	Unavailable func() string
	// Open returns the JSON API root (http://127.0.0.1:PORT) of a server
	// for tb, and a function that creates a bucket on it. A backend that
	// starts a server for each test stops it when tb ends.
	Open func(tb testing.TB) (url string, createBucket func(name string) error)
}

// All is every backend, in the order that Each runs them.
var All = []*Backend{Memory, Fake, Testbench}

// Memory is the project's own in-memory GCS, package dimutextest, behind an
// httptest server: GCS's semantics (DELETE preconditions enforced, Date in
// whole seconds, GCS-shaped errors), a new server for each test.
var Memory = &Backend{
	Name:                "memory",
	DeletePreconditions: true,
	GCSErrors:           true,
	Open: func(tb testing.TB) (string, func(string) error) {
		srv := dimutextest.NewServer()
		hs := httptest.NewServer(srv)
		tb.Cleanup(hs.Close)
		return hs.URL, srv.CreateBucket
	},
}

// Fake is fake-gcs-server v1.56.1 in process: a new server for each test.
// It ignores DELETE preconditions (see gcs-facts.md for its other
// differences from GCS).
var Fake = &Backend{
	Name:      "fake",
	GCSErrors: true,
	Open: func(tb testing.TB) (string, func(string) error) {
		srv := gcstest.Start(tb)
		return srv.URL(), func(name string) error {
			srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
			return nil
		}
	},
}

// TestbenchEnv names the variable that holds the address (127.0.0.1:PORT)
// of a running storage-testbench.
const TestbenchEnv = "DIMUTEX_TESTBENCH"

// Testbench is Google's storage-testbench, started outside the tests (see
// README.md) at the address in $DIMUTEX_TESTBENCH. All tests share it, and
// it keeps its state for its whole life, so each test gets buckets with
// names of its own. It enforces DELETE preconditions. Its error bodies are
// not GCS-shaped, its generations are its start time in milliseconds plus
// one per version, it answers a DELETE with 200 and an empty body, and it
// adds x_emulator_* and x_testbench_* keys to objects' metadata.
var Testbench = &Backend{
	Name:                "testbench",
	DeletePreconditions: true,
	Unavailable: func() string {
		if os.Getenv(TestbenchEnv) == "" {
			return TestbenchEnv + " is not set: start Google's storage-testbench and set " +
				TestbenchEnv + "=127.0.0.1:PORT to run the tests on it too (see README.md)"
		}
		return ""
	},
	Open: func(tb testing.TB) (string, func(string) error) {
		root := "http://" + os.Getenv(TestbenchEnv)
		return root, func(name string) error { return CreateBucket(root, name) }
	},
}

// Server is one test's share of a backend: a server and a bucket on it that
// no other test uses.
type Server struct {
	*Backend
	// URL is the JSON API root, as WithEndpoint takes it.
	URL string
	// Bucket is an empty bucket of this test's own.
	Bucket string

	createBucket func(string) error
}

// Start gives tb a server of b and an empty bucket of its own on it. It
// skips tb, with the reason, if b cannot run here.
func (b *Backend) Start(tb testing.TB) *Server {
	tb.Helper()
	if b.Unavailable != nil {
		if why := b.Unavailable(); why != "" {
			tb.Skip(why)
		}
	}
	u, create := b.Open(tb)
	s := &Server{Backend: b, URL: u, createBucket: create}
	s.Bucket = s.NewBucket(tb)
	return s
}

// HostPort returns the server's address as STORAGE_EMULATOR_HOST takes it:
// "127.0.0.1:PORT".
func (s *Server) HostPort() string {
	u, _ := url.Parse(s.URL)
	return u.Host
}

// NewBucket creates another empty bucket on s, of tb's own, and returns its
// name.
func (s *Server) NewBucket(tb testing.TB) string {
	tb.Helper()
	name := BucketName(tb)
	if err := s.createBucket(name); err != nil {
		tb.Fatalf("%s: creating bucket %s: %v", s.Name, name, err)
	}
	return name
}

// Each runs f once for each backend, each as a parallel subtest of t named
// after the backend. The subtest of a backend that cannot run here is
// skipped with the reason.
func Each(t *testing.T, f func(t *testing.T, b *Backend)) {
	t.Helper()
	each(t, true, f)
}

// EachSerial is Each with subtests that run one after the other, for tests
// that set the environment or count the process's goroutines.
func EachSerial(t *testing.T, f func(t *testing.T, b *Backend)) {
	t.Helper()
	each(t, false, f)
}

func each(t *testing.T, parallel bool, f func(t *testing.T, b *Backend)) {
	for _, b := range All {
		t.Run(b.Name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			if b.Unavailable != nil {
				if why := b.Unavailable(); why != "" {
					t.Skip(why)
				}
			}
			f(t, b)
		})
	}
}

// BucketName returns a bucket name that no other test or run uses: "dmx-",
// then a form of tb's name, then random hex; 3 to 63 characters of
// lowercase letters, digits and dashes, as GCS requires.
func BucketName(tb testing.TB) string {
	var buf [6]byte
	rand.Read(buf[:])
	suffix := "-" + hex.EncodeToString(buf[:])
	var b strings.Builder
	dash := true // no leading or doubled dashes
	for _, r := range strings.ToLower(tb.Name()) {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	// GCS refuses names that contain "google" or start with "goog".
	mid := strings.ReplaceAll(b.String(), "goog", "goo-g")
	mid = strings.Trim(mid[:min(len(mid), 63-len("dmx-")-len(suffix))], "-")
	return "dmx-" + mid + suffix
}

// CreateBucket creates bucket name through the JSON API at root.
func CreateBucket(root, name string) error {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post(root+"/storage/v1/b?project=test", "application/json",
		strings.NewReader(fmt.Sprintf(`{"name":%q}`, name)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /storage/v1/b: %s: %s", resp.Status, body)
	}
	return nil
}
