// Command dimutex runs a command while holding a distributed lock whose state
// lives in one Google Cloud Storage object, and inspects or force-releases
// such locks. Run "dimutex help" for usage and exit codes.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
