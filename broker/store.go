package broker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
	pebblestore "github.com/inboxmq/inboxmq/inbox/pebble"
	redisstore "github.com/inboxmq/inboxmq/inbox/redis"
	"github.com/inboxmq/inboxmq/internal/dirlock"
)

// StoreDir is the embedded store's directory inside data_dir. It is all
// the broker keeps there, besides the lock and pid files (see Backup).
const StoreDir = "inbox"

// openStore opens the configured inbox store (and, for redis, the client
// the store and the cluster signals share). With the embedded store it
// first locks data_dir, so that a second broker on the same directory is
// told which process has it.
func (b *Broker) openStore(opts inbox.Options) error {
	cfg := b.cfg
	if len(cfg.Redis.Addresses) > 0 { // the Redis store, cluster signals, event channels
		client, err := newRedisClient(cfg.Redis, b.stop)
		if err != nil {
			return err
		}
		client.AddHook(&b.redisReq)
		b.redis = client
	}
	if cfg.Store == "redis" {
		r := cfg.Redis
		ctx, cancel := context.WithTimeout(context.Background(), r.DialTimeout+r.Timeout)
		defer cancel()
		store, err := redisstore.Open(ctx, redisstore.Options{Client: b.redis, Prefix: r.Prefix, Inbox: opts})
		if err != nil {
			b.redis.Close()
			b.redis = nil
			return fmt.Errorf("open redis store %v: %w", r.Addresses, err)
		}
		b.store = store
		return nil
	}
	fail := func(err error) error {
		if b.redis != nil {
			b.redis.Close()
			b.redis = nil
		}
		return errors.Join(err, b.dataLock.Release())
	}
	var err error
	if b.dataLock, err = dirlock.Acquire(cfg.DataDir); err != nil {
		return fail(err)
	}
	if err := removeBackupLeftovers(cfg.DataDir); err != nil {
		return fail(err)
	}
	b.walSync = newWALSyncHistogram()
	store, err := pebblestore.OpenTuned(filepath.Join(cfg.DataDir, StoreDir), opts,
		pebblestore.Tuning{
			MemTableSize:    int64(cfg.EmbeddedMemtableSize),
			WALSyncInterval: cfg.EmbeddedWALSyncInterval,
			OnWALSync:       func(d time.Duration) { b.walSync.Observe(d.Seconds()) },
		})
	if err != nil {
		return fail(fmt.Errorf("open inbox store: %w", err))
	}
	b.store = store
	return nil
}

func (b *Broker) closeStore() error {
	var errs []error
	if b.store != nil {
		if e := b.store.Close(); e != nil && !errors.Is(e, inbox.ErrClosed) {
			errs = append(errs, fmt.Errorf("close store: %w", e))
		}
	}
	if b.redis != nil {
		b.redis.Close()
	}
	// Only once the store is closed may another process open it.
	if err := b.dataLock.Release(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
