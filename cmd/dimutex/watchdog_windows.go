package main

// watchdog does nothing on Windows, where a command outlives a dimutex
// that is killed (see docs/cli-processes.md).
type watchdog struct{}

func startWatchdog() (*watchdog, error) { return &watchdog{}, nil }
func (*watchdog) watch(int) error       { return nil }
func (*watchdog) done()                 {}
func (*watchdog) wait()                 {}
