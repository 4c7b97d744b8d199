// Command sizediff attributes the difference in size between two Go
// binaries (built without -s, so that they keep their symbol tables) to
// packages, from `go tool nm -size`. It prints a markdown table of the
// packages whose code and data grew or shrank the most. Uninitialised data
// (BSS), which takes no room in the file, is left out.
//
//	sizediff BASE NEW
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sizediff BASE NEW")
		os.Exit(2)
	}
	base, err := sizes(os.Args[1])
	if err != nil {
		fatal(err)
	}
	next, err := sizes(os.Args[2])
	if err != nil {
		fatal(err)
	}
	type row struct {
		pkg        string
		base, next int64
	}
	var rows []row
	var totalBase, totalNext int64
	for p, n := range next {
		rows = append(rows, row{p, base[p], n})
		totalNext += n
	}
	for p, b := range base {
		totalBase += b
		if _, ok := next[p]; !ok {
			rows = append(rows, row{p, b, 0})
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(b.next-b.base, a.next-a.base), strings.Compare(a.pkg, b.pkg))
	})
	fmt.Println("| package | base | new | difference |")
	fmt.Println("|---|--:|--:|--:|")
	for _, r := range rows {
		if d := r.next - r.base; d >= 1024 || d <= -1024 {
			fmt.Printf("| %s | %d | %d | %+d |\n", r.pkg, r.base, r.next, d)
		}
	}
	fmt.Printf("| **all symbols** | %d | %d | %+d |\n", totalBase, totalNext, totalNext-totalBase)
	fmt.Println()
	fmt.Println("Packages whose symbols changed by less than 1 KiB are not listed. Symbol sizes leave out the function tables (pclntab) and headers that grow with the code, so the difference in file size is larger.")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "sizediff:", err)
	os.Exit(1)
}

// sizes sums the sizes of a binary's text and data symbols by package.
func sizes(path string) (map[string]int64, error) {
	out, err := exec.Command("go", "tool", "nm", "-size", path).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool nm %s: %w", path, err)
	}
	m := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || f[2] == "B" || f[2] == "b" || f[2] == "U" {
			continue
		}
		m[pkgOf(strings.Join(f[3:], " "))] += size
	}
	return m, sc.Err()
}

// pkgOf returns the import path of the package that a symbol belongs to,
// or a label for the linker's own symbols.
func pkgOf(sym string) string {
	switch {
	case strings.HasPrefix(sym, "go:func."):
		return "(function metadata, go:func.*)"
	case strings.HasPrefix(sym, "go:string."):
		return "(string data, go:string.*)"
	case strings.HasPrefix(sym, "runtime.") && !strings.Contains(sym, "/"):
		return "runtime"
	}
	for _, p := range []string{"type:.eq.", "type:.hash.", "type:", "go:itab.", "go:"} {
		if strings.HasPrefix(sym, p) {
			sym = strings.TrimPrefix(sym, p)
			break
		}
	}
	sym = strings.TrimLeft(sym, "*[]()0123456789")
	if strings.HasPrefix(sym, "map[") || strings.HasPrefix(sym, "func(") || strings.HasPrefix(sym, "struct") ||
		strings.HasPrefix(sym, "interface") || strings.HasPrefix(sym, "chan") {
		return "(unnamed types)"
	}
	if i := strings.IndexByte(sym, '['); i >= 0 {
		sym = sym[:i] // type arguments may contain paths of their own
	}
	slash := strings.LastIndex(sym, "/")
	if i := strings.IndexAny(sym[slash+1:], ".,[ "); i >= 0 {
		sym = sym[:slash+1+i]
	}
	if sym == "" {
		return "(other)"
	}
	return sym
}
