#!/usr/bin/env bash
# consumer-check.sh: what a user of the library gets in their module graph.
#
#	scripts/consumer-check.sh               # this checkout; fails past the limits
#	scripts/consumer-check.sh --before REV  # the same figures for commit REV
#	                                        # (default 1aaa594); never fails
#
# It builds a temporary module whose main.go imports only
# github.com/dimutex/dimutex (and calls NewGCS, Acquire and Release, so that
# nothing is pruned), with a replace directive to the library, and runs
# `go mod tidy` and `go build` with GOWORK=off and an empty, private module
# cache. `go mod tidy` loads the tests of the packages it imports, so a
# test-only dependency of the library reaches every user: this catches it.
#
# It prints three figures: the modules in `go list -m all` (the consumer's
# own module included), the lines of its go.sum, and the size of the module
# cache after unpacking. It fails if the graph holds the official SDK, gRPC,
# google.golang.org/api, OpenTelemetry or fake-gcs-server, or if a figure
# exceeds its limit:
#
#	4 modules (consumer, dimutex, golang.org/x/oauth2, cloud.google.com/go/compute/metadata)
#	6 go.sum lines
#	3 MB of module cache
#
# (Were compute/metadata ever raised above v0.3.0, the version x/oauth2
# v0.38.0 requires, it would bring golang.org/x/sys and go-cmp: the limits
# would become 6 modules and 25 MB, for a named defect only. See README.md,
# "Dependencies".)
#
# The network it needs is the Go module proxy (and checksum database), as
# for any `go mod tidy`.
set -euo pipefail

max_modules=4
max_sum_lines=6
max_cache_mb=3
forbidden='^(cloud\.google\.com/go/storage|google\.golang\.org/grpc|google\.golang\.org/api|go\.opentelemetry\.io/|github\.com/fsouza/)'

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
before=
if [[ ${1:-} == --before ]]; then
	before=${2:-1aaa594}
elif [[ $# -gt 0 ]]; then
	echo "usage: $0 [--before REV]" >&2
	exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dimutex-consumer.XXXXXX")
cleanup() {
	chmod -R u+w "$tmp" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

lib=$root
label="this checkout ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
if [[ -n $(git -C "$root" status --porcelain 2>/dev/null) ]]; then
	label+=", with uncommitted changes"
fi
label+=")"
if [[ -n $before ]]; then
	lib=$tmp/lib
	mkdir "$lib"
	git -C "$root" archive "$before" | tar -x -C "$lib"
	label="commit $(git -C "$root" rev-parse --short "$before")"
fi

export GOWORK=off
export GOMODCACHE=$tmp/modcache
# -modcacherw: a module cache that can be deleted; keep what GOFLAGS held.
export GOFLAGS="$(go env GOFLAGS) -modcacherw"
unset STORAGE_EMULATOR_HOST

app=$tmp/consumer
mkdir "$app"
cat >"$app/go.mod" <<EOF
module example.com/consumer

go 1.26.0

require github.com/dimutex/dimutex v0.0.0

replace github.com/dimutex/dimutex => $lib
EOF
cat >"$app/main.go" <<'EOF'
// A program that uses the library and nothing else.
package main

import (
	"context"
	"log"

	"github.com/dimutex/dimutex"
)

func main() {
	ctx := context.Background()
	m, err := dimutex.NewGCS("my-bucket", "my-lock")
	if err != nil {
		log.Fatal(err)
	}
	lease, err := m.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)
}
EOF

cd "$app"
echo "consumer check: a module that imports only github.com/dimutex/dimutex, at $label" >&2
go mod tidy
go build -o /dev/null .
graph=$(go list -m all)
modules=$(wc -l <<<"$graph")
sum_lines=$(wc -l <go.sum)
cache_kb=$(du -sk "$GOMODCACHE" | cut -f1)
cache_mb=$(awk -v k="$cache_kb" 'BEGIN {printf "%.1f", k / 1024}')

echo "go list -m all:  $modules modules"
echo "go.sum:          $sum_lines lines"
echo "module cache:    $cache_mb MB"
if [[ -n $before ]]; then
	exit 0
fi

fail=0
if bad=$(grep -E "$forbidden" <<<"$graph"); then
	echo "FAIL: the library's users get modules that only its tests should need:" >&2
	sed 's/^/  /' <<<"$bad" >&2
	fail=1
fi
if ((modules > max_modules)); then
	echo "FAIL: $modules modules in the graph, limit $max_modules:" >&2
	sed 's/^/  /' <<<"$graph" >&2
	fail=1
fi
if ((sum_lines > max_sum_lines)); then
	echo "FAIL: $sum_lines go.sum lines, limit $max_sum_lines" >&2
	fail=1
fi
if awk -v mb="$cache_mb" -v max="$max_cache_mb" 'BEGIN {exit !(mb > max)}'; then
	echo "FAIL: $cache_mb MB of module cache, limit $max_cache_mb MB" >&2
	fail=1
fi
if ((fail)); then
	exit 1
fi
echo "consumer check: ok (limits: $max_modules modules, $max_sum_lines go.sum lines, $max_cache_mb MB)" >&2
