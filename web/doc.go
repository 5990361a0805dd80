// Package web is the reference web client: a chat and notice page for
// browsers, embedded in the binary and served by the broker's HTTP listener
// (web.enabled). The page is plain JavaScript; it talks MQTT over the
// WebSocket listener with the vendored MQTT.js bundle and reads history and
// unread counts from the HTTP API (/api/v1).
//
// The files live in static/ (vendor/ holds the MQTT.js bundle, regenerated
// by "npm run vendor" in e2e/); e2e/ holds the browser tests (Playwright
// driving headless Chromium against the real binary).
//
// Handler is safe for concurrent use: everything it serves is computed once
// when it is built, except what depends on the request's Host.
package web
