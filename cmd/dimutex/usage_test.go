//go:build unix

package main

import (
	"flag"
	"regexp"
	"strings"
	"testing"
)

// TestUsage checks the command line: mistakes exit 2 with a one-line
// error and the usage, before any request; help exits 0. No emulator
// listens, so a request would fail with another status.
func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args   []string
		code   int
		stdout string // a regexp, or "" for nothing
		stderr string // a regexp for the first line, or "" for nothing
	}{
		{nil, exitUsage, "", `^dimutex: missing command$`},
		{[]string{"bogus"}, exitUsage, "", `^dimutex: unknown command "bogus"; run 'dimutex help'$`},
		{[]string{"run", "b-b", "n"}, exitUsage, "", `^dimutex: run: missing -- before the command$`},
		{[]string{"run", "b-b", "n", "true"}, exitUsage, "", `^dimutex: run: missing -- before the command$`},
		{[]string{"run", "b-b", "n", "--"}, exitUsage, "", `^dimutex: run: missing the command after --$`},
		{[]string{"run", "--bogus", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: flag provided but not defined: -bogus$`},
		{[]string{"run", "b-b", "n", "-x", "--", "true"}, exitUsage, "", `^dimutex: run: flag provided but not defined: -x$`},
		{[]string{"run", "--ttl", "abc", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: invalid value "abc" for flag -ttl`},
		{[]string{"run", "--timeout", "5", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: invalid value "5" for flag -timeout`},
		{[]string{"run", "--timeout", "0s", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --timeout 0s must be positive`},
		{[]string{"run", "-n", "--timeout", "1s", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: -n and --timeout exclude each other$`},
		{[]string{"run", "--grace", "-1s", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --grace -1s must not be negative$`},
		{[]string{"run", "--ttl", "0s", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: WithTTL\(0s\): the TTL must be at least 1ms$`},
		{[]string{"run", "--owner", "a\x01b", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: WithOwner\(.*control character`},
		{[]string{"run", "Bad_Bucket!", "n", "--", "true"}, exitUsage, "", `^dimutex: run: bucket\("Bad_Bucket!"\)|invalid bucket name "Bad_Bucket!"`},
		{[]string{"run", "gs://b-b/n", "--", "true"}, exitUsage, "", `^dimutex: run: give the bucket and the object name as two arguments, not "gs://b-b/n"$`},
		{[]string{"run", "b-b", "n", "extra", "--", "true"}, exitUsage, "", `^dimutex: run: unexpected argument "extra" after BUCKET NAME$`},
		{[]string{"run", "--endpoint", "ftp://x", "b-b", "n", "--", "true"}, exitUsage, "", `unsupported scheme "ftp"`},
		{[]string{"status"}, exitUsage, "", `^dimutex: status: missing BUCKET and NAME$`},
		{[]string{"status", "b-b"}, exitUsage, "", `^dimutex: status: missing BUCKET and NAME$`},
		{[]string{"status", "--yaml", "b-b", "n"}, exitUsage, "", `^dimutex: status: flag provided but not defined: -yaml$`},
		{[]string{"status", "b-b", ""}, exitUsage, "", `invalid object name ""`},
		{[]string{"release", "b-b", "n"}, exitUsage, "", `^dimutex: release: refusing without --force`},
		{[]string{"release", "--force", "--token", "x", "b-b", "n"}, exitUsage, "", `^dimutex: release: invalid value "x" for flag -token`},
		{[]string{"release", "--force", "--token", "0", "b-b", "n"}, exitUsage, "", `^dimutex: release: --token 0 must be positive$`},
		{[]string{"help"}, exitOK, `(?s)^dimutex runs a command.*Exit status:.*75 .*125 `, ""},
		{[]string{"-h"}, exitOK, `^dimutex runs a command`, ""},
		{[]string{"--help"}, exitOK, `^dimutex runs a command`, ""},
		{[]string{"help", "run"}, exitOK, `^Usage: dimutex run \[flags\] BUCKET NAME -- COMMAND \[ARGS\.\.\.\]\n`, ""},
		{[]string{"help", "bogus"}, exitUsage, "", `^dimutex: help: unknown command "bogus"`},
		{[]string{"run", "-h"}, exitOK, `^Usage: dimutex run `, ""},
		{[]string{"run", "b-b", "n", "--help", "--", "true"}, exitOK, `^Usage: dimutex run `, ""},
		{[]string{"status", "--help"}, exitOK, `^Usage: dimutex status `, ""},
		{[]string{"release", "-h"}, exitOK, `^Usage: dimutex release `, ""},
		{[]string{"version"}, exitOK, `^dimutex \d+\.\d+\.\d+ \(go`, ""},
		{[]string{"--version"}, exitOK, `^dimutex \d+\.\d+\.\d+ \(go`, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			r := dimutexRun(t, tt.args...)
			expectCode(t, r, tt.code)
			if tt.stdout == "" && r.stdout != "" || !regexp.MustCompile(tt.stdout).MatchString(r.stdout) {
				t.Errorf("stdout %q, want %q", r.stdout, tt.stdout)
			}
			first, _, _ := strings.Cut(r.stderr, "\n")
			if tt.stderr == "" && r.stderr != "" || !regexp.MustCompile(tt.stderr).MatchString(first) {
				t.Errorf("stderr %q, want a first line matching %q", r.stderr, tt.stderr)
			}
			// A mistake on the command line gets the usage; a bad value
			// (caught by the library) gets one line that names it.
			if tt.code == exitUsage && len(tt.args) > 1 && tt.args[0] != "help" {
				usage := strings.Contains(r.stderr, "\nUsage: dimutex "+tt.args[0]+" ")
				if config := strings.Count(r.stderr, "\n") == 1; usage == config {
					t.Errorf("stderr %q: want either one line or an error and the usage", r.stderr)
				}
			}
		})
	}
}

// TestHelpNamesEveryFlag checks that each command's help documents each of
// its flags.
func TestHelpNamesEveryFlag(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		help string
		fs   *flag.FlagSet
	}{
		{runHelp, new(runArgs).flags()},
		{statusHelp, new(statusArgs).flags()},
		{releaseHelp, new(releaseArgs).flags()},
	} {
		c.fs.VisitAll(func(f *flag.Flag) {
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-"
			}
			if !regexp.MustCompile(`(  |, )` + dash + f.Name + `[ ,]`).MatchString(c.help) {
				t.Errorf("the help of %s does not document %s%s", c.fs.Name(), dash, f.Name)
			}
		})
	}
}
