package broker

// WebConfig configures the reference web client served on the HTTP listener.
type WebConfig struct {
	// Enabled serves the chat and notice page at / on the HTTP listener.
	Enabled bool `yaml:"enabled"`
	// DevLogin lets the page mint a token from a bare uid. Development only:
	// anyone who can reach the page can then log in as anyone.
	DevLogin bool `yaml:"dev_login"`
}
