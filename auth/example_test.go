package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/dimutex/dimutex/auth"
	"golang.org/x/oauth2"
)

func ExampleResolveEndpoint() {
	env := map[string]string{auth.EmulatorHostEnv: "localhost:4443"}
	for _, explicit := range []string{"", "https://storage.googleapis.com/storage/v1/"} {
		e, err := auth.ResolveEndpoint(explicit, func(k string) string { return env[k] })
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(e, "authenticated:", e.Authenticated())
	}

	env[auth.EmulatorHostEnv] = "localhost:99999"
	_, err := auth.ResolveEndpoint("", func(k string) string { return env[k] })
	fmt.Println(err)
	// Output:
	// http://localhost:4443 (emulator) authenticated: false
	// https://storage.googleapis.com authenticated: true
	// auth: STORAGE_EMULATOR_HOST="localhost:99999": port 99999 out of range
}

func ExampleCredentials_Authorize() {
	creds := auth.NewCredentials(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "ya29.example"}))

	req, _ := http.NewRequest(http.MethodGet, "https://storage.googleapis.com/storage/v1/b/my-bucket/o/lock", nil)
	if err := creds.Authorize(context.Background(), req); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req.Header.Get("Authorization"))

	plain, _ := http.NewRequest(http.MethodGet, "http://localhost:4443/storage/v1/b/my-bucket/o/lock", nil)
	err := creds.Authorize(context.Background(), plain)
	fmt.Println(errors.Is(err, auth.ErrInsecureTransport), plain.Header.Get("Authorization") == "")
	// Output:
	// Bearer ya29.example
	// true true
}
