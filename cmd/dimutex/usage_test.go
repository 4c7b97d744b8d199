//go:build unix

package main

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestUsage checks the command line: mistakes exit 2 with a one-line
// error and the usage, before any request; help exits 0. No emulator
// listens, so a request would fail with another status.
func TestUsage(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("o", 600)
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
		// Flags are named as they were typed: the flag package says -ttl
		// for --ttl.
		{[]string{"run", "--bogus", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: unknown flag --bogus$`},
		{[]string{"run", "b-b", "n", "-x", "--", "true"}, exitUsage, "", `^dimutex: run: unknown flag -x$`},
		{[]string{"run", "--ttl", "abc", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --ttl abc: not a duration; write a number and a unit, such as 90s, 5m or 1h30m$`},
		{[]string{"run", "-ttl", "abc", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: -ttl abc: not a duration`},
		{[]string{"run", "--ttl=1 h", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --ttl "1 h": not a duration`},
		{[]string{"run", "--ttl", "5", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --ttl 5: missing a unit; did you mean 5s\?$`},
		{[]string{"run", "--timeout", "5", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --timeout 5: missing a unit; did you mean 5s\?$`},
		{[]string{"run", "--grace=2.5", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --grace 2.5: missing a unit; did you mean 2.5s\?$`},
		{[]string{"run", "--ttl"}, exitUsage, "", `^dimutex: run: --ttl needs a value$`},
		{[]string{"run", "--no-wait=maybe", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --no-wait takes no value`},
		{[]string{"run", "--timeout", "0s", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --timeout 0s must be positive`},
		{[]string{"run", "--grace", "-1s", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --grace -1s must not be negative$`},
		// Values the library refuses, in the command line's terms.
		{[]string{"run", "--ttl", "0s", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --ttl 0s: the TTL must be at least 1s$`},
		{[]string{"run", "--ttl", "1ms", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --ttl 1ms: the TTL must be at least 1s$`},
		{[]string{"run", "--ttl", "25h", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --ttl 25h0m0s: the TTL must be at most 24h0m0s$`},
		{[]string{"run", "--owner", "a\x01b", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --owner "a\\x01b": it must not contain control character U\+0001$`},
		{[]string{"run", "--owner", long, "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --owner "o{64}"… \(600 bytes\): it is 600 bytes; the limit is 512$`},
		{[]string{"run", "--value", strings.Repeat("v", 1025), "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --value "v{64}"… \(1025 bytes\): it is 1025 bytes; the limit is 1024$`},
		{[]string{"run", "--value", "\xff", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --value "\\xff": it must be valid UTF-8$`},
		{[]string{"run", "--slots", "0", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --slots 0: it must be from 1 to 1000$`},
		{[]string{"run", "--slots", "1001", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --slots 1001: it must be from 1 to 1000$`},
		{[]string{"run", "--slots", "two", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --slots two: not a whole number$`},
		{[]string{"run", "Bad_Bucket!", "n", "--", "true"}, exitUsage, "", `^dimutex: run: invalid bucket name "Bad_Bucket!": character 'B' is not allowed`},
		{[]string{"run", "gs://b-b/n", "--", "true"}, exitUsage, "", `^dimutex: run: give the bucket and the object name as two arguments, not "gs://b-b/n"$`},
		{[]string{"run", "gs://b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: invalid bucket name "gs://b-b": .*; give the bucket and the object name as two arguments: BUCKET NAME$`},
		{[]string{"run", "b-b", "n", "extra", "--", "true"}, exitUsage, "", `^dimutex: run: unexpected argument "extra" after BUCKET NAME$`},
		{[]string{"run", "--endpoint", "ftp://x", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --endpoint ftp://x: unsupported scheme "ftp" \(want http or https\)$`},
		{[]string{"run", "--endpoint", "://bad", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --endpoint ://bad: `},
		{[]string{"run", "--endpoint", "localhost:99999", "b-b", "n", "--", "true"}, exitUsage, "", `^dimutex: run: --endpoint localhost:99999: port 99999 out of range$`},
		{[]string{"status"}, exitUsage, "", `^dimutex: status: missing BUCKET and NAME$`},
		{[]string{"status", "locks"}, exitUsage, "", `^dimutex: status: missing NAME$`},
		{[]string{"status", "--yaml", "b-b", "n"}, exitUsage, "", `^dimutex: status: unknown flag --yaml$`},
		{[]string{"status", "b-b", ""}, exitUsage, "", `^dimutex: status: invalid object name "": must not be empty$`},
		{[]string{"status", "--timeout", "0s", "b-b", "n"}, exitUsage, "", `^dimutex: status: --timeout 0s must be positive$`},
		{[]string{"status", "--slots", "0", "b-b", "n"}, exitUsage, "", `^dimutex: status: --slots 0: it must be from 1 to 1000$`},
		{[]string{"status", "--slots", "1001", "b-b", "n"}, exitUsage, "", `^dimutex: status: --slots 1001: it must be from 1 to 1000$`},
		{[]string{"release", "b-b", "n"}, exitUsage, "", `^dimutex: release: refusing without --force`},
		{[]string{"release", "--force", "--token", "x", "b-b", "n"}, exitUsage, "", `^dimutex: release: --token x: not a whole number$`},
		{[]string{"release", "--force", "--token", "0", "b-b", "n"}, exitUsage, "", `^dimutex: release: --token 0 must be positive$`},
		{[]string{"release", "--force", "--timeout", "1", "b-b", "n"}, exitUsage, "", `^dimutex: release: --timeout 1: missing a unit; did you mean 1s\?$`},
		{[]string{"list"}, exitUsage, "", `^dimutex: list: missing BUCKET$`},
		{[]string{"list", "gs://b-b/p"}, exitUsage, "", `^dimutex: list: give the bucket and the prefix as two arguments, not "gs://b-b/p"$`},
		{[]string{"list", "b-b", "p", "q"}, exitUsage, "", `^dimutex: list: unexpected argument "q" after BUCKET PREFIX$`},
		{[]string{"list", "--watch", "b-b"}, exitUsage, "", `^dimutex: list: unknown flag --watch$`},
		{[]string{"list", "Bad_Bucket!"}, exitUsage, "", `^dimutex: list: invalid bucket name "Bad_Bucket!"`},
		{[]string{"leader"}, exitUsage, "", `^dimutex: leader: missing BUCKET and NAME$`},
		{[]string{"leader", "b-b"}, exitUsage, "", `^dimutex: leader: missing NAME$`},
		{[]string{"leader", "--timeout", "-1s", "b-b", "n"}, exitUsage, "", `^dimutex: leader: --timeout -1s must be positive$`},
		{[]string{"leader", "--watch", "b-b", ".."}, exitUsage, "", `^dimutex: leader: invalid object name "\.\.": must not be "\." or "\.\."$`},
		{[]string{"version", "extra"}, exitUsage, "", `^dimutex: version: unexpected argument "extra"$`},
		{[]string{"help"}, exitOK, `(?s)^dimutex runs a command.*Exit status:.*75 .*125 `, ""},
		{[]string{"-h"}, exitOK, `^dimutex runs a command`, ""},
		{[]string{"--help"}, exitOK, `^dimutex runs a command`, ""},
		{[]string{"help", "run"}, exitOK, `^Usage: dimutex run \[flags\] BUCKET NAME -- COMMAND \[ARGS\.\.\.\]\n`, ""},
		{[]string{"help", "list"}, exitOK, `^Usage: dimutex list \[--json\] \[flags\] BUCKET \[PREFIX\]\n`, ""},
		{[]string{"help", "leader"}, exitOK, `^Usage: dimutex leader \[--json\] \[--watch\] \[flags\] BUCKET NAME\n`, ""},
		{[]string{"help", "version"}, exitOK, `^Usage: dimutex version\n`, ""},
		{[]string{"help", "bogus"}, exitUsage, "", `^dimutex: help: unknown command "bogus"`},
		{[]string{"run", "-h"}, exitOK, `^Usage: dimutex run `, ""},
		{[]string{"run", "b-b", "n", "--help", "--", "true"}, exitOK, `^Usage: dimutex run `, ""},
		{[]string{"status", "--help"}, exitOK, `^Usage: dimutex status `, ""},
		{[]string{"release", "-h"}, exitOK, `^Usage: dimutex release `, ""},
		{[]string{"list", "-h"}, exitOK, `^Usage: dimutex list `, ""},
		{[]string{"leader", "--help"}, exitOK, `^Usage: dimutex leader `, ""},
		{[]string{"version", "-h"}, exitOK, `^Usage: dimutex version`, ""},
		{[]string{"version"}, exitOK, `^dimutex \d+\.\d+\.\d+ \(go`, ""},
		{[]string{"--version"}, exitOK, `^dimutex \d+\.\d+\.\d+ \(go`, ""},
	}
	for _, tt := range tests {
		name := strings.Join(tt.args, " ")
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
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
			// Messages are in the command line's terms: no option of the
			// library, no layer's prefix, no value echoed in full.
			if regexp.MustCompile(`With[A-Z]|auth: |gcsjson: |dimutex: dimutex|flag provided|for flag -|o{100}|v{100}`).MatchString(r.stderr) {
				t.Errorf("stderr %q is not in the command line's terms", r.stderr)
			}
			// A mistake on the command line gets the usage; a bad value
			// (caught by the library) gets one line that names it.
			if tt.code == exitUsage && len(tt.args) > 1 && tt.args[0] != "help" {
				usage := regexp.MustCompile(`\nUsage: dimutex ` + tt.args[0] + `[ \n]`).MatchString(r.stderr)
				if config := strings.Count(r.stderr, "\n") == 1; usage == config {
					t.Errorf("stderr %q: want either one line or an error and the usage", r.stderr)
				}
			}
		})
	}
}

// commandFlags is every command and its flags.
func commandFlags() []struct {
	name string
	help string
	fs   *flag.FlagSet
} {
	return []struct {
		name string
		help string
		fs   *flag.FlagSet
	}{
		{"run", runHelp, new(runArgs).flags()},
		{"status", statusHelp, new(statusArgs).flags()},
		{"release", releaseHelp, new(releaseArgs).flags()},
		{"list", listHelp, new(listArgs).flags()},
		{"leader", leaderHelp, new(leaderArgs).flags()},
	}
}

// dashed returns a flag's name as the help spells it: -n, --ttl.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// TestHelpNamesEveryFlag checks that each command's help documents each of
// its flags, and that the main help names every command.
func TestHelpNamesEveryFlag(t *testing.T) {
	t.Parallel()
	for _, c := range commandFlags() {
		c.fs.VisitAll(func(f *flag.Flag) {
			if !regexp.MustCompile(`(  |, )` + dashed(f.Name) + `[ ,]`).MatchString(c.help) {
				t.Errorf("the help of %s does not document %s", c.name, dashed(f.Name))
			}
		})
		if !strings.Contains(mainHelp, "\n  dimutex "+c.name+" ") {
			t.Errorf("the main help does not name %s", c.name)
		}
		if h, ok := commandHelp(c.name); !ok || h != c.help {
			t.Errorf("'dimutex help %s' does not print its help", c.name)
		}
	}
}

// TestReadmeNamesEveryFlag checks that README.md's section on the
// command-line tool names every command and every flag, and documents the
// same exit statuses as the main help.
func TestReadmeNamesEveryFlag(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Command-line tool\n")
	if !ok {
		t.Fatal("README.md has no section \"Command-line tool\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, c := range commandFlags() {
		if !strings.Contains(section, "dimutex "+c.name+" ") {
			t.Errorf("README.md does not show 'dimutex %s'", c.name)
		}
		c.fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(section, "`"+dashed(f.Name)) {
				t.Errorf("README.md does not document %s of %s", dashed(f.Name), c.name)
			}
		})
	}
	// Every exit status of the main help is in README's table.
	_, table, _ := strings.Cut(mainHelp, "\nExit status:\n")
	for _, m := range regexp.MustCompile(`(?m)^  (\d+\+?N?|other) `).FindAllStringSubmatch(table, -1) {
		if !strings.Contains(section, "\n| "+m[1]+" |") {
			t.Errorf("README.md's exit status table has no row %s", m[1])
		}
	}
}
