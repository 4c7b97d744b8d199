//go:build unix && !linux

package main

import "syscall"

// terminal would let the command use dimutex's terminal; outside Linux the
// standard library cannot read a terminal's foreground process group, so
// the command always runs in the background group. A command that reads
// the terminal is then stopped by SIGTTIN: give it its input another way.
type terminal struct{}

func controllingTerminal(...any) *terminal       { return nil }
func (*terminal) configure(*syscall.SysProcAttr) {}
func (*terminal) started()                       {}
func (*terminal) reclaim()                       {}
func (*terminal) close()                         {}
