//go:build !linux

package emu

import "os/exec"

func setPdeathsig(*exec.Cmd) {}
