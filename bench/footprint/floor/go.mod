module github.com/dimutex/dimutex/bench/footprint/floor

go 1.26.0

require golang.org/x/oauth2 v0.38.0

require (
	cloud.google.com/go/compute/metadata v0.9.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
