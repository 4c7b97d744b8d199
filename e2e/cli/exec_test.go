//go:build unix

package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dimutex/dimutex/e2e/internal/backend"
)

// TestRunExec checks how dimutex starts files that the kernel does not run
// by itself: a script without a #! line runs with /bin/sh, as env(1),
// flock(1) and timeout(1) run it; a missing interpreter is named as such.
func TestRunExec(t *testing.T) {
	t.Parallel()
	srv := backend.Memory.Start(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name   string
		path   string
		code   int
		stdout string
		stderr string // a substring of the one line, if any
	}{
		{"no shebang", write("plain", "echo \"ran $0 with $1\"; exit 5\n"), 5, "ran " + filepath.Join(dir, "plain") + " with arg\n", ""},
		{"shebang", write("bang", "#!/bin/sh\necho \"ran with $1\"\n"), 0, "ran with arg\n", ""},
		{"missing interpreter", write("nointerp", "#!/nonexistent/interp -x\necho hi\n"), exitNotFound, "",
			`cannot execute "` + filepath.Join(dir, "nointerp") + `": its interpreter /nonexistent/interp, named on its first line`},
		{"carriage return", write("dos", "#!/bin/sh\r\necho hi\r\n"), exitNotFound, "", `ends with a carriage return`},
		{"binary", write("binary", "\x00\x01\x02\x03 not a program\n"), exitNotExecutable, "", `exec format error`},
		{"foreign ELF", write("elf", "\x7fELF\x02\x01\x01\x00garbage\n"), exitNotExecutable, "", `exec format error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lock := "exec-" + strings.ReplaceAll(tt.name, " ", "-")
			r := dimutexRun(t, srv, "run", srv.Bucket, lock, "--", tt.path, "arg")
			expectCode(t, r, tt.code)
			if r.stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", r.stdout, tt.stdout)
			}
			if tt.stderr == "" && r.stderr != "" {
				t.Errorf("stderr %q, want none", r.stderr)
			}
			if tt.stderr != "" {
				if !strings.Contains(r.stderr, tt.stderr) || strings.Contains(r.stderr, "$PATH") {
					t.Errorf("stderr %q, want %q and no mention of $PATH", r.stderr, tt.stderr)
				}
				checkOneLine(t, r.stderr)
			}
			if g := generation(srv, lock); g != 0 {
				t.Errorf("the lock is still there (generation %d)", g)
			}
		})
	}
}
