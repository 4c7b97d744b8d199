//go:build !race

package cli_test

// raceEnabled reports whether the tests run under the race detector; the
// binary under test is then built with it too.
const raceEnabled = false
