package otel_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The package links OpenTelemetry's API only, never its SDK: the program
// chooses the SDK.
func TestAPIOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var api bool
	for _, pkg := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(pkg, "go.opentelemetry.io/otel/sdk"), pkg == "go.opentelemetry.io/otel":
			t.Errorf("the package depends on %s", pkg)
		case pkg == "go.opentelemetry.io/otel/metric":
			api = true
		}
	}
	if !api {
		t.Error("go list found no dependency on go.opentelemetry.io/otel/metric; is the check broken?")
	}
}
