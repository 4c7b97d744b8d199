// Command report turns per-round `go test -bench` outputs of package perop
// into markdown tables: the median of each metric over the rounds, and the
// dimutex/SDK ratios computed within each round (same-run comparisons only)
// and summarised by their median and range.
//
//	report round-1.txt round-2.txt ...
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// result is one benchmark line: metric unit to value.
type result map[string]float64

// round is one file: benchmark name (without the -GOMAXPROCS suffix) to its
// results in that file.
type round map[string][]result

var procs = regexp.MustCompile(`-\d+$`)

func parse(path string) (round, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := round{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := procs.ReplaceAllString(strings.TrimPrefix(fields[0], "Benchmark"), "")
		res := result{}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %w", path, sc.Text(), err)
			}
			res[fields[i+1]] = v
		}
		r[name] = append(r[name], res)
	}
	return r, sc.Err()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// value returns the median of unit over the results of name in one round.
func (r round) value(name, unit string) (float64, bool) {
	var xs []float64
	for _, res := range r[name] {
		if v, ok := res[unit]; ok {
			xs = append(xs, v)
		}
	}
	return median(xs), len(xs) > 0
}

func bench(op, server, client string) string {
	return fmt.Sprintf("%s/server=%s/client=%s", op, server, client)
}

type row struct{ op, client, label string }

var rows = []row{
	{"Cycle", "dimutex", "dimutex Acquire+Release (default refresh)"},
	{"Cycle", "dimutex-norefresh", "dimutex Acquire+Release, WithRefreshInterval(0)"},
	{"Cycle", "sdk", "SDK create+delete, default Writer (ChunkSize 16 MiB)"},
	{"Cycle", "sdk-chunk0", "SDK create+delete, Writer.ChunkSize = 0"},
	{"Cycle", "nethttp", "floor: the same 2 requests, prebuilt, plain net/http"},
	{"Read", "dimutex-get", "dimutex gcsjson Client.Get"},
	{"Read", "dimutex-inspect", "dimutex Mutex.Inspect (Get + decode the lease)"},
	{"Read", "sdk-attrs", "SDK ObjectHandle.Attrs"},
	{"Read", "nethttp", "floor: GET + discard the body, plain net/http"},
}

type ratio struct {
	op, client, base string
	ref              bool // a reference row: the floor, not judged
}

var ratios = []ratio{
	{"Cycle", "dimutex", "sdk", false},
	{"Cycle", "dimutex", "sdk-chunk0", false},
	{"Cycle", "nethttp", "sdk-chunk0", true},
	{"Read", "dimutex-get", "sdk-attrs", false},
	{"Read", "dimutex-inspect", "sdk-attrs", false},
	{"Read", "nethttp", "sdk-attrs", true},
}

type metric struct {
	unit, head string
	target     float64 // 0: none
}

var metrics = []metric{
	{"ns/op", "time", 0.7},
	{"cpu-ns/op", "client CPU¹", 0},
	{"B/op", "B/op", 0.5},
	{"allocs/op", "allocs/op", 0.5},
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: report round-1.txt [round-2.txt ...]")
		os.Exit(2)
	}
	var rounds []round
	for _, p := range os.Args[1:] {
		r, err := parse(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		rounds = append(rounds, r)
	}
	fmt.Printf("Medians over %d rounds (each round: every benchmark once, in one process).\n\n", len(rounds))
	for _, server := range []string{"child", "inproc"} {
		switch server {
		case "child":
			fmt.Println("#### Emulator in a child process: B/op, allocs/op and CPU are the client's alone")
		case "inproc":
			fmt.Println("#### Emulator in the benchmark's process: B/op, allocs/op and CPU include the server's work for each request")
		}
		fmt.Println()
		fmt.Println("| op | client | time/op | process CPU/op¹ | B/op | allocs/op | requests/op (writes) |")
		fmt.Println("|---|---|--:|--:|--:|--:|--:|")
		for _, rw := range rows {
			name := bench(rw.op, server, rw.client)
			cell := func(unit string, f func(float64) string) string {
				var xs []float64
				for _, r := range rounds {
					if v, ok := r.value(name, unit); ok {
						xs = append(xs, v)
					}
				}
				if len(xs) == 0 {
					return "–"
				}
				return f(median(xs))
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s (%s) |\n", rw.op, rw.label,
				cell("ns/op", micros), cell("cpu-ns/op", micros), cell("B/op", bytesStr), cell("allocs/op", count),
				cell("req/op", plain), cell("write/op", plain))
		}
		fmt.Println()
		fmt.Println("Ratios dimutex ÷ SDK, computed within each round; the median over rounds, then [min – max]. Targets: time ≤ 0.7, B/op and allocs/op ≤ 0.5.")
		fmt.Println()
		fmt.Println("| client | vs SDK | time | process CPU¹ | B/op | allocs/op |")
		fmt.Println("|---|---|--:|--:|--:|--:|")
		for _, ra := range ratios {
			who := ra.op + " " + ra.client
			if ra.ref {
				who = ra.op + " nethttp (the floor, for reference)"
			}
			fmt.Printf("| %s | %s |", who, ra.base)
			for _, m := range metrics {
				var xs []float64
				for _, r := range rounds {
					a, okA := r.value(bench(ra.op, server, ra.client), m.unit)
					b, okB := r.value(bench(ra.op, server, ra.base), m.unit)
					if okA && okB && b > 0 {
						xs = append(xs, a/b)
					}
				}
				if len(xs) == 0 {
					fmt.Print(" – |")
					continue
				}
				med := median(xs)
				mark := ""
				if m.target > 0 && !ra.ref {
					mark = " ✅"
					if med > m.target {
						mark = " ❌"
					}
				}
				fmt.Printf(" **%.3f**%s [%.3f – %.3f] |", med, mark, slices.Min(xs), slices.Max(xs))
			}
			fmt.Println()
		}
		fmt.Println()
	}
	fmt.Println("¹ CPU time (user + system, getrusage) of the benchmark process per op. With the emulator in a child process that is the client's own CPU cost, free of the loopback round trip and the server's time that dominate time/op.")
}

func micros(ns float64) string { return fmt.Sprintf("%.1f µs", ns/1e3) }

func bytesStr(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

func count(n float64) string { return strconv.FormatFloat(n, 'f', 0, 64) }
func plain(n float64) string { return strconv.FormatFloat(n, 'f', -1, 64) }
