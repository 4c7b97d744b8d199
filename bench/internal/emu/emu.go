// Package emu starts fake-gcs-server for the benchmarks: in this process,
// optionally behind a middleware, or in a child process so that a
// benchmark's allocation counts and heap measurements contain the client's
// work only.
//
// The child is this same executable run again with an environment variable
// set: a program that uses StartChild must call ServeIfChild first thing in
// main (or TestMain). All listeners are on 127.0.0.1.
package emu

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// Bucket is the bucket every server here creates.
const Bucket = "dimutex-bench"

// envServe marks the child process.
const envServe = "DIMUTEX_BENCH_EMULATOR_CHILD"

// Server is a running emulator.
type Server struct {
	// URL is its root, "http://127.0.0.1:PORT".
	URL string
	// Child reports whether it runs in a child process.
	Child bool

	stop func() error
}

// Stop stops the server and, for a child, waits for it to exit.
func (s *Server) Stop() error { return s.stop() }

// newFake returns an emulator with Bucket and no listener of its own.
func newFake() (*fakestorage.Server, error) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       "127.0.0.1",
		NoListener: true,
	})
	if err != nil {
		return nil, fmt.Errorf("emu: starting fake-gcs-server: %w", err)
	}
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: Bucket})
	return srv, nil
}

// serve serves h on a fresh 127.0.0.1 port with keep-alive on.
func serve(h http.Handler) (url string, stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String(), hs.Close, nil
}

// StartInProcess starts an emulator in this process. If wrap is not nil,
// requests pass through wrap(emulator) first.
func StartInProcess(wrap func(http.Handler) http.Handler) (*Server, error) {
	fake, err := newFake()
	if err != nil {
		return nil, err
	}
	h := fake.HTTPHandler()
	if wrap != nil {
		h = wrap(h)
	}
	url, stop, err := serve(h)
	if err != nil {
		fake.Stop()
		return nil, err
	}
	return &Server{URL: url, stop: func() error {
		err := stop()
		fake.Stop()
		return err
	}}, nil
}

// ServeIfChild serves the emulator and exits if this process was started by
// StartChild; otherwise it returns at once. The child prints its URL on
// stdout and exits when its stdin is closed, so it never outlives its
// parent's intent (and, on Linux, dies with the parent).
func ServeIfChild() {
	if os.Getenv(envServe) != "1" {
		return
	}
	fake, err := newFake()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	url, stop, err := serve(fake.HTTPHandler())
	if err != nil {
		fmt.Fprintln(os.Stderr, "emu:", err)
		os.Exit(1)
	}
	fmt.Println(url)
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
	stop()
	fake.Stop()
	os.Exit(0)
}

// StartChild starts the emulator in a child process: this executable, run
// again with the environment variable that ServeIfChild looks for.
func StartChild() (*Server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envServe+"=1")
	cmd.Stderr = os.Stderr
	setPdeathsig(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		got <- result{line, err}
	}()
	kill := func() { cmd.Process.Kill(); cmd.Wait() }
	var line string
	select {
	case r := <-got:
		if r.err != nil {
			kill()
			return nil, fmt.Errorf("emu: child emulator said nothing: %w", r.err)
		}
		line = strings.TrimSpace(r.line)
	case <-time.After(30 * time.Second):
		kill()
		return nil, errors.New("emu: child emulator did not start within 30s")
	}
	if !strings.HasPrefix(line, "http://127.0.0.1:") {
		kill()
		return nil, fmt.Errorf("emu: child emulator printed %q, want its URL", line)
	}
	return &Server{URL: line, Child: true, stop: func() error {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			return <-done
		}
	}}, nil
}
