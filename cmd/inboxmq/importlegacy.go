package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/legacy"
)

// LegacyPasswordEnv holds the legacy Redis's password for import-legacy,
// so that it need not be on the command line (visible in ps).
const LegacyPasswordEnv = "INBOXMQ_LEGACY_REDIS_PASSWORD"

func importLegacy(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("import-legacy", "inboxmq import-legacy --redis ADDR [flags]: append the offline messages (hash\n"+
		"chat_history) and notices (hash nodejs_notification) a legacy socket.io server left in\n"+
		"Redis to the inboxes of the configured store, in order, marked as imported. Running it\n"+
		"again imports nothing twice. The embedded store must not be in use (stop the broker);\n"+
		"the Redis store may be. See docs/migration.md.", stderr)
	config := fs.String("config", "inboxmq.yaml", "config file naming the store to import into")
	addr := fs.String("redis", "", "the legacy server's Redis, host:port (required)")
	password := fs.String("password", "", "its password (default: $"+LegacyPasswordEnv+")")
	db := fs.Int("db", 0, "its database number")
	historyKey := fs.String("history-key", "chat_history", "hash of offline messages: field uid, value a JSON array of messages")
	noticeKey := fs.String("notice-key", "nodejs_notification", "hash of notices: field uid, value a JSON array of notice JSON strings")
	dryRun := fs.Bool("dry-run", false, "read and check everything, write nothing")
	del := fs.Bool("delete", false, "remove what was imported from the legacy hashes (malformed entries stay)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *addr == "" {
		fmt.Fprintln(stderr, "import-legacy: --redis is required")
		return errUsage
	}
	if *password == "" {
		*password = os.Getenv(LegacyPasswordEnv)
	}
	cfg, err := broker.LoadConfig(*config)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	src := redis.NewClient(&redis.Options{Addr: *addr, Password: *password, DB: *db, DialTimeout: 5 * time.Second})
	defer src.Close()
	if err := src.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("legacy redis %s: %w", *addr, err)
	}
	store, closeStore, err := broker.OpenStore(cfg)
	if err != nil {
		return err
	}
	im, err := legacy.New(legacy.Options{
		Store: store, Source: legacy.RedisSource{Client: src}, DryRun: *dryRun, Delete: *del,
		MaxContent: int(cfg.Inbox.MaxMessageBytes),
		Progress: func(hash string, done, total int) {
			fmt.Fprintf(stderr, "import-legacy: %s %s\n", hash, progressBar(done, total))
		},
	})
	if err != nil {
		return errors.Join(err, closeStore())
	}
	var failed error
	for _, h := range []struct {
		kind legacy.Kind
		key  string
	}{{legacy.KindMessage, *historyKey}, {legacy.KindNotice, *noticeKey}} {
		sum, err := im.Import(ctx, h.kind, h.key)
		printSummary(stdout, sum, *dryRun, *del)
		if err != nil {
			failed = err
			break
		}
	}
	return errors.Join(failed, closeStore())
}

// progressBar draws "[=====     ]  50% 5/10 fields".
func progressBar(done, total int) string {
	const width = 20
	pct := 100
	if total > 0 {
		pct = done * 100 / total
	}
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < pct*width/100 {
			bar[i] = '='
		}
	}
	return fmt.Sprintf("[%s] %3d%% %d/%d fields", bar, pct, done, total)
}

func printSummary(w io.Writer, s legacy.Summary, dryRun, del bool) {
	verb := "imported"
	if dryRun {
		verb = "would import"
	}
	fmt.Fprintf(w, "%s: %d fields, %s %d, skipped %d (imported before), malformed %d\n",
		s.Hash, s.Fields, verb, s.Imported, s.Skipped, s.Malformed)
	if del && !dryRun {
		fmt.Fprintf(w, "%s: %d fields removed or trimmed, %d changed by the legacy server meanwhile (left; run again)\n",
			s.Hash, s.Cleared, s.Changed)
	}
	for _, r := range s.ReasonList() {
		fmt.Fprintf(w, "  malformed, %s\n", r)
	}
	for _, smp := range s.Samples {
		fmt.Fprintf(w, "  %s\n", smp)
	}
	if s.Malformed > len(s.Samples) {
		fmt.Fprintf(w, "  ... and %d more\n", s.Malformed-len(s.Samples))
	}
}
