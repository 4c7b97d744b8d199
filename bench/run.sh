#!/usr/bin/env bash
# run.sh runs every comparison of issue 5 and prints the results as markdown
# on stdout; progress goes to stderr. It takes about 12-15 minutes on a
# 2-core machine, most of it cold builds and benchmark rounds.
#
#	bench/run.sh > results.md
#
# Knobs (environment):
#	ROUNDS=8       rounds of the per-op benchmarks (each runs every benchmark once)
#	BENCHTIME=1s   -test.benchtime of each per-op benchmark
#	HANDOFFS=30    handoffs per N in the waiter experiment
#	QUICK=1        a fast smoke run: 2 rounds, short benchmarks, fewer N
#
# Everything listens on 127.0.0.1 only. Temporary files, binaries and cold
# build caches live in one temp directory, removed on exit.
set -euo pipefail

ROUNDS=${ROUNDS:-8}
BENCHTIME=${BENCHTIME:-1s}
HANDOFFS=${HANDOFFS:-30}
WAITERS=1,2,4,8,16,32,64
if [[ ${QUICK:-0} == 1 ]]; then
	ROUNDS=2 BENCHTIME=200ms HANDOFFS=8 WAITERS=1,8,64
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dimutex-bench.XXXXXX")
emu_pid=
cleanup() {
	if [[ -n $emu_pid ]]; then kill "$emu_pid" 2>/dev/null || true; fi
	# Cold build caches may hold read-only files.
	chmod -R u+w "$tmp" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Reproducible builds: no VCS stamping (it changes binary sizes).
export GOFLAGS=-buildvcs=false
# bench/ and its footprint programs are modules of their own, outside the
# repository's go.work (which holds the library and e2e/): build each as its
# go.mod says.
export GOWORK=off
unset STORAGE_EMULATOR_HOST GOOGLE_APPLICATION_CREDENTIALS

failures=()
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fence() { printf '```\n'; cat; printf '```\n'; }
commas() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
mib() { awk -v a="$1" 'BEGIN {printf "%.2f MiB", a/1048576}'; }
started=$(date +%s)

bin=$tmp/bin
mkdir -p "$bin"

# ---------------------------------------------------------------------------
log "building the benchmark binaries (bench module, default GOCACHE)"
(
	cd "$here"
	go build -o "$bin/handoff" ./cmd/handoff
	go build -o "$bin/memory" ./cmd/memory
	go build -o "$bin/report" ./cmd/report
	go build -o "$bin/sizediff" ./cmd/sizediff
	go build -o "$bin/benchstat" golang.org/x/perf/cmd/benchstat
	go test -c -o "$bin/perop.test" ./perop
)

# ---------------------------------------------------------------------------
echo "### Machine and run"
echo
echo "| | |"
echo "|---|---|"
echo "| date (UTC) | $(date -u '+%Y-%m-%d %H:%M') |"
echo "| go | $(go version) |"
echo "| CPU | $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') |"
echo "| nproc | $(nproc) |"
echo "| memory | $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) |"
echo "| kernel | $(uname -sr) |"
# The library at this commit is what the binaries above were built from.
# (The footprint programs and TestRequestCounts build from the working tree
# when they run; the end of the report says if HEAD moved meanwhile.)
describe_tree() {
	local c dirty
	c=$(git -C "$root" rev-parse --short HEAD 2>/dev/null) || return 1
	dirty=$(git -C "$root" status --porcelain -- . ':!bench' ':!BENCHMARKS.md' 2>/dev/null | awk '{print $2}' | head -5 | tr '\n' ' ')
	if [[ -n $dirty ]]; then c="$c, plus uncommitted changes to: ${dirty% }"; fi
	echo "$c"
}
if tree_start=$(describe_tree); then
	echo "| library commit | $tree_start |"
fi
echo "| settings | ROUNDS=$ROUNDS BENCHTIME=$BENCHTIME HANDOFFS=$HANDOFFS |"
echo

# An emulator for the footprint programs' smoke runs: the perop test binary
# serves fake-gcs-server on 127.0.0.1 when this variable is set, until its
# stdin closes.
coproc EMU { DIMUTEX_BENCH_EMULATOR_CHILD=1 exec "$bin/perop.test"; }
emu_pid=$EMU_PID
read -r -t 30 emu_url <&"${EMU[0]}"
emu_host=${emu_url#http://}

# ---------------------------------------------------------------------------
echo "### 1. Footprint"
echo
echo "Each program is its own module under \`bench/footprint/\`, built with \`go build -ldflags='-s -w'\` and an empty GOCACHE (module downloads done beforehand, so the time is compilation and linking only; wall time on a shared 2-core machine is noisy, the CPU time less so). Each binary was then run once against fake-gcs-server through STORAGE_EMULATOR_HOST."
echo
echo "| program | binary size | ÷ SDK | modules linked (\`go version -m\`) | of which not dimutex | \`go list -m all\` (without the main module) | cold build, wall | cold build, CPU (user+sys) | runs |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|---|"
declare -A size
for p in sdk dimutex floor; do
	dir=$here/footprint/$p
	log "footprint: $p: go mod download"
	(cd "$dir" && go mod download)
	cache=$tmp/gocache-$p
	log "footprint: $p: cold build"
	(
		cd "$dir"
		t0=$(date +%s.%N)
		GOCACHE=$cache go build -ldflags='-s -w' -o "$bin/footprint-$p" .
		t1=$(date +%s.%N)
		# times (not in a pipeline, which would fork): its second line is
		# the user and system time of this subshell's children.
		times >"$tmp/times-$p"
		awk -v t0="$t0" -v t1="$t1" 'NR == 2 {
			split($1, u, /[ms]/); split($2, s, /[ms]/)
			printf "%.1f %.1f\n", t1 - t0, u[1] * 60 + u[2] + s[1] * 60 + s[2]
		}' "$tmp/times-$p" >"$tmp/time-$p"
	)
	read -r wall cpu <"$tmp/time-$p"
	if [[ $p != sdk ]]; then
		# The same, keeping the symbol table, for sizediff (not timed; the
		# compiled packages come from the cache just filled).
		(cd "$dir" && GOCACHE=$cache go build -o "$bin/footprint-$p-syms" .)
	fi
	chmod -R u+w "$cache" && rm -rf "$cache"
	size[$p]=$(stat -c %s "$bin/footprint-$p")
	deps=$(go version -m "$bin/footprint-$p" | awk '$1 == "dep" {print $2}')
	linked=$(grep -c . <<<"$deps" || true)
	others=$(grep -vc '^github.com/dimutex/dimutex$' <<<"$deps" || true)
	listall=$(cd "$dir" && go list -m all | tail -n +2 | wc -l)
	if out=$(STORAGE_EMULATOR_HOST=$emu_host timeout 60 "$bin/footprint-$p" "dimutex-bench" "footprint/$p" 2>&1); then
		ran="✅ ${out}"
	else
		ran="❌ ${out}"
		failures+=("footprint-$p did not run against the emulator")
	fi
	case $p in
	sdk) label="(b) SDK cloud.google.com/go/storage $(cd "$dir" && go list -m -f '{{.Version}}' cloud.google.com/go/storage): create DoesNotExist + delete GenerationMatch" ;;
	dimutex) label="(a) dimutex: NewGCS, Acquire, Release" ;;
	floor) label="floor: the same 2 requests on net/http + golang.org/x/oauth2/google, no retries" ;;
	esac
	ratio=$(awk -v a="${size[$p]}" -v b="${size[sdk]}" 'BEGIN {printf "%.3f", a/b}')
	printf '| %s | %s B (%s) | %s | %s | %s | %s | %.1f s | %.1f s | %s |\n' "$label" \
		"$(commas "${size[$p]}")" "$(mib "${size[$p]}")" \
		"$ratio" "$linked" "$others" "$listall" "$wall" "$cpu" "$ran"
	if [[ $p == dimutex ]]; then
		dimutex_list=$(cd "$dir" && go list -m all | tail -n +2)
		dimutex_deps=$deps
	fi
