package broker

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
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
	given := s // errors quote what was written, not the rest after the days
	var days time.Duration
	if m := daysPart.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseFloat(m[1], 64)
		if err != nil || n*float64(24*time.Hour) >= math.MaxInt64 {
			return 0, fmt.Errorf("invalid duration %q: out of range (at most about 106751d)", given)
		}
		days = time.Duration(n * float64(24*time.Hour))
		if s = s[len(m[0]):]; s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number with a unit: 500ms, 30s, 5m, 2h, 7d", given)
	}
	if d > 0 && days > math.MaxInt64-d {
		return 0, fmt.Errorf("invalid duration %q: out of range (at most about 106751d)", given)
	}
	return days + d, nil
}

var errDurationNumber = errors.New("a duration needs a unit (30s, 5m, 7d); only 0 may be written without one")

// decodeDuration reads a time.Duration from text with ParseDuration. A bare
// number other than 0 is refused: YAML would read 30 as 30 nanoseconds,
// and the mqtt.* keys used to take seconds, so the error shows the
// number with an "s" (mapstructure prefixes it with the key's path).
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
		return nil, fmt.Errorf("%v: %w: write \"%vs\" for seconds", v, errDurationNumber, v)
	}
	return data, nil
}

// decodeByteSize reads a ByteSize from a number of bytes or a number with
// a unit (parseByteSize). A negative number is no size.
func decodeByteSize(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[ByteSize]() {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		return parseByteSize(v)
	case int:
		if v < 0 {
			return nil, fmt.Errorf("invalid size %d: a size is not negative", v)
		}
	case int64:
		if v < 0 {
			return nil, fmt.Errorf("invalid size %d: a size is not negative", v)
		}
	case float64:
		if v < 0 || v >= math.MaxInt64 || v != math.Trunc(v) {
			return nil, fmt.Errorf("invalid size %v: want a whole number of bytes", v)
		}
	case uint64:
		if v > math.MaxInt64 {
			return nil, fmt.Errorf("invalid size %d: too large", v)
		}
	}
	return data, nil
}
