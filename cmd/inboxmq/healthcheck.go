package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/inboxmq/inboxmq/broker"
)

// defaultHealthURL is /healthz on loopback at the default HTTP port.
func defaultHealthURL() string {
	_, port, err := net.SplitHostPort(broker.DefaultConfig().Listeners.HTTP.Address)
	if err != nil {
		port = "8080"
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz"
}

// healthcheck answers "inboxmq healthcheck": exit 0 when the URL answers
// 200, 1 otherwise. Container images built FROM scratch have no curl, so
// the binary checks itself (the Dockerfile's HEALTHCHECK).
func healthcheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("healthcheck", "inboxmq healthcheck [--url URL]: GET the URL (the HTTP listener's /healthz);\n"+
		"exit 0 on 200, 1 otherwise.", stderr)
	target := fs.String("url", defaultHealthURL(), "what to GET (http or https; use /readyz to check readiness)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "healthcheck: --url %q: want an http:// or https:// URL\n", *target)
		return errUsage
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "healthcheck: --timeout must be positive")
		return errUsage
	}
	client := &http.Client{
		Timeout: *timeout,
		// No proxy from the environment, no redirects: the answer must
		// come from the broker at that address.
		Transport:     &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get(u.String())
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512)) // only for the message
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: %s answered %s: %s", u, resp.Status, bytes.TrimSpace(body))
	}
	fmt.Fprintf(stdout, "healthy: %s answered %s\n", u.String(), resp.Status)
	return nil
}