done
log "footprint: the dimutex CLI"
if out=$(cd "$root" && go build -ldflags='-s -w' -o "$bin/dimutex-cli" ./cmd/dimutex 2>&1); then
	s=$(stat -c %s "$bin/dimutex-cli")
	l=$(go version -m "$bin/dimutex-cli" | awk '$1 == "dep"' | wc -l)
	printf '| the `dimutex` CLI: `go build -ldflags='"'"'-s -w'"'"' ./cmd/dimutex` in the root module (dimutex is the main module, so not a dep) | %s B (%s) | %s | %s | %s | | not timed (warm cache) | | |\n' \
		"$(commas "$s")" "$(mib "$s")" "$(awk -v a="$s" -v b="${size[sdk]}" 'BEGIN {printf "%.3f", a/b}')" "$l" "$l"
else
	echo "| the \`dimutex\` CLI | did not build at run time (left for the lead): \`$(head -1 <<<"$out" | tr '|' '/')\` | | | | | | | |"
fi
echo
echo "Modules linked into (a): $(tr '\n' ' ' <<<"$dimutex_deps" | sed 's/ $//;s/ /, /g'). The floor and (a) use the same versions of golang.org/x/oauth2 and cloud.google.com/go/compute/metadata (pinned in their own go.mod files; the library itself requires compute/metadata v0.3.0, the version x/oauth2 asks for); the SDK program uses what storage v1.70.0 requires."
echo "\`go list -m all\` for (a) lists $(wc -l <<<"$dimutex_list") modules: the library's go.mod requires only golang.org/x/oauth2 and cloud.google.com/go/compute/metadata (its tests that need an emulator live in the separate module e2e/), and (a)'s own go.mod pins compute/metadata v0.9.0, which brings golang.org/x/sys."
echo
echo "<details><summary>(a) against the floor, by package (\`go tool nm -size\` of the same programs built without \`-s -w\`; base = floor, new = (a))</summary>"
echo
"$bin/sizediff" "$bin/footprint-floor-syms" "$bin/footprint-dimutex-syms"
echo
echo "</details>"
echo
echo "Targets for (a): ≤ 7.2 MB, ≤ 0.21 × (b), ≤ 2 non-standard modules linked besides dimutex itself. (a) is $(commas "${size[dimutex]}") B = $(awk -v a="${size[dimutex]}" 'BEGIN {printf "%.3f MB (10^6 B) = %.3f MiB", a/1e6, a/1048576}'); $(awk -v a="${size[dimutex]}" -v f="${size[floor]}" 'BEGIN {printf "%+.1f KiB", (a-f)/1024}') against the floor; 0.21 × (b) is $(commas $((size[sdk] * 21 / 100))) B."
echo

