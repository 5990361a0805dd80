// Command inboxmq runs the inboxmq MQTT broker and mints access tokens.
// Run "inboxmq --help" for the commands.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/broker"
)

const usage = `inboxmq: an MQTT broker for private messages and in-app notices.

Usage:
  inboxmq [--config FILE]             run the broker (same as "inboxmq run")
  inboxmq run [--config FILE]         run the broker until SIGINT/SIGTERM; SIGHUP reloads
                                      the config file (as "inboxmq reload")
  inboxmq reload [--config FILE] [--admin ADDR]
                                      make the running broker read its config file again;
                                      print what it applied and which changes need a restart
  inboxmq token --uid UID [flags]     print an access token signed with the config's secret
  inboxmq hash-password               read a password on stdin, print its bcrypt hash
                                      (for auth.accounts[].password_hash)
  inboxmq check-config [--config FILE]
                                      validate a config file and exit
  inboxmq backup --to DIR [--config FILE]
                                      copy the embedded store to a new directory,
                                      from the running broker or a stopped one
  inboxmq import-legacy --redis ADDR [--dry-run] [--delete] [--config FILE]
                                      append the offline messages and notices a legacy
                                      socket.io server kept in Redis to the inboxes
  inboxmq version                     print the version, commit, date and Go version
                                      (also "inboxmq --version")
  inboxmq healthcheck [--url URL]     GET http://127.0.0.1:8080/healthz (or URL): exit 0
                                      on 200, 1 otherwise (for container HEALTHCHECKs)
  inboxmq help                        show this help

The config file is YAML; inboxmq.yaml in the repository documents every key.
The environment variable INBOXMQ_JWT_SECRET overrides auth.jwt_secret.

Clients log in with username = uid and password = access token; they
subscribe to inbox/{uid} and publish requests to im/sendmsg, im/delmsg,
im/conn, im/read, im/editmsg, im/typing (and im/systemadmin for admin and
service accounts).
See docs/protocol.md.

Run "inboxmq COMMAND --help" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		cmd, args = "version", args[1:]
	}
	if asksForHelp(args) {
		// Help asked for is the output, not a diagnostic: stdout, exit 0.
		stderr = stdout
	}
	var err error
	switch cmd {
	case "run":
		err = runBroker(args, stderr)
	case "token":
		err = mintToken(args, stdout, stderr)
	case "hash-password":
		err = hashPassword(args, stdin, stdout, stderr)
	case "check-config":
		err = checkConfig(args, stdout, stderr)
	case "reload":
		err = reload(args, stdout, stderr)
	case "backup":
		err = backup(args, stdout, stderr)
	case "import-legacy":
		err = importLegacy(args, stdout, stderr)
	case "version":
		err = printVersion(args, stdout, stderr)
	case "healthcheck":
		err = healthcheck(args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "inboxmq: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "inboxmq %s: %v\n", cmd, err)
	return 1
}

var errUsage = errors.New("usage")

// asksForHelp reports a -h, -help or --help flag among args.
func asksForHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return true
		case "--":
			return false
		}
	}
	return false
}

func newFlags(name, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", help)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		return errUsage
	}
	return nil
}

func runBroker(args []string, stderr io.Writer) error {
	fs := newFlags("run", "inboxmq run [--config FILE]: run the broker until SIGINT or SIGTERM.\n\n"+usage, stderr)
	config := fs.String("config", "inboxmq.yaml", "config file (YAML)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := broker.LoadConfig(*config)
	if err != nil {
		return err
	}
	log, err := broker.NewLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	b, err := broker.New(cfg, log)
	if err != nil {
		return err
	}
	b.SetConfigFile(*config)
	// Signals are caught before Start logs "inboxmq started": a SIGHUP sent
	// as soon as that line appears would otherwise kill the process (Go's
	// default action), and a SIGTERM would skip the graceful shutdown.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := b.Start(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "signal", context.Cause(ctx))
			return b.Close()
		case <-hup:
			// As `inboxmq reload`: ReloadConfig logs what it applied, what
			// needs a restart, and why a bad file changed nothing.
			if _, err := b.ReloadConfig(); err != nil {
				continue // logged; the broker runs on with its configuration
			}
		}
	}
}

func mintToken(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", "inboxmq token --uid UID [flags]: print an HS256 access token for a user,\n"+
		"signed with auth.jwt_secret from the config file (or INBOXMQ_JWT_SECRET).", stderr)
	config := fs.String("config", "inboxmq.yaml", "config file holding the secret")
	uid := fs.String("uid", "", "the user's uid (required); also the MQTT username")
	nickname := fs.String("nickname", "", "nickname stamped on the user's messages")
	avatar := fs.String("avatar", "", "avatar URL stamped on the user's messages")
	role := fs.String("role", "user", "user or admin")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *uid == "" {
		fmt.Fprintln(stderr, "token: --uid is required")
		return errUsage
	}
	cfg, err := broker.LoadConfig(*config)
	if err != nil {
		return err
	}
	for _, a := range cfg.Auth.Accounts {
		if a.Name == *uid {
			// A login with that name is checked against the account's
			// password, never a token: the token could never log in.
			return fmt.Errorf("%q is a static account in %s (auth.accounts): it logs in with its password, not a token", *uid, *config)
		}
	}
	if cfg.Auth.JWTSecret == "" {
		return fmt.Errorf("no secret: set auth.jwt_secret in %s or %s", *config, broker.SecretEnv)
	}
	tokens, err := auth.NewTokens([]byte(cfg.Auth.JWTSecret))
	if err != nil {
		return err
	}
	tok, err := tokens.Mint(auth.Claims{UID: *uid, Nickname: *nickname, Avatar: *avatar, Role: acl.Role(*role), TTL: *ttl})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func hashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("hash-password", "inboxmq hash-password: read a password (without echo on a terminal, else one line on stdin),\n"+
		"print its bcrypt hash.", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	if password == "" {
		return errors.New("empty password")
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, hash)
	return nil
}

func checkConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check-config", "inboxmq check-config [--config FILE]: validate a config file.", stderr)
	config := fs.String("config", "inboxmq.yaml", "config file (YAML)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := broker.LoadConfig(*config)
	if err != nil {
		return err
	}
	if err := cfg.CheckFiles(); err != nil {
		return fmt.Errorf("config %s: %w", *config, err)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *config)
	return nil
}

// readPassword reads a password from a terminal without echoing it
// (golang.org/x/term), or one line from a pipe or file.
func readPassword(stdin io.Reader, prompt io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
