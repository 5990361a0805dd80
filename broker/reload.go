package broker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/inboxmq/inboxmq/api"
	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/hooks/access"
	"github.com/inboxmq/inboxmq/messaging"
)

// Reloading the configuration of a running broker. SIGHUP and POST
// /api/v1/admin/reload (`inboxmq reload`) both call ReloadConfig, so both
// apply the same way, log the same lines and produce the same report.
//
// A reload compares the new configuration with the running one, key by
// key. Every changed key that can take effect while the broker runs does
// (reloadable); every other changed key is named, each time, in one log
// line and in the report, and keeps its running value until a restart.
// Nothing changes when the new configuration is invalid or a part of it
// cannot be built: all that can be applied is, or nothing is.
//
// Each setting is swapped as a whole, by an atomic pointer in the part
// that uses it (credentials, rates, the event outbox, the web page, the
// WebSocket origins, the messaging rules), so a request in flight sees
// the old value or the new one, never a mix; reloads run one at a time.

// ErrNoConfigFile is ReloadConfig's error when the broker was not told
// where its configuration file is (SetConfigFile).
var ErrNoConfigFile = errors.New("the broker was not started from a config file: nothing to reload")

var errShuttingDown = errors.New("the broker is shutting down")

// ReloadReport is what one reload did. Keys are named by their path, as
// in the config file (web.dev_login), in order.
type ReloadReport struct {
	Config string // the file read; "" for a Config given to Reload
	// Applied are the changed keys now in effect.
	Applied []string
	// Restart are the changed keys that take effect at the next start;
	// until then the running values stay.
	Restart []string
	// Notices are warnings about the configuration now running, repeated
	// at every reload (web.dev_login on, anonymous logins allowed...), and
	// TLS certificates that were replaced or could not be read.
	Notices []string
}

// reloadable are the keys a running broker applies. Any other key takes
// effect at the next start: listener addresses, TLS settings (the
// certificate files themselves are re-read at every reload), the store,
// node_id, Redis, the inbox's storage limits, ACL rules, mqtt.* and
// runtime.*.
var reloadable = map[string]bool{
	"auth.jwt_secret": true, "auth.accounts": true, "auth.token_leeway": true, "auth.anonymous": true,

	"limits.max_subscriptions": true, "limits.message_rate": true, "limits.message_burst": true,
	"limits.message_wait": true, "limits.connect_timeout": true, "limits.connections_per_ip": true,
	"limits.max_blocks": true,

	"inbox.retention": true, "inbox.expire_interval": true, "inbox.delete_window": true, "inbox.edit_window": true,

	"push.after": true, "push.check_interval": true,

	"events.queue": true, "events.max_age": true, "events.retry_max_interval": true, "events.messages": true,
	"events.webhook.url": true, "events.webhook.secret": true, "events.webhook.timeout": true, "events.webhook.retries": true,
	"events.channels.push": true, "events.channels.login": true, "events.channels.logout": true, "events.channels.message": true,
	"events.stream.key": true, "events.stream.maxlen": true,

	"web.enabled": true, "web.dev_login": true, "web.mqtt_url": true,

	"listeners.websocket.allowed_origins": true,

	"log.level": true,
}

// SetConfigFile tells the broker the file ReloadConfig reads (the
// --config of `inboxmq run`).
func (b *Broker) SetConfigFile(path string) { b.configFile.Store(&path) }

// ReloadConfig reads the config file again (with the environment, as at
// start) and applies it: Reload. SIGHUP and the admin API call it.
func (b *Broker) ReloadConfig() (ReloadReport, error) {
	path := b.configFile.Load()
	if path == nil {
		return ReloadReport{}, ErrNoConfigFile
	}
	next, err := LoadConfig(*path)
	if err != nil {
		b.logReload(ReloadReport{Config: *path}, err)
		return ReloadReport{Config: *path}, err
	}
	rep, err := b.reload(next)
	rep.Config = *path
	b.logReload(rep, err)
	return rep, err
}

