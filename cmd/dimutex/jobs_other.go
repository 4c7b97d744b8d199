//go:build !linux

package main

import "os"

// jobs would make the command and dimutex one job for the shell; outside
// Linux, the standard library cannot tell dimutex that the command has
// stopped without reaping it, so a command stopped alone stays stopped
// while dimutex runs (see docs/cli-processes.md).
type jobs struct{ pid int }

func watchJobs(*terminal) *jobs         { return &jobs{} }
func (*jobs) signals() <-chan os.Signal { return nil }
func (*jobs) stop()                     {}
func (*jobs) isStopped() bool           { return false }
func (*jobs) handle(os.Signal)          {}
