// Package bridge speaks the legacy socket.io private-messaging protocol on
// top of MQTT: it parses the JSON requests clients publish on the im topics
// and renders the JSON envelopes the broker delivers to them.
//
// Inbound, [Parse] turns a payload published on one of the im topics
// (TopicSendMsg, TopicDelMsg, ...) into a [Request], or into an [*Error]
// whose Code is one of the Code constants. The server this replaces ran
// eval() on its input; here every payload goes through encoding/json into
// raw values and each field is checked against a fixed rule, so nothing in
// a payload is ever interpreted beyond its JSON value. Payloads are bounded
// before decoding (see [Limits]), must be valid UTF-8 and a single JSON
// object; JSON nested deeper than encoding/json's limit is rejected.
//
// Outbound, [AppendEnvelope], [Logout] and [ErrorEnvelope] write the exact
// byte layouts legacy clients expect: fields in a fixed order, no spaces,
// no HTML escaping, uids as JSON numbers when legacy clients had them as
// numbers. AppendEnvelope appends to a caller's buffer and does not
// allocate when the buffer has room.
//
// The package is pure: it has no state, does no I/O and does not import
// the MQTT server. Every function is safe for concurrent use by multiple
// goroutines.
package bridge
