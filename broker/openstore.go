package broker

import "github.com/inboxmq/inboxmq/inbox"

// OpenStore opens the inbox store cfg configures, as the broker would, for
// a command that works on the store itself (inboxmq import-legacy): with
// the embedded store it takes data_dir's lock, so it fails while a broker
// runs there; with the Redis store it may run beside the brokers. Call
// closeStore when done: it closes the store and releases what OpenStore took.
func OpenStore(cfg Config) (store inbox.Store, closeStore func() error, err error) {
	b := &Broker{cfg: cfg, stop: make(chan struct{})}
	if err := b.openStore(inbox.Options{
		MaxPerInbox:    cfg.Inbox.MaxMessages,
		Retention:      cfg.Inbox.Retention,
		NodeID:         cfg.NodeID,
		DedupeWindow:   cfg.Inbox.DedupeWindow,
		DedupePerInbox: cfg.Inbox.DedupePerInbox,
	}); err != nil {
		close(b.stop)
		return nil, nil, err
	}
	return b.store, func() error {
		err := b.closeStore()
		close(b.stop)
		return err
	}, nil
}
