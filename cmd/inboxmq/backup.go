package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/dirlock"
)

// AdminTokenEnv holds an admin access token for `inboxmq backup`.
const AdminTokenEnv = "INBOXMQ_ADMIN_TOKEN"

// backupUID is the uid of the short-lived admin token the backup command
// signs for itself; the broker's log names it.
const backupUID = "inboxmq-backup"

func backup(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", "inboxmq backup --to DIR [flags]: write a consistent copy of the embedded store\n"+
		"to DIR, a new directory that a broker can use as its data_dir. When a broker runs on\n"+
		"data_dir, the copy comes from it (a Pebble checkpoint, through the admin listener);\n"+
		"otherwise the files are copied directly. See docs/operations.md.", stderr)
	config := fs.String("config", "inboxmq.yaml", "config file of the broker to back up")
	to := fs.String("to", "", "new directory to write the backup into (required)")
	url := fs.String("url", "", "the running broker's admin listener, e.g. http://127.0.0.1:9090\n(default: listeners.admin.address of the config)")
	token := fs.String("token", "", "an admin access token (default: $"+AdminTokenEnv+", else one signed with auth.jwt_secret)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *to == "" {
		fmt.Fprintln(stderr, "backup: --to is required")
		return errUsage
	}
	cfg, err := broker.LoadConfig(*config)
	if err != nil {
		return err
	}
	if cfg.Store != "embedded" {
		return broker.ErrNoEmbeddedStore
	}
	m, err := broker.BackupStopped(cfg.DataDir, *to)
	var inUse *dirlock.InUseError
	if errors.As(err, &inUse) {
		m, err = backupRunning(cfg, *to, *url, *token, inUse)
	}
	if err != nil {
		return err
	}
	from := "stopped broker, files copied"
	if m.Online {
		from = fmt.Sprintf("running broker, pid %d, checkpoint", inUse.PID)
	}
	fmt.Fprintf(stdout, "backup of %s written to %s: %d files, %d bytes (%s)\n", cfg.DataDir, *to, m.Files, m.Bytes, from)
	return nil
}

// backupRunning asks the broker that holds the data dir for a checkpoint.
func backupRunning(cfg broker.Config, to, url, token string, inUse *dirlock.InUseError) (broker.BackupManifest, error) {
	var tlsConf *tls.Config
	if url == "" {
		var err error
		if url, tlsConf, err = adminURL(cfg.Listeners.Admin); err != nil {
			return broker.BackupManifest{}, fmt.Errorf("%w; to back it up: %w", inUse, err)
		}
	}
	token, err := adminToken(cfg, token, backupUID)
	if err != nil {
		return broker.BackupManifest{}, err
	}
	if token == "" {
		return broker.BackupManifest{}, fmt.Errorf("%w; to back it up, give an admin token (--token or %s): the config has no auth.jwt_secret to sign one", inUse, AdminTokenEnv)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:       tlsConf,
		ResponseHeaderTimeout: time.Minute, // the checkpoint; the transfer has no bound
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/api/v1/admin/backup", nil)
	if err != nil {
		return broker.BackupManifest{}, fmt.Errorf("--url %q: %w", url, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return broker.BackupManifest{}, fmt.Errorf("%w; asking it for a backup: %w", inUse, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
		return broker.BackupManifest{}, fmt.Errorf("the broker at %s refused the backup: %s: %s", url, resp.Status, body.Error.Message)
	}
	return broker.ReceiveBackup(resp.Body, to)
}

// adminURL is where the config's admin listener is reached from this
// host. Over TLS the broker must present the certificate in the config's
// cert file: the command reads the same file as the broker, so it pins
// that certificate rather than needing a name the certificate covers.
func adminURL(a broker.AdminConfig) (string, *tls.Config, error) {
	if a.Address == "" {
		return "", nil, errors.New("listeners.admin has no address: pass --url")
	}
	host, port, err := net.SplitHostPort(a.Address)
	if err != nil {
		return "", nil, fmt.Errorf("listeners.admin.address %q: %w", a.Address, err)
	}
	if port == "0" {
		return "", nil, errors.New("listeners.admin.address has port 0: pass --url")
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, port)
	conf, err := adminTLS(a)
	if err != nil || conf == nil {
		return "http://" + addr, nil, err
	}
	return "https://" + addr, conf, nil
}

// adminTLS is the TLS client config for a's admin listener, which pins
// the certificate in a's cert file; nil without TLS.
func adminTLS(a broker.AdminConfig) (*tls.Config, error) {
	if !a.TLS.Enabled() {
		return nil, nil
	}
	if a.TLS.RequireClientCert {
		return nil, errors.New("listeners.admin requires client certificates, which this command has none of: stop the broker first")
	}
	pinned, err := os.ReadFile(a.TLS.Cert)
	if err != nil {
		return nil, fmt.Errorf("listeners.admin.tls: %w", err)
	}
	block, _ := pem.Decode(pinned)
	if block == nil {
		return nil, fmt.Errorf("listeners.admin.tls.cert %s: no PEM certificate in it", a.TLS.Cert)
	}
	leaf := block.Bytes
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, leaf) {
				return fmt.Errorf("the admin listener does not present the certificate in %s", a.TLS.Cert)
			}
			return nil
		},
	}, nil
}
