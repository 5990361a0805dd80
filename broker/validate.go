package broker

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	pebblestore "github.com/inboxmq/inboxmq/inbox/pebble"
)

// Validate reports every problem in the configuration at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.NodeID < 0 || c.NodeID > 1023 {
		bad("node_id must be 0..1023, got %d", c.NodeID)
	}
	switch c.Store {
	case "embedded":
		if c.DataDir == "" {
			bad("data_dir is required with store: embedded")
		}
	case "redis":
		if len(c.Redis.Addresses) == 0 {
			bad("redis.addresses is required with store: redis")
		}
		if strings.ContainsAny(c.Redis.Prefix, "{}") {
			bad("redis.prefix must not contain { or }")
		}
		if c.Redis.DialTimeout <= 0 || c.Redis.Timeout <= 0 {
			bad("redis.dial_timeout and redis.timeout must be positive")
		}
	default:
		bad("store must be embedded or redis, got %q", c.Store)
	}
	if t := c.Redis.TLS; !t.Enabled && t != (RedisTLSConfig{}) {
		bad("redis.tls: set enabled: true to use its other keys")
	} else if (t.CertFile == "") != (t.KeyFile == "") {
		bad("redis.tls needs both cert_file and key_file, or neither")
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level: %w", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format must be text or json, got %q", c.Log.Format)
	}
	if c.Listeners.MQTT.Address == "" && c.Listeners.WebSocket.Address == "" {
		bad("listeners: at least one of mqtt and websocket needs an address")
	}
	for name, t := range map[string]TLSConfig{"mqtt": c.Listeners.MQTT.TLS, "websocket": c.Listeners.WebSocket.TLS, "http": c.Listeners.HTTP.TLS, "admin": c.Listeners.Admin.TLS} {
		if t.Enabled() && (t.Cert == "" || t.Key == "") {
			bad("listeners.%s.tls needs both cert and key", name)
		}
		if (t.ClientCA != "" || t.RequireClientCert) && !t.Enabled() {
			bad("listeners.%s.tls.client_ca and require_client_cert need a cert and key", name)
		}
		if t.RequireClientCert && t.ClientCA == "" {
			bad("listeners.%s.tls.require_client_cert needs client_ca (the CAs client certificates must chain to)", name)
		}
	}
	c.validateProxies(bad)
	c.validateAddresses(bad)
	if c.Listeners.WebSocket.Address != "" && !strings.HasPrefix(c.Listeners.WebSocket.Path, "/") {
		bad("listeners.websocket.path must start with /, got %q", c.Listeners.WebSocket.Path)
	}
	if c.Auth.JWTSecret == "" && len(c.Auth.Accounts) == 0 && !c.Auth.Anonymous {
		bad("auth: nobody can log in: set auth.jwt_secret (or %s), auth.accounts or auth.anonymous", SecretEnv)
	}
	if c.Auth.JWTSecret != "" && len(c.Auth.JWTSecret) < 32 {
		bad("auth.jwt_secret must be at least 32 bytes")
	}
	if c.Auth.TokenLeeway < 0 || c.Auth.TokenLeeway > 30*time.Second {
		bad("auth.token_leeway must be 0..30s, got %s", c.Auth.TokenLeeway)
	}
	if _, err := c.accounts(); err != nil {
		bad("auth.accounts: %w", err)
	}
	if _, err := c.policy(); err != nil {
		bad("acl: %w", err)
	}
	if c.Inbox.Retention < time.Second {
		bad("inbox.retention must be at least 1s, got %s", c.Inbox.Retention)
	}
	if c.Inbox.MaxMessages < 1 {
		bad("inbox.max_messages must be at least 1")
	}
	if c.Inbox.MaxMessageBytes < 1 || c.Inbox.MaxMessageBytes > 1<<20 {
		bad("inbox.max_message_bytes must be 1..1048576")
	}
	if c.Inbox.DedupeWindow < time.Second || c.Inbox.DedupeWindow > 24*time.Hour {
		bad("inbox.dedupe_window must be 1s..24h, got %s", c.Inbox.DedupeWindow)
	}
	if c.Inbox.DeleteWindow < 0 {
		bad("inbox.delete_window must be 0 (no limit) or positive, got %s", c.Inbox.DeleteWindow)
	}
	if c.Inbox.EditWindow < 0 {
		bad("inbox.edit_window must be 0 (no editing) or positive, got %s", c.Inbox.EditWindow)
	}
	if c.Inbox.DedupePerInbox < 1 || c.Inbox.DedupePerInbox > 100000 {
		bad("inbox.dedupe_per_inbox must be 1..100000")
	}
	if c.Inbox.DeliveryWindow < 1 || c.Inbox.DeliveryWindow > 1000 {
		bad("inbox.delivery_window must be 1..1000")
	}
	if c.Inbox.ExpireInterval < time.Second {
		bad("inbox.expire_interval must be at least 1s")
	}
	if c.Push.After < 0 || (c.Push.After > 0 && c.Push.CheckInterval < 10*time.Millisecond) {
		bad("push.after must not be negative, and push.check_interval must be at least 10ms")
	}
	if c.Events.Queue < 1 {
		bad("events.queue must be at least 1")
	}
	if c.Events.MaxAge < time.Second || c.Events.RetryMaxInterval < time.Second {
		bad("events.max_age and events.retry_max_interval must be at least 1s")
	}
	if c.Events.Stream.Key != "" && (len(c.Redis.Addresses) == 0 || c.Events.Stream.MaxLen < 1) {
		bad("events.stream needs redis.addresses and a positive maxlen")
	}
	if w := c.Events.Webhook; w.URL != "" {
		if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
			bad("events.webhook.url must be http(s), got %q", w.URL)
		}
		if len(w.Secret) < 16 {
			bad("events.webhook.secret (or %s) must be at least 16 bytes: receivers verify the signature", WebhookSecretEnv)
		}
		if w.Timeout <= 0 {
			bad("events.webhook.timeout must be positive")
		}
	}
	l := c.Limits
	if l.ConnectTimeout < time.Second || l.ConnectTimeout > 5*time.Minute {
		bad("limits.connect_timeout must be 1s..5m, got %s", l.ConnectTimeout)
	}
	if l.ConnectionsPerIP < 0 || l.MessageRate < 0 {
		bad("limits.connections_per_ip and limits.message_rate must not be negative (0 disables)")
	}
	if l.HTTPConnectionsPerIP < 0 || l.HTTPRequestsPerIP < 0 || l.HTTPTimeout < time.Second {
		bad("limits.http_connections_per_ip and http_requests_per_ip must not be negative, http_timeout at least 1s")
	}
	if l.MaxSessionsPerAccount < 0 {
		bad("limits.max_sessions_per_account must not be negative")
	}
	if l.MaxBlocks < 0 {
		bad("limits.max_blocks must not be negative")
	}
	if l.WriteTimeout < time.Second {
		bad("limits.write_timeout must be at least 1s, got %s", l.WriteTimeout)
	}
	if l.MaxClientID < 23 || l.MaxClientID > 65535 {
		bad("limits.max_client_id must be 23..65535 (MQTT lets every client use 23), got %d", l.MaxClientID)
	}
	if l.MessageWait < 0 || l.MessageWait > time.Minute {
		bad("limits.message_wait must be 0..1m, got %s", l.MessageWait)
	}
	if l.MessageRate > 0 && l.MessageBurst < 1 {
		bad("limits.message_burst must be at least 1 when limits.message_rate is set")
	}
	if l.MaxSubscriptions < 2 {
		bad("limits.max_subscriptions must be at least 2 (inbox and broadcast)")
	}
	m := c.MQTT
	if m.MaximumClients < 1 {
		bad("mqtt.maximum_clients must be at least 1 (0 refuses every client)")
	}
	if m.MaximumClientWritesPending < 1 {
		bad("mqtt.maximum_client_writes_pending must be at least 1")
	}
	if m.MaximumPacketSize < 0 || m.MaximumPacketSize > maxMQTTPacket {
		bad("mqtt.maximum_packet_size must be 0 (no limit) up to %d (MQTT's largest packet), got %d", maxMQTTPacket, m.MaximumPacketSize)
	}
	if m.MaximumPacketSize != 0 && m.MaximumPacketSize < 2*c.Inbox.MaxMessageBytes+4096 {
		bad("mqtt.maximum_packet_size (%d) must leave room for inbox.max_message_bytes (%d): at least %d",
			m.MaximumPacketSize, c.Inbox.MaxMessageBytes, 2*c.Inbox.MaxMessageBytes+4096)
	}
	if m.ReceiveMaximum < 1 || m.MaximumInflight < 1 {
		bad("mqtt.receive_maximum and mqtt.maximum_inflight must be at least 1")
	}
	if m.MinimumProtocolVersion < 3 || m.MinimumProtocolVersion > 5 {
		bad("mqtt.minimum_protocol_version must be 3, 4 or 5")
	}
	if m.MaximumQos < 1 || m.MaximumQos > 2 {
		bad("mqtt.maximum_qos must be 1 or 2 (inbox delivery needs QoS 1)")
	}
	for _, s := range []struct {
		key      string
		d, least time.Duration
		most     int64 // seconds
	}{
		{"maximum_session_expiry_interval", m.MaximumSessionExpiryInterval, time.Second, math.MaxUint32},
		{"maximum_message_expiry_interval", m.MaximumMessageExpiryInterval, 0, math.MaxInt64},
		{"maximum_keepalive", m.MaximumKeepalive, 0, math.MaxUint16},
		{"sys_topic_interval", m.SysTopicInterval, time.Second, math.MaxInt64},
	} {
		if err := wholeSeconds(s.d, s.least, s.most); err != nil {
			bad("mqtt.%s: %v", s.key, err)
		}
	}
	if m.ClientNetReadBufferSize < 16 || m.ClientNetReadBufferSize > 1<<20 {
		bad("mqtt.client_net_read_buffer_size must be 16..1048576, got %d", m.ClientNetReadBufferSize)
	}
	if m.ClientNetWriteBufferSize < 16 || m.ClientNetWriteBufferSize > 1<<20 {
		bad("mqtt.client_net_write_buffer_size must be 16..1048576, got %d", m.ClientNetWriteBufferSize)
	}
	if err := validateRuntime(c.Runtime); err != nil {
		errs = append(errs, err)
	}
	if c.EmbeddedMemtableSize < 1<<20 || c.EmbeddedMemtableSize > 1<<30 {
		bad("embedded_memtable_size must be 1MiB..1GiB, got %d", c.EmbeddedMemtableSize)
	}
	if c.EmbeddedWALSyncInterval < 0 || c.EmbeddedWALSyncInterval > pebblestore.MaxWALSyncInterval {
		bad("embedded_wal_sync_interval must be 0..%s, got %s", pebblestore.MaxWALSyncInterval, c.EmbeddedWALSyncInterval)
	}
	return errors.Join(errs...)
}

// maxMQTTPacket is the largest packet MQTT can express (a 4-byte
// remaining length, 256 MB).
const maxMQTTPacket = 268435455

// wholeSeconds checks an mqtt.* interval: MQTT and mochi count them in
// whole seconds, so 1500ms would be cut silently.
func wholeSeconds(d, least time.Duration, most int64) error {
	switch {
	case d < least:
		return fmt.Errorf("must be at least %s, got %s", least, d)
	case d%time.Second != 0:
		return fmt.Errorf("MQTT counts it in whole seconds, got %s", d)
	case most < math.MaxInt64 && int64(d/time.Second) > most:
		return fmt.Errorf("must be at most %ds, got %s", most, d)
	}
	return nil
}
