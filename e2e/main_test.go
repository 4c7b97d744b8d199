package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/dimutex/dimutex/e2e/internal/backend"
	"github.com/dimutex/dimutex/e2e/internal/gcstest"
)

// exampleBucket is the bucket the examples use. TestMain serves it through
// STORAGE_EMULATOR_HOST, as a user's test would: from an in-process
// emulator, or, in the process that TestExamples starts for another
// backend, from that backend.
var exampleBucket = "my-bucket"

// Set by TestExamples for the test binary it runs: the emulator and the
// bucket that the examples use there.
const (
	examplesHostEnv   = "DIMUTEX_E2E_EXAMPLES_HOST"
	examplesBucketEnv = "DIMUTEX_E2E_EXAMPLES_BUCKET"
)

func TestMain(m *testing.M) {
	if host := os.Getenv(examplesHostEnv); host != "" {
		exampleBucket = os.Getenv(examplesBucketEnv)
		os.Setenv("STORAGE_EMULATOR_HOST", host)
		os.Exit(m.Run())
	}
	srv, err := gcstest.New(exampleBucket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("STORAGE_EMULATOR_HOST", srv.HostPort())
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}

// TestExamples runs the examples on every backend. On fake-gcs-server they
// run in this process, as examples do; on any other backend, in a new run of
// this test binary whose TestMain points STORAGE_EMULATOR_HOST at it.
func TestExamples(t *testing.T) {
	t.Parallel()
	backend.Each(t, func(t *testing.T, b *backend.Backend) {
		if b == backend.Fake {
			t.Skip("the examples run on fake-gcs-server in this process, as examples")
		}
		list, err := exec.Command(os.Args[0], "-test.list=^Example").Output()
		if err != nil {
			t.Fatal(err)
		}
		want := len(strings.Fields(string(list)))
		if !strings.Contains(string(list), "Example") {
			// Since e2dd7e6 the examples live in the root module only
			// (examples_test.go), and this package has none to run.
			t.Skip("no examples in this package")
		}
		s := b.Start(t)
		cmd := exec.Command(os.Args[0], "-test.run=^Example", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), examplesHostEnv+"="+s.HostPort(), examplesBucketEnv+"="+s.Bucket)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the examples failed on %s: %v\n%s", b.Name, err, out)
		}
		passed := regexp.MustCompile(`(?m)^--- PASS: Example`).FindAll(out, -1)
		if len(passed) != want || want == 0 {
			t.Errorf("%d examples passed on %s, want %d:\n%s", len(passed), b.Name, want, out)
		}
		t.Logf("%d examples passed on %s", len(passed), b.Name)
		if strings.Contains(string(out), "--- FAIL") {
			t.Errorf("output:\n%s", out)
		}
	})
}
