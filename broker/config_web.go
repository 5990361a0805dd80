package broker

// WebConfig configures the reference web client served on the HTTP listener
// (package web). Enabled and DevLogin default to false.
type WebConfig struct {
	// Enabled serves the chat and notice page at / on the HTTP listener.
	// The page connects to the WebSocket listener on the host it was
	// loaded from (or to MQTTURL); with listeners.websocket.allowed_origins set, include
	// the page's origin (e.g. "http://127.0.0.1:8080").
	Enabled bool `yaml:"enabled"`
	// DevLogin lets the page mint a token from a bare uid. Development only:
	// anyone who can reach the page can then log in as anyone.
	DevLogin bool `yaml:"dev_login"`
	// MQTTURL is the WebSocket URL the page connects to, used as given
	// (e.g. wss://chat.example.com/mqtt behind a reverse proxy on 443);
	// "" builds it from the page's host and the WebSocket listener's port.
	MQTTURL string `yaml:"mqtt_url"`
}
