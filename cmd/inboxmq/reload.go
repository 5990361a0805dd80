package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/inboxmq/inboxmq/api"
	"github.com/inboxmq/inboxmq/broker"
)

// reloadUID is the uid of the short-lived admin token `inboxmq reload`
// signs for itself; the broker's log names it.
const reloadUID = "inboxmq-reload"

// reload asks the running broker, on its admin listener, to read its
// config file again (POST /api/v1/admin/reload, what SIGHUP does) and
// prints its report. The file is checked here first: an invalid one is
// not sent for, and the broker keeps its configuration.
func reload(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reload", "inboxmq reload [flags]: make the running broker read its config file again, as SIGHUP\n"+
		"does, and print the changed keys it applied and those that need a restart.\n"+
		"It exits 1, and the broker keeps its configuration, when the file is invalid.", stderr)
	config := fs.String("config", "inboxmq.yaml", "the running broker's config file: checked first, and read for\nlisteners.admin and auth.jwt_secret")
	admin := fs.String("admin", "", "the broker's admin listener, host:port or URL\n(default: listeners.admin.address of the config)")
	token := fs.String("token", "", "an admin access token (default: $"+AdminTokenEnv+", else one signed with auth.jwt_secret)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := broker.LoadConfig(*config)
	if err != nil {
		return fmt.Errorf("%w\nthe running broker was not asked to reload: it keeps its configuration", err)
	}
	if err := cfg.CheckFiles(); err != nil {
		return fmt.Errorf("config %s: %w\nthe running broker was not asked to reload: it keeps its configuration", *config, err)
	}
	url, tlsConf, err := reloadURL(cfg.Listeners.Admin, *admin)
	if err != nil {
		return err
	}
	tok, err := adminToken(cfg, *token, reloadUID)
	if err != nil {
		return err
	}
	if tok == "" {
		return fmt.Errorf("no admin token: pass --token or set %s (the config has no auth.jwt_secret to sign one)", AdminTokenEnv)
	}
	res, err := askReload(url, tlsConf, tok)
	if err != nil {
		return err
	}
	printReload(stdout, res)
	return nil
}

// reloadURL is where the admin listener is reached: --admin when given
// (a URL, or host:port), else the config's listeners.admin.address. Over
// TLS the config's certificate is pinned, as for `inboxmq backup`.
func reloadURL(a broker.AdminConfig, flag string) (string, *tls.Config, error) {
	if flag == "" {
		if _, port, _ := net.SplitHostPort(a.Address); a.Address == "" || port == "0" {
			return "", nil, fmt.Errorf("listeners.admin.address is %q: pass --admin, the running broker's admin listener", a.Address)
		}
		return adminURL(a)
	}
	conf, err := adminTLS(a)
	if err != nil {
		return "", nil, err
	}
	if strings.HasPrefix(flag, "http://") || strings.HasPrefix(flag, "https://") {
		return strings.TrimRight(flag, "/"), conf, nil
	}
	if _, _, err := net.SplitHostPort(flag); err != nil {
		return "", nil, fmt.Errorf("--admin %q: want host:port or a URL: %w", flag, err)
	}
	if conf != nil {
		return "https://" + flag, conf, nil
	}
	return "http://" + flag, nil, nil
}

// askReload posts the reload and decodes the broker's report.
func askReload(url string, tlsConf *tls.Config, token string) (api.ReloadResult, error) {
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: tlsConf,
		DialContext:     (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/api/v1/admin/reload", nil)
	if err != nil {
		return api.ReloadResult{}, fmt.Errorf("--admin %q: %w", url, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return api.ReloadResult{}, fmt.Errorf("asking the broker at %s to reload: %w", url, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, 1<<20)
	if resp.StatusCode == http.StatusOK {
		var res api.ReloadResult
		if err := json.NewDecoder(body).Decode(&res); err != nil {
			return api.ReloadResult{}, fmt.Errorf("the broker at %s reloaded, but its report is unreadable: %w", url, err)
		}
		return res, nil
	}
	var refused struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.NewDecoder(body).Decode(&refused); err != nil {
		refused.Error.Message = "(no readable reason)"
	}
	msg := fmt.Sprintf("the broker at %s did not reload: %s: %s", url, resp.Status, refused.Error.Message)
	switch resp.StatusCode {
	case http.StatusUnprocessableEntity:
		msg += "\nit keeps its configuration"
	case http.StatusUnauthorized:
		msg += "\nif auth.jwt_secret changed in the file, the token signed with it is not the running one's: " +
			"send SIGHUP, or pass --token signed with the running secret"
	}
	return api.ReloadResult{}, errors.New(msg)
}

// printReload writes the report: one line each for what was applied and
// what needs a restart, then one per notice.
func printReload(w io.Writer, res api.ReloadResult) {
	list := func(keys []string) string {
		if len(keys) == 0 {
			return "(none)"
		}
		return strings.Join(keys, ", ")
	}
	fmt.Fprintf(w, "reloaded %s\n", res.Config)
	fmt.Fprintf(w, "applied: %s\n", list(res.Applied))
	fmt.Fprintf(w, "needs a restart: %s\n", list(res.Restart))
	for _, n := range res.Notices {
		fmt.Fprintf(w, "notice: %s\n", n)
	}
}
