package broker

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	"go.yaml.in/yaml/v3"
)

// Loading the configuration: the defaults, then the YAML file, then one
// environment variable per key. koanf (github.com/knadh/koanf) merges the
// sources and mapstructure decodes them, so the file's keys and the
// environment's go through one decoder with one syntax for durations and
// sizes, and a key that does not exist is refused with its path.

// EnvPrefix starts the environment variable of every key: the key's path
// in capitals with "_" for ".", e.g. INBOXMQ_INBOX_RETENTION=7d.
const EnvPrefix = "INBOXMQ_"

// envAliases are the names older releases read, kept working.
var envAliases = map[string]string{
	SecretEnv:        "auth.jwt_secret",
	RedisPasswordEnv: "redis.password",
	WebhookSecretEnv: "events.webhook.secret",
}

// LoadConfig reads a YAML file over the defaults, rejecting unknown keys,
// applies the INBOXMQ_ environment variables, and validates the result.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig is LoadConfig on bytes, with this process's environment.
func ParseConfig(data []byte) (Config, error) {
	return parseConfig(data, os.Environ())
}

func parseConfig(data []byte, environ []string) (Config, error) {
	k := koanf.New(".")
	if err := k.Load(rawbytes.Provider(data), kyaml.Parser()); err != nil {
		return Config{}, fmt.Errorf("parse: %w", err)
	}
	keys := configKeys(reflect.TypeFor[Config](), "", map[string]reflect.Type{})
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		path, ok := envAliases[name]
		if !ok {
			path, ok = keyOfEnv(name, keys)
		}
		if !ok || value == "" {
			continue // not a config key (INBOXMQ_ADMIN_TOKEN is the CLI's), or unset
		}
		v, err := envValue(name, value, keys[path], path)
		if err != nil {
			return Config{}, err
		}
		if err := k.Set(path, v); err != nil {
			return Config{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	cfg := DefaultConfig()
	err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: &mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.ComposeDecodeHookFunc(decodeDuration, decodeByteSize),
		ErrorUnused:      true, // a misspelt key is an error, not a silent default
		WeaklyTypedInput: true,
		TagName:          "yaml",
		Result:           &cfg,
	}})
	if err != nil {
		// mapstructure lists its errors under a heading, one per line,
		// each starting with the key's path: one line of them.
		msg := strings.TrimPrefix(err.Error(), "decoding failed due to the following error(s):")
		return Config{}, fmt.Errorf("parse: %s", strings.Join(strings.Fields(strings.TrimSpace(msg)), " "))
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// configKeys lists the path of every key of t (a struct with yaml tags)
// with its Go type: structs are walked, everything else is a key.
func configKeys(t reflect.Type, prefix string, out map[string]reflect.Type) map[string]reflect.Type {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			configKeys(f.Type, path+".", out)
			continue
		}
		out[path] = f.Type
	}
	return out
}

// keyOfEnv finds the key an INBOXMQ_ variable names. Paths may hold "_"
// themselves (auth.jwt_secret), so the name is matched against every key
// rather than split.
func keyOfEnv(name string, keys map[string]reflect.Type) (string, bool) {
	rest, ok := strings.CutPrefix(name, EnvPrefix)
	if !ok {
		return "", false
	}
	for path := range keys {
		if strings.ToUpper(strings.ReplaceAll(path, ".", "_")) == rest {
			return path, true
		}
	}
	return "", false
}

// envValue turns an environment value into what the YAML would have held:
// lists and account entries are written as YAML flow (["a", "b"]),
// everything else is the plain text.
func envValue(name, value string, t reflect.Type, path string) (any, error) {
	if t != nil && t.Kind() != reflect.Slice {
		return value, nil
	}
	var v any
	if err := yaml.Unmarshal([]byte(value), &v); err != nil {
		return nil, fmt.Errorf("%s=%q: want a YAML list like [\"a\", \"b\"] for %s: %w", name, value, path, err)
	}
	if _, ok := v.([]any); !ok {
		return nil, fmt.Errorf("%s=%q: want a YAML list like [\"a\", \"b\"] for %s", name, value, path)
	}
	return v, nil
}

// daysPart is a leading whole or decimal number of days: "7d", "1.5d12h".
var daysPart = regexp.MustCompile(`^(\d+(?:\.\d+)?)d`)

// ParseDuration is time.ParseDuration that also takes days ("7d",
// "1d12h"), the unit retention and windows are thought of in.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days time.Duration
	if m := daysPart.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		days = time.Duration(n * float64(24*time.Hour))
		if s = s[len(m[0]):]; s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number with a unit: 500ms, 30s, 5m, 2h, 7d", s)
	}
	return days + d, nil
}

var errDurationNumber = errors.New("a duration needs a unit (30s, 5m, 7d); only 0 may be written without one")

// decodeDuration reads a time.Duration from text with ParseDuration. A bare
// number other than 0 is refused: YAML would read 30 as 30 nanoseconds.
func decodeDuration(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		return ParseDuration(v)
	case int, int64, uint64, float64:
		if reflect.ValueOf(v).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("%v: %w", v, errDurationNumber)
	}
	return data, nil
}

// decodeByteSize reads a ByteSize from a number of bytes or a number with
// a unit (parseByteSize).
func decodeByteSize(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[ByteSize]() {
		return data, nil
	}
	if s, ok := data.(string); ok {
		return parseByteSize(s)
	}
	return data, nil
}

// reloadable are the keys a reload (SIGHUP) applies to a running broker;
// a change to any other key takes effect at the next start.
var reloadable = map[string]bool{
	"auth.jwt_secret": true, "auth.accounts": true, "auth.token_leeway": true,
	"limits.max_subscriptions": true, "limits.message_rate": true, "limits.message_burst": true,
	"limits.message_wait": true, "limits.connect_timeout": true, "limits.connections_per_ip": true,
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
		if !reflect.DeepEqual(valueAt(reflect.ValueOf(old), p), valueAt(reflect.ValueOf(next), p)) {
			out = append(out, p)
		}
	}
	return out
}

// valueAt is the value of the key at path in v, a Config.
func valueAt(v reflect.Value, path string) any {
	for _, name := range strings.Split(path, ".") {
		t := v.Type()
		for i := range t.NumField() {
			if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag == name {
				v = v.Field(i)
				break
			}
		}
	}
	return v.Interface()
}

// applyReloadable copies the reloadable keys of next into running, and
// returns the changed keys it could not apply (they need a restart).
func applyReloadable(running *Config, next Config) (notApplied []string) {
	for _, p := range changedKeys(*running, next) {
		if !reloadable[p] {
			notApplied = append(notApplied, p)
		}
	}
	a, l := &running.Auth, &running.Limits
	a.JWTSecret, a.Accounts, a.TokenLeeway = next.Auth.JWTSecret, next.Auth.Accounts, next.Auth.TokenLeeway
	l.MaxSubscriptions, l.MessageRate, l.MessageBurst, l.MessageWait = next.Limits.MaxSubscriptions,
		next.Limits.MessageRate, next.Limits.MessageBurst, next.Limits.MessageWait
	l.ConnectTimeout, l.ConnectionsPerIP = next.Limits.ConnectTimeout, next.Limits.ConnectionsPerIP
	return notApplied
}
