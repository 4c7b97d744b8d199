package dimutex_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/dimutex/dimutex/internal/gcstest"
)

// exampleBucket is the bucket the examples use. TestMain serves it from an
// in-process emulator through STORAGE_EMULATOR_HOST, as a user's test would.
const exampleBucket = "my-bucket"

func TestMain(m *testing.M) {
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
