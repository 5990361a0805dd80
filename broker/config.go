package broker

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/hooks/access"
	"github.com/inboxmq/inboxmq/inbox"
	pebblestore "github.com/inboxmq/inboxmq/inbox/pebble"
)

// SecretEnv overrides auth.jwt_secret from the config file.
const SecretEnv = "INBOXMQ_JWT_SECRET"

// NodeIDEnv is node_id's environment variable (EnvPrefix and the key, as
// for every key), named here because deployments depend on it: nodes
// sharing one config file (a Kubernetes StatefulSet, compose services)
// each get their own id, e.g. from the pod's index.
const NodeIDEnv = "INBOXMQ_NODE_ID"

// Config is the whole broker configuration, read from one YAML file.
// Defaults live in DefaultConfig; Validate checks a filled-in Config.
type Config struct {
	NodeID  int    `yaml:"node_id"`
	DataDir string `yaml:"data_dir"`
	// EmbeddedMemtableSize is the embedded store's memtable size. Pebble
	// keeps up to two in memory: budget twice this in RSS under write load.
	EmbeddedMemtableSize ByteSize `yaml:"embedded_memtable_size"`
	// EmbeddedWALSyncInterval is the least time between two fsyncs of the
	// embedded store's write-ahead log (pebblestore.Tuning).
	EmbeddedWALSyncInterval time.Duration   `yaml:"embedded_wal_sync_interval"`
	Store                   string          `yaml:"store"` // embedded or redis
	Redis                   RedisConfig     `yaml:"redis"`
	Log                     LogConfig       `yaml:"log"`
	Listeners               ListenersConfig `yaml:"listeners"`
	Auth                    AuthConfig      `yaml:"auth"`
	ACL                     ACLConfig       `yaml:"acl"`
	Inbox                   InboxConfig     `yaml:"inbox"`
	Limits                  LimitsConfig    `yaml:"limits"`
	Push                    PushConfig      `yaml:"push"`
	Events                  EventsConfig    `yaml:"events"`
	MQTT                    MQTTConfig      `yaml:"mqtt"`
	Web                     WebConfig       `yaml:"web"`
	Runtime                 RuntimeConfig   `yaml:"runtime"` // the Go runtime's memory (goruntime.go)
}

// ByteSize is a size in bytes, written in YAML as a plain number of bytes
// or as a number with a unit, case-insensitive: KB, MB, GB, TB (1000-based)
// or KiB, MiB, GiB, TiB (1024-based), with or without a space.
type ByteSize int64

// parseByteSize reads a size with github.com/dustin/go-humanize, which
// knows both the decimal and the binary units; the error quotes s as
// given.
func parseByteSize(s string) (ByteSize, error) {
	v, err := humanize.ParseBytes(strings.TrimSpace(s))
	if err != nil || v > math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: want bytes, or a number with a unit: 512, 64KB, 64MB, 1GB, 64KiB, 64MiB, 1GiB", s)
	}
	return ByteSize(v), nil
}

// PushConfig configures the push fallback: a "push" event for a message
// that no device of its recipient acknowledged in time.
type PushConfig struct {
	After         time.Duration `yaml:"after"` // 0 disables
	CheckInterval time.Duration `yaml:"check_interval"`
}

// EventsConfig sends events to the app's back-end and takes its notices.
type EventsConfig struct {
	// Queue bounds the events waiting in memory to be stored (only while
	// the store is unreachable); beyond it new events are dropped.
	Queue int `yaml:"queue"`
	// MaxAge is how long an undelivered event is retried before it is
	// given up; RetryMaxInterval caps the backoff between attempts.
	MaxAge           time.Duration  `yaml:"max_age"`
	RetryMaxInterval time.Duration  `yaml:"retry_max_interval"`
	Webhook          WebhookConfig  `yaml:"webhook"`
	Channels         ChannelsConfig `yaml:"channels"`
	Stream           StreamConfig   `yaml:"stream"`
	// Messages emits a "message" event for every direct message (audit,
	// moderation); off by default.
	Messages bool `yaml:"messages"`
	// NotificationChannel is the Redis channel of notices from the
	// back-end (legacy shape {"toWho":[...],"needStore":...}); "" disables.
	NotificationChannel string `yaml:"notification_channel"`
}

// WebhookConfig posts events to an HTTP endpoint, signed with HMAC-SHA256.
type WebhookConfig struct {
	URL string `yaml:"url"` // "" disables
	// Secret signs the body (X-Inboxmq-Signature); INBOXMQ_WEBHOOK_SECRET overrides it.
	Secret  string        `yaml:"secret"`
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
}

