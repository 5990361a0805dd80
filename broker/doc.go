// Package broker assembles an inboxmq node: configuration, the inbox store,
// the mochi MQTT server with inboxmq's hooks, and the network listeners
// (MQTT over TCP and over WebSocket, with PROXY protocol from trusted
// balancers; public HTTP for health, the user API and the web page; the
// private admin HTTP listener for metrics, the admin API and profiles).
//
// New builds a Broker from a validated Config; Start opens the listeners;
// Close shuts down gracefully (clients are told, the store is flushed).
// A Broker is safe for concurrent use once started.
//
// Metrics (metrics.go and the *metrics.go files) are measured at assembly:
// the store is wrapped in a measuring decorator and each HTTP listener in
// a middleware, so the packages they wrap know nothing of Prometheus.
package broker