# ---------------------------------------------------------------------------
echo "### 2. Per-operation cost"
echo
echo "\`go test -bench\` in \`bench/perop\`, every benchmark once per round, $ROUNDS rounds, \`-benchtime=$BENCHTIME -benchmem\`. Both clients talk over real TCP to the same fake-gcs-server listener on 127.0.0.1, each with its own \`http.Client\` over a clone of \`http.DefaultTransport\` (keep-alive on) wrapped in a request counter, without credentials (dimutex: \`WithEndpoint\`; SDK: \`option.WithEndpoint(url+\"/storage/v1/\")\`, \`option.WithoutAuthentication()\`, \`option.WithHTTPClient\`)."
echo
for r in $(seq 1 "$ROUNDS"); do
	log "per-op: round $r/$ROUNDS"
	timeout 900 "$bin/perop.test" -test.run '^$' -test.bench . -test.benchmem \
		-test.benchtime "$BENCHTIME" -test.count 1 >"$tmp/perop-$r.txt"
done
"$bin/report" "$tmp"/perop-*.txt
cat "$tmp"/perop-*.txt >"$tmp/perop-all.txt"
echo
echo "<details><summary>benchstat (the same data)</summary>"
echo
units='.unit:(sec/op OR cpu-sec/op OR B/op OR allocs/op)'
{
	"$bin/benchstat" -col '/client@(sdk dimutex)' -filter ".name:Cycle $units" "$tmp/perop-all.txt"
	echo
	"$bin/benchstat" -col '/client@(sdk-chunk0 dimutex)' -filter ".name:Cycle $units" "$tmp/perop-all.txt"
	echo
	"$bin/benchstat" -col '/client@(sdk-attrs dimutex-get dimutex-inspect)' -filter ".name:Read $units" "$tmp/perop-all.txt"
} | fence
echo
echo "</details>"
echo

log "per-op: profiles"
cd "$tmp"
timeout 300 "$bin/perop.test" -test.run '^$' -test.bench 'Cycle/server=child/client=dimutex$' \
	-test.benchtime 3000x -test.memprofile cycle.mem -test.memprofilerate 1 >/dev/null
timeout 300 "$bin/perop.test" -test.run '^$' -test.bench 'Cycle/server=child/client=dimutex$' \
	-test.benchtime 3s -test.cpuprofile cycle.cpu >/dev/null
timeout 300 "$bin/perop.test" -test.run '^$' -test.bench 'Read/server=child/client=dimutex-get$' \
	-test.benchtime 5000x -test.memprofile read.mem -test.memprofilerate 1 >/dev/null
