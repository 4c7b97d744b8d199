package dimutex_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The library links the standard library, golang.org/x/oauth2 and what
// x/oauth2/google needs, and nothing else: above all, not the official SDK.
func TestDependencies(t *testing.T) {
	t.Parallel()
	// GOWORK=off: the root module as its users see it, whatever go.work
	// brings into the workspace.
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Module.Path}}{{end}}",
		".", "./gcsjson", "./auth", "./cmd/dimutex")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	// Stdout only: stderr may say "go: downloading ...".
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	allowed := map[string]bool{
		"github.com/dimutex/dimutex":           true,
		"golang.org/x/oauth2":                  true,
		"cloud.google.com/go/compute/metadata": true,
	}
	seen := map[string]bool{}
	for _, mod := range strings.Fields(string(out)) {
		if !allowed[mod] {
			t.Errorf("the library depends on module %s", mod)
		}
		seen[mod] = true
	}
	if !seen["golang.org/x/oauth2"] {
		t.Error("go list found no dependency on golang.org/x/oauth2; is the check broken?")
	}
}
