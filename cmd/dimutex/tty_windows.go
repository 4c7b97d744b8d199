package main

// terminal does nothing on Windows, where the command shares dimutex's
// console.
type terminal struct{}

func controllingTerminal(...any) *terminal { return nil }
func (*terminal) started()                 {}
func (*terminal) reclaim()                 {}
func (*terminal) close()                   {}
