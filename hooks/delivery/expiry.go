package delivery

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/hooks/access"
)

// endAtExpiry ends the connection when the token it logged in with
// expires (plus the leeway tokens are verified with): credentials have a
// lifetime, and a connection must not outlive them. The client is told
// with a Logout envelope (reason "token expired") and then DISCONNECT
// 0x87 (MQTT 5) or a closed socket (3.1.1); it reconnects with a new token.
func (c *conn) endAtExpiry() {
	if c.id.Expires.IsZero() {
		return
	}
	t := time.AfterFunc(time.Until(c.id.Expires.Add(time.Duration(c.d.tokenLeeway.Load()))), func() {
		if c.isClosed() {
			return
		}
		c.d.log.Info("logged out: token expired", "uid", c.id.UID, "client", c.id.ClientID, "remote", c.cl.Net.Remote,
			"expired", c.id.Expires.UTC().Format(time.RFC3339))
		c.writeTransient(bridge.Logout(tokenExpiredReason))
		access.EndConnection(c.d.server, c.cl, packets.ErrNotAuthorized)
	})
	c.mu.Lock()
	c.expiry = t
	c.mu.Unlock()
}

// tokenExpiredReason is the Logout reason of a connection whose token expired.
const tokenExpiredReason = "token expired"