// Reload applies cfg to the running broker (see ReloadConfig) and logs
// what it did.
func (b *Broker) Reload(cfg Config) (ReloadReport, error) {
	rep, err := b.reload(cfg)
	b.logReload(rep, err)
	return rep, err
}

// logReload logs a reload's outcome: what was applied, then every key
// that needs a restart in one line, then the notices, each time.
func (b *Broker) logReload(rep ReloadReport, err error) {
	if err != nil {
		b.log.Error("configuration not reloaded; the running configuration stays", "config", rep.Config, "error", err)
		return
	}
	b.log.Info("configuration reloaded", "config", rep.Config, "applied", strings.Join(rep.Applied, ", "))
	if len(rep.Restart) > 0 {
		b.log.Warn("configuration changes not applied: they need a restart", "keys", strings.Join(rep.Restart, ", "))
	}
	for _, n := range rep.Notices {
		b.log.Warn("configuration notice: " + n)
	}
}

// reload is Reload without the log.
func (b *Broker) reload(next Config) (ReloadReport, error) {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	select {
	case <-b.stop: // Close holds reloadMu to close it: nothing starts after
		return ReloadReport{}, errShuttingDown
	default:
	}
	if err := next.Validate(); err != nil {
		return ReloadReport{}, err
	}
	cur := *b.live.Load()
	var rep ReloadReport
	for _, p := range changedKeys(cur, next) {
		if b.canApply(p) {
			rep.Applied = append(rep.Applied, p)
		} else {
			rep.Restart = append(rep.Restart, p)
		}
	}
	run := cur // what runs after this reload: cur with the applied keys of next
	for _, p := range rep.Applied {
		setValueAt(reflect.ValueOf(&run).Elem(), p, valueAt(reflect.ValueOf(next), p))
	}
	changed := func(prefixes ...string) bool {
		return slices.ContainsFunc(rep.Applied, func(p string) bool {
			return slices.ContainsFunc(prefixes, func(pre string) bool { return strings.HasPrefix(p, pre) })
		})
	}

	// First what can fail, so that a failure changes nothing. Accounts
	// cost a bcrypt hash to build: only when they may have changed.
	authChanged := changed("auth.")
	var creds access.Credentials
	var err error
	if authChanged {
		if creds, err = run.credentials(); err != nil {
			return ReloadReport{}, err
		}
	}
	// events.messages is read at each message; the rest makes a new outbox.
	outboxChanged := slices.ContainsFunc(rep.Applied, func(p string) bool {
		return strings.HasPrefix(p, "events.") && p != "events.messages"
	})
	var outbox *events.Outbox
	if outboxChanged {
		if outbox, err = b.newOutbox(run.Events); err != nil {
			return ReloadReport{}, err
		}
	}
	level, err := parseLevel(run.Log.Level)
	if err != nil {
		return ReloadReport{}, err
	}

	// Then apply, part by part.
	if authChanged {
		b.access.SetCredentials(creds)
		b.access.SetAllowAnonymous(run.Auth.Anonymous)
		b.delivery.SetTokenLeeway(run.Auth.TokenLeeway)
	}
	l := run.Limits
	b.access.SetMaxSubscriptions(l.MaxSubscriptions)
	if changed("limits.message_") {
		b.delivery.SetMessageRate(l.MessageRate, l.MessageBurst, l.MessageWait)
	}
	if changed("limits.connect_timeout", "limits.connections_per_ip") {
		for _, ln := range b.limited {
			ln.setLimits(l.ConnectTimeout, l.ConnectionsPerIP)
		}
	}
	b.service.SetRules(messaging.Rules{DeleteWindow: run.Inbox.DeleteWindow, EditWindow: run.Inbox.EditWindow,
		MaxBlocks: l.MaxBlocks, EmitMessages: run.Events.Messages})
	if outboxChanged {
		b.swapOutbox(outbox)
	}
	if changed("push.") || outboxChanged {
		b.service.SetPush(b.pushOptions(run.Push))
	}
	if changed("web.") {
		b.web.set(b.webHandler(run.Web))
	}
	if b.ws != nil {
		b.ws.setOrigins(run.Listeners.WebSocket.AllowedOrigins)
	}
	if b.level != nil {
		b.level.Set(level)
	}
	b.live.Store(&run) // the expiry loop reads retention and its interval from here
	rep.Notices = append(b.reloadCertificates(), standingNotices(run)...)
	if run.Push.After > 0 && b.emitter.outbox.Load() == nil {
		rep.Notices = append(rep.Notices, "push.after is set but push events are off: no events sink is configured (events.webhook or redis)")
	}
	return rep, nil
}