cd "$here"
echo "<details><summary>Profiles of dimutex's side (emulator in a child process)</summary>"
echo
pp() { go tool pprof "$@" 2>/dev/null | sed -n '/flat%/,$p'; }
echo "Acquire+Release, allocations by count (\`go tool pprof -sample_index=alloc_objects -top\`), 3,000 cycles plus warm-up:"
echo
pp -sample_index=alloc_objects -top -nodecount=25 "$bin/perop.test" "$tmp/cycle.mem" | fence
echo
echo "The same, cumulative, restricted to dimutex's own functions:"
echo
pp -sample_index=alloc_objects -top -cum -focus='dimutex' -show='dimutex' -nodecount=20 "$bin/perop.test" "$tmp/cycle.mem" | fence
echo
echo "Acquire+Release, bytes allocated:"
echo
pp -sample_index=alloc_space -top -nodecount=15 "$bin/perop.test" "$tmp/cycle.mem" | fence
echo
echo "Acquire+Release, CPU (client process only):"
echo
pp -top -nodecount=25 "$bin/perop.test" "$tmp/cycle.cpu" | fence
echo
echo "gcsjson Client.Get, bytes allocated, 5,000 reads plus warm-up:"
echo
pp -sample_index=alloc_space -top -nodecount=15 "$bin/perop.test" "$tmp/read.mem" | fence
echo
echo "</details>"
echo

# ---------------------------------------------------------------------------
echo "### 3. Requests per operation"
echo
log "request counts: e2e's TestRequestCounts"
if out=$(cd "$root/e2e" && timeout 300 go test -count=1 -run '^TestRequestCounts$' -v . 2>&1); then
	echo "The library's own \`TestRequestCounts\` (\`go test -run '^TestRequestCounts\$' -v .\` in e2e/) passed at run time: uncontended Acquire = 1 POST, Refresh = 1 POST, TryAcquire on a held lock = 1 POST + 1 GET, Inspect = 1 GET, Release = 1 DELETE, uncontended TryAcquire = 1 POST."
	echo
	grep -E '^(=== RUN|--- |ok|PASS)' <<<"$out" | fence
else
	echo "The library's \`TestRequestCounts\` did not pass at run time (the root is being edited concurrently); its output:"
	echo
	tail -20 <<<"$out" | fence
	failures+=("TestRequestCounts did not pass")
fi
echo
echo "Counted by a RoundTripper in the per-op benchmarks (\`req/op\`, \`write/op\`, the same in every round): see the requests/op column above — one cycle is 2 requests, both writes, for dimutex and for the SDK; one read is 1 GET for each."
echo

# ---------------------------------------------------------------------------
echo "### 4. Handoff and waiters"
echo
echo "#### 4a. Library defaults"
echo
log "handoff: library defaults"
if ! timeout 900 "$bin/handoff" -n "$WAITERS" -handoffs "$HANDOFFS"; then
	failures+=("handoff (defaults) failed or saw a write after a live read")
fi
echo
echo "#### 4b. Tighter backoff: WithBackoff(10ms, 1s)"
echo
log "handoff: tighter backoff"
if ! timeout 900 "$bin/handoff" -n "$WAITERS" -handoffs "$HANDOFFS" -backoff 10ms,1s; then
	failures+=("handoff (10ms..1s) failed or saw a write after a live read")
fi
echo

# ---------------------------------------------------------------------------
echo "### 5. Memory"
echo
log "memory"
timeout 600 "$bin/memory"
echo
log "memory: heap profile of 1,000 idle leases"
timeout 300 "$bin/memory" -memprofile "$tmp/leases.heap"
echo "<details><summary>What 1,000 idle leases hold (\`go tool pprof -sample_index=inuse_space -top\`, every allocation sampled; includes the 1,000 Mutexes)</summary>"
echo
pp -sample_index=inuse_space -top -nodecount=20 "$bin/memory" "$tmp/leases.heap" | fence
echo
echo "</details>"
echo

# ---------------------------------------------------------------------------
exec {EMU[1]}>&-
wait "$emu_pid" 2>/dev/null || true
emu_pid=
elapsed=$(($(date +%s) - started))
echo "---"
echo
if [[ -n ${tree_start:-} ]] && tree_end=$(describe_tree) && [[ $tree_end != "$tree_start" ]]; then
	echo "**The library changed during the run**: it was at $tree_start when the benchmark binaries were built, and at $tree_end at the end. The footprint programs and TestRequestCounts were built from the tree as it was when they ran."
	echo
fi
echo "Generated by \`bench/run.sh\` in $((elapsed / 60)) min $((elapsed % 60)) s."
if ((${#failures[@]})); then
	printf 'FAILED: %s\n' "${failures[@]}" >&2
	printf '\n**Run problems:** %s.\n' "$(IFS=';'; echo "${failures[*]}")"
	exit 1
fi
log "done in ${elapsed}s"