// StreamConfig appends every event to a Redis Stream (needs redis.addresses).
type StreamConfig struct {
	Key    string `yaml:"key"`    // "" disables
	MaxLen int64  `yaml:"maxlen"` // XADD MAXLEN ~
}

// WebhookSecretEnv overrides events.webhook.secret.
const WebhookSecretEnv = "INBOXMQ_WEBHOOK_SECRET"

// ChannelsConfig names the Redis channel of each event type ("" = not published).
type ChannelsConfig struct {
	Push    string `yaml:"push"`
	Login   string `yaml:"login"`
	Logout  string `yaml:"logout"`
	Message string `yaml:"message"`
}

// LimitsConfig protects the broker and its users from floods.
type LimitsConfig struct {
	// ConnectTimeout is how long a new connection may take to send CONNECT.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ConnectionsPerIP is new connections per second per remote IP (burst
	// twice that); 0 disables the limit.
	ConnectionsPerIP float64 `yaml:"connections_per_ip"`
	// MessageRate and MessageBurst bound the publishes per second of each
	// user account (a token bucket); admin and service accounts are exempt.
	// 0 disables the limit.
	MessageRate  float64 `yaml:"message_rate"`
	MessageBurst int     `yaml:"message_burst"`
	// MessageWait is how long a publish over the rate may wait for its
	// token (the connection's reads pause meanwhile); one that would wait
	// longer is refused (MQTT 5: PUBACK 0x97; 3.1.1: connection closed
	// without a PUBACK, so the client resends). 0: refuse at once.
	MessageWait time.Duration `yaml:"message_wait"`
	// MaxSubscriptions is the most subscriptions one client may hold.
	MaxSubscriptions int `yaml:"max_subscriptions"`
	// MaxClientID is the longest client id accepted, in bytes.
	MaxClientID int `yaml:"max_client_id"`
	// MaxSessionsPerAccount caps the persistent sessions one account
	// keeps per node (0: no cap); past it those disconnected longest ago end.
	MaxSessionsPerAccount int `yaml:"max_sessions_per_account"`
	// MaxBlocks caps the uids one user may block (im/block, PUT
	// /api/v1/blocks/{uid}); 0: no cap.
	MaxBlocks int `yaml:"max_blocks"`
	// WriteTimeout bounds a delivery write: a client that stops reading
	// is disconnected after it.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// The HTTP listener: connections one address may hold open (0: no
	// cap), requests per second per address (burst twice that; 0: none),
	// and the bound on reading a request and writing its answer.
	HTTPConnectionsPerIP int           `yaml:"http_connections_per_ip"`
	HTTPRequestsPerIP    float64       `yaml:"http_requests_per_ip"`
	HTTPTimeout          time.Duration `yaml:"http_timeout"`
}

// RedisConfig reaches the Redis that nodes share when store is redis.
type RedisConfig struct {
	// Addresses: one for a single instance (or with MasterName, the
	// Sentinels); several, or Cluster true, for a Redis Cluster.
	Addresses  []string `yaml:"addresses"`
	Cluster    bool     `yaml:"cluster"`
	MasterName string   `yaml:"master_name"`
	Username   string   `yaml:"username"`
	// Password; INBOXMQ_REDIS_PASSWORD overrides it.
	Password    string        `yaml:"password"`
	DB          int           `yaml:"db"`
	Prefix      string        `yaml:"prefix"`
	DialTimeout time.Duration `yaml:"dial_timeout"`
	Timeout     time.Duration `yaml:"timeout"`
	// TLS encrypts the connections to Redis (managed services require it).
	TLS RedisTLSConfig `yaml:"tls"`
}

// RedisTLSConfig is TLS to Redis. The files are read at start.
type RedisTLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs the server's certificate must
	// chain to; "" trusts the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, for a server that
	// asks for one (redis-server's tls-auth-clients).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server's certificate must carry; ""
	// takes the host of each address.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate, so anyone on the
	// path can read and change the traffic: for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// RedisPasswordEnv overrides redis.password.
const RedisPasswordEnv = "INBOXMQ_REDIS_PASSWORD"

