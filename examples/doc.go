// Package examples holds the client programs that docs/clients.md shows
// (node/chat.mjs with MQTT.js, python/chat.py with paho-mqtt, go/chat with
// paho.golang's autopaho; java/MintToken.java and php/mint_token.php mint
// tokens) and the test that runs each of them against the real inboxmq
// binary, so a guide cannot drift from the broker; also the test that runs
// the sh blocks of docs/protocol.md and docs/api.md against the binary. It
// has no code of its own.
//
// The tests need node with examples/node/node_modules (npm ci), a python3
// that imports paho.mqtt (Debian's python3-paho-mqtt), java and php, plus
// mosquitto-clients and curl; `make test` installs them when missing and
// sets INBOXMQ_REQUIRE_EXAMPLES=1, which turns a missing runtime into a
// failure instead of a skip.
package examples