// canApply reports whether a change to the key at path takes effect
// without a restart.
func (b *Broker) canApply(path string) bool {
	if path == "log.level" {
		return b.level != nil // a logger not made by NewLogger has a fixed level
	}
	return reloadable[path]
}

// swapOutbox puts o (nil: no sink) in place of the running outbox, which
// then stores what it was given and stops in the background: its events
// wait in the store, where the new outbox's sinks of the same name find
// them. An event emitted while the old one closes may be dropped (and
// counted as dropped).
func (b *Broker) swapOutbox(o *events.Outbox) {
	old := b.emitter.outbox.Swap(o)
	if o != nil {
		b.metrics.watchEvents(o)
	}
	if old == nil {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := old.Close(ctx); err != nil {
			b.log.Warn("events: the replaced outbox did not finish its attempts; they are retried", "error", err)
		}
	}()
}

// standingNotices are the warnings about cfg that every reload repeats,
// as they hold for as long as cfg runs.
func standingNotices(cfg Config) []string {
	var out []string
	if cfg.Web.Enabled && cfg.Web.DevLogin {
		out = append(out, "web.dev_login is on: anyone who can reach the web page can log in as anyone (development only)")
	}
	if cfg.Auth.Anonymous {
		out = append(out, "auth.anonymous is on: clients without credentials may connect (anonymous ACL rules only)")
	}
	if cfg.Listeners.Admin.Pprof {
		out = append(out, "listeners.admin.pprof is on: profiles are served on the admin listener; keep it private")
	}
	return out
}

// changedKeys lists, in order, the paths of the keys whose values differ
// between old and next.
func changedKeys(old, next Config) []string {
	keys := configKeys(reflect.TypeFor[Config](), "", map[string]reflect.Type{})
	paths := make([]string, 0, len(keys))
	for p := range keys {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var out []string
	for _, p := range paths {
		if !reflect.DeepEqual(valueAt(reflect.ValueOf(old), p).Interface(), valueAt(reflect.ValueOf(next), p).Interface()) {
			out = append(out, p)
		}
	}
	return out
}

// valueAt is the field of the key at path in v, a Config (addressable
// when v is).
func valueAt(v reflect.Value, path string) reflect.Value {
	for _, name := range strings.Split(path, ".") {
		t := v.Type()
		found := false
		for i := range t.NumField() {
			if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			panic(fmt.Sprintf("config: no key %q", path)) // paths come from configKeys
		}
	}
	return v
}

// setValueAt sets the key at path in v, an addressable Config, to x.
func setValueAt(v reflect.Value, path string, x reflect.Value) {
	valueAt(v, path).Set(x)
}

// apiReload is ReloadConfig for the admin API (api.Options.Reload).
func (b *Broker) apiReload() (api.ReloadResult, error) {
	rep, err := b.ReloadConfig()
	if errors.Is(err, ErrNoConfigFile) {
		return api.ReloadResult{}, api.ErrNoConfigFile
	}
	return api.ReloadResult{Config: rep.Config, Applied: rep.Applied, Restart: rep.Restart, Notices: rep.Notices}, err
}
