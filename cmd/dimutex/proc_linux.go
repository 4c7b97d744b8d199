package main

import (
	"syscall"
	"unsafe"
)

// setDeathSignal asks the kernel to SIGKILL the command when the thread
// that started it exits, which it does when dimutex dies. startCommand
// starts the command from a goroutine locked to its thread for the
// command's whole life, since the signal follows that thread, not the
// process. It reaches the command's first process only: the watchdog
// (watchdog_unix.go) kills the rest of its process group.
func setDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}

// selfExe is the path by which dimutex runs its own binary again: the very
// file it runs from, even if it has since been replaced or deleted.
func selfExe() (string, error) { return "/proc/self/exe", nil }

// setProcessName sets the name that ps and top show for the calling
// thread, the main thread during package initialisation; at most 15 bytes
// are kept.
func setProcessName(name string) {
	b := append([]byte(name), 0)
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0)
}