// LogConfig sets the log output.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// ListenersConfig lists the network listeners. An empty address disables one.
type ListenersConfig struct {
	MQTT      ListenerConfig  `yaml:"mqtt"`
	WebSocket WebSocketConfig `yaml:"websocket"`
	HTTP      ListenerConfig  `yaml:"http"`  // public: user API, health, web page
	Admin     AdminConfig     `yaml:"admin"` // private: metrics, admin API (config_listeners.go)
	// ProxyProtocol takes the client's address from a PROXY protocol
	// header on the mqtt and websocket listeners (a TCP load balancer).
	ProxyProtocol ProxyProtocolConfig `yaml:"proxy_protocol"`
	// TrustedProxies are the addresses (IPs or CIDRs) whose
	// X-Forwarded-For or X-Real-IP header is believed, on the http and
	// websocket listeners (an HTTP reverse proxy); empty believes none.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// ListenerConfig is one address with optional TLS.
type ListenerConfig struct {
	Address string    `yaml:"address"`
	TLS     TLSConfig `yaml:"tls"`
}

// WebSocketConfig is the MQTT-over-WebSocket listener.
type WebSocketConfig struct {
	Address string    `yaml:"address"`
	Path    string    `yaml:"path"`
	TLS     TLSConfig `yaml:"tls"`
	// AllowedOrigins restricts browser Origins; empty allows any.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// TLSConfig names a certificate and key; both empty means plain TCP.
// The files are read again on SIGHUP and when they change on disk (see
// internal/certwatch); new connections get the new certificate.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA is a PEM bundle of CAs that client certificates must chain
	// to; "" asks for none. RequireClientCert refuses a client that
	// presents none (it needs ClientCA). A client certificate secures the
	// transport only: the MQTT login is still required.
	ClientCA          string `yaml:"client_ca"`
	RequireClientCert bool   `yaml:"require_client_cert"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.Cert != "" || t.Key != "" }

// AuthConfig configures authentication.
type AuthConfig struct {
	// JWTSecret signs and verifies access tokens (HS256); INBOXMQ_JWT_SECRET overrides it.
	JWTSecret   string          `yaml:"jwt_secret"`
	TokenLeeway time.Duration   `yaml:"token_leeway"`
	Accounts    []AccountConfig `yaml:"accounts"`
	Anonymous   bool            `yaml:"anonymous"`
}

// AccountConfig is a static account for operators and back-end services.
type AccountConfig struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password_hash"`
	Role         string `yaml:"role"`
}

// ACLConfig opens extra topics with mosquitto-style rules.
type ACLConfig struct {
	Rules          []string `yaml:"rules"`
	AnonymousRules []string `yaml:"anonymous_rules"`
}

// InboxConfig configures the inbox log and delivery.
type InboxConfig struct {
	Retention       time.Duration `yaml:"retention"`
	MaxMessages     int           `yaml:"max_messages"`
	MaxMessageBytes ByteSize      `yaml:"max_message_bytes"`
	DeliveryWindow  int           `yaml:"delivery_window"`
	SingleLogin     bool          `yaml:"single_login"`
	ExpireInterval  time.Duration `yaml:"expire_interval"`
	// DedupeWindow and DedupePerInbox bound the records that make a
	// resent request (same cid) harmless: how long, and how many per
	// recipient inbox.
	DedupeWindow   time.Duration `yaml:"dedupe_window"`
	DedupePerInbox int           `yaml:"dedupe_per_inbox"`
	// DeleteWindow is how long after sending a sender may still delete
	// (recall) a message; 0: no limit, as the legacy server had none.
	DeleteWindow time.Duration `yaml:"delete_window"`
	// EditWindow is how long after sending a sender may edit a message;
	// 0 turns editing off.
	EditWindow time.Duration `yaml:"edit_window"`
}

// MQTTConfig is every mochi capability, given explicitly: mochi takes its
// Capabilities as one struct, so a partial block would leave the other
// capabilities at zero instead of at mochi's defaults.
//
// The intervals are durations like every other key ("60s", "2h", "7d"),
// which mochi and MQTT count in whole seconds; the sizes are ByteSizes.
type MQTTConfig struct {
	MaximumClients               int64         `yaml:"maximum_clients"`
	MaximumMessageExpiryInterval time.Duration `yaml:"maximum_message_expiry_interval"`
	MaximumClientWritesPending   int32         `yaml:"maximum_client_writes_pending"`
	MaximumSessionExpiryInterval time.Duration `yaml:"maximum_session_expiry_interval"`
	// MaximumKeepalive caps a client's keep alive; 0: no cap
	// (see access.Options.MaximumKeepalive).
	MaximumKeepalive       time.Duration `yaml:"maximum_keepalive"`
	MaximumPacketSize      ByteSize      `yaml:"maximum_packet_size"`
	ReceiveMaximum         uint16        `yaml:"receive_maximum"`
	MaximumInflight        uint16        `yaml:"maximum_inflight"`
	TopicAliasMaximum      uint16        `yaml:"topic_alias_maximum"`
	SharedSubAvailable     bool          `yaml:"shared_sub_available"`
	MinimumProtocolVersion byte          `yaml:"minimum_protocol_version"`
	MaximumQos             byte          `yaml:"maximum_qos"`
	RetainAvailable        bool          `yaml:"retain_available"`
	WildcardSubAvailable   bool          `yaml:"wildcard_sub_available"`
	SubIDAvailable         bool          `yaml:"sub_id_available"`
	SysTopicInterval       time.Duration `yaml:"sys_topic_interval"`
	// ClientNetReadBufferSize is the bufio.Reader mochi allocates for every
	// connection (mochi's default is 2048); packets larger than the buffer
	// are read straight into the packet.
	ClientNetReadBufferSize ByteSize `yaml:"client_net_read_buffer_size"`
	// ClientNetWriteBufferSize is how many bytes of queued outbound packets
	// mochi gathers into one write; it is allocated only while packets are
	// queued, so it costs an idle connection nothing.
	ClientNetWriteBufferSize ByteSize `yaml:"client_net_write_buffer_size"`
}

// storeTimeout bounds one store call made on a client's behalf.
func (c Config) storeTimeout() time.Duration {
	if c.Store == "redis" {
		return c.Redis.Timeout
	}
	return 5 * time.Second
}

// DefaultConfig returns the defaults: the one place they are written.
func DefaultConfig() Config {
	return Config{
		DataDir:              "data",
		EmbeddedMemtableSize: pebblestore.DefaultMemTableSize,
		// A millisecond: docs/performance.md, round six.
		EmbeddedWALSyncInterval: time.Millisecond,
		Store:                   "embedded",
		Redis: RedisConfig{
			Prefix:      "inboxmq:",
			DialTimeout: 2 * time.Second,
			Timeout:     2 * time.Second,
		},
		Log: LogConfig{Level: "info", Format: "text"},
		Listeners: ListenersConfig{
			MQTT:          ListenerConfig{Address: ":1883"},
			WebSocket:     WebSocketConfig{Address: ":8083", Path: "/mqtt"},
			HTTP:          ListenerConfig{Address: ":8080"},
			Admin:         AdminConfig{Address: "127.0.0.1:9090"},
			ProxyProtocol: ProxyProtocolConfig{HeaderTimeout: 5 * time.Second},
		},
		Auth: AuthConfig{TokenLeeway: 5 * time.Second},
		Inbox: InboxConfig{
			Retention:       7 * 24 * time.Hour,
			MaxMessages:     10000,
			MaxMessageBytes: 64 << 10,
			DeliveryWindow:  64,
			SingleLogin:     true,
			ExpireInterval:  time.Minute,
			DedupeWindow:    inbox.DefaultDedupeWindow,
			DedupePerInbox:  inbox.DefaultDedupePerInbox,
			EditWindow:      24 * time.Hour,
		},
		Limits: LimitsConfig{
			ConnectTimeout:        10 * time.Second,
			ConnectionsPerIP:      50,
			MessageRate:           20,
			MessageBurst:          40,
			MessageWait:           10 * time.Second,
			MaxSubscriptions:      100,
			MaxClientID:           128,
			MaxSessionsPerAccount: 10,
			MaxBlocks:             1000,
			WriteTimeout:          10 * time.Second,
			HTTPConnectionsPerIP:  64,
			HTTPRequestsPerIP:     50,
			HTTPTimeout:           15 * time.Second,
		},
		Push:    PushConfig{After: 2 * time.Minute, CheckInterval: time.Second},
		Runtime: RuntimeConfig{GOGC: DefaultGOGC},
		Events: EventsConfig{
			Queue:            10000,
			MaxAge:           24 * time.Hour,
			RetryMaxInterval: 5 * time.Minute,
			Stream:           StreamConfig{MaxLen: 100000},
			Webhook:          WebhookConfig{Timeout: 5 * time.Second, Retries: 3},
			Channels: ChannelsConfig{
				Push:   "chat_message_channel",
				Login:  "login_message_channel",
				Logout: "login_message_channel",
			},
			NotificationChannel: "notification",
		},
		MQTT: MQTTConfig{
			MaximumClients:               math.MaxInt64,
			MaximumMessageExpiryInterval: 0, // as the publisher says (MQTT 5 3.3.2.3.3): no interval, no expiry
			// The channel costs 8 bytes per slot on every connection
			// (mochi's default 8192: 64 KB). Only non-inbox messages
			// (broadcasts, opened topics) use it: inbox messages are
			// written directly, paced from the log. When it is full
			// mochi drops the message for that client, so it must hold
			// a burst of broadcasts while the client's write loop catches
			// up; see docs/performance.md for why not lower than 64.
			MaximumClientWritesPending:   64,
			MaximumSessionExpiryInterval: 7 * 24 * time.Hour,
			MaximumPacketSize:            256 << 10,
			ReceiveMaximum:               1024,
			MaximumInflight:              8192,
			TopicAliasMaximum:            65535,
			SharedSubAvailable:           true,
			MinimumProtocolVersion:       3,
			MaximumQos:                   2,
			RetainAvailable:              true,
			WildcardSubAvailable:         true,
			SubIDAvailable:               true,
			SysTopicInterval:             10 * time.Second,
			// 2048 is mochi's default; 512 holds any ordinary request
			// and saves 1.5 KB per connection.
			ClientNetReadBufferSize:  512,
			ClientNetWriteBufferSize: 2048,
		},
	}
}

// credentials builds the token verifier and static accounts.
func (c Config) credentials() (access.Credentials, error) {
	accounts, err := c.accounts()
	if err != nil {
		return access.Credentials{}, fmt.Errorf("accounts: %w", err)
	}
	out := access.Credentials{Accounts: accounts}
	if c.Auth.JWTSecret != "" {
		out.Tokens, err = auth.NewTokens([]byte(c.Auth.JWTSecret), auth.WithLeeway(c.Auth.TokenLeeway))
		if err != nil {
			return access.Credentials{}, fmt.Errorf("tokens: %w", err)
		}
	}
	return out, nil
}

func (c Config) accounts() (*auth.Accounts, error) {
	list := make([]auth.Account, 0, len(c.Auth.Accounts))
	for _, a := range c.Auth.Accounts {
		list = append(list, auth.Account{Name: a.Name, PasswordHash: a.PasswordHash, Role: acl.Role(a.Role)})
	}
	return auth.NewAccounts(list)
}

func (c Config) policy() (*acl.Policy, error) {
	parse := func(lines []string) ([]acl.Rule, error) {
		rules := make([]acl.Rule, 0, len(lines))
		for _, l := range lines {
			r, err := acl.ParseRule(l)
			if err != nil {
				return nil, fmt.Errorf("rule %q: %w", l, err)
			}
			rules = append(rules, r)
		}
		return rules, nil
	}
	rules, err := parse(c.ACL.Rules)
	if err != nil {
		return nil, err
	}
	anon, err := parse(c.ACL.AnonymousRules)
	if err != nil {
		return nil, err
	}
	return acl.NewPolicy(rules, anon)
}

// capabilities builds mochi's capabilities from defaults plus our values.
func (c Config) capabilities() *mqtt.Capabilities {
	m := c.MQTT
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = m.MaximumClients
	// Validate holds the seconds and sizes within what these fields take.
	caps.MaximumMessageExpiryInterval = int64(m.MaximumMessageExpiryInterval / time.Second)
	caps.MaximumClientWritesPending = m.MaximumClientWritesPending
	caps.MaximumSessionExpiryInterval = uint32(m.MaximumSessionExpiryInterval / time.Second)
	caps.MaximumPacketSize = uint32(m.MaximumPacketSize)
	caps.ReceiveMaximum = m.ReceiveMaximum
	caps.MaximumInflight = m.MaximumInflight
	caps.TopicAliasMaximum = m.TopicAliasMaximum
	caps.SharedSubAvailable = boolByte(m.SharedSubAvailable)
	caps.MinimumProtocolVersion = m.MinimumProtocolVersion
	caps.MaximumQos = m.MaximumQos
	caps.RetainAvailable = boolByte(m.RetainAvailable)
	caps.WildcardSubAvailable = boolByte(m.WildcardSubAvailable)
	caps.SubIDAvailable = boolByte(m.SubIDAvailable)
	// An ack carries no properties of the publish it acknowledges (mochi
	// echoes them by default, which MQTT 5 does not provide for).
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	return caps
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
