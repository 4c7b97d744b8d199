//go:build unix

package main

import "testing"

// TestInterpreterLine checks how the #! line that names a missing
// interpreter is read: the interpreter ends at the first blank, and a
// carriage return stays in it, as the kernel reads it.
func TestInterpreterLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		head, line, interp string
		ok                 bool
	}{
		{"#!/bin/sh\necho hi\n", "#!/bin/sh", "/bin/sh", true},
		{"#! /usr/bin/env python3 -u\n", "#! /usr/bin/env python3 -u", "/usr/bin/env", true},
		{"#!\t/bin/bash\t-e\n", "#!\t/bin/bash\t-e", "/bin/bash", true},
		{"#!/bin/sh\r\necho hi\r\n", "#!/bin/sh\r", "/bin/sh\r", true},
		{"#!/bin/sh", "#!/bin/sh", "/bin/sh", true},
		{"echo hi\n", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		line, interp, ok := interpreterLine([]byte(tt.head))
		if line != tt.line || interp != tt.interp || ok != tt.ok {
			t.Errorf("interpreterLine(%q) = %q, %q, %v; want %q, %q, %v", tt.head, line, interp, ok, tt.line, tt.interp, tt.ok)
		}
	}
}

// TestIsBinary checks which files without a #! line are not given to
// /bin/sh: an ELF binary, or a NUL in the first line.
func TestIsBinary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		head string
		want bool
	}{
		{"\x7fELF\x02\x01\x01", true},
		{"\x00\x01\x02 data\n", true},
		{"echo hi\n\x00 after the first line\n", false},
		{"echo hi\n", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isBinary([]byte(tt.head)); got != tt.want {
			t.Errorf("isBinary(%q) = %v, want %v", tt.head, got, tt.want)
		}
	}
}
