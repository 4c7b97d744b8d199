// Package version holds the release version that the library reports in
// its User-Agent.
package version

// Version is the dimutex release version.
const Version = "0.1.0"
