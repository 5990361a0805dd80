package broker

import (
	"context"

	"github.com/inboxmq/inboxmq/api"
	"github.com/inboxmq/inboxmq/cluster"
	"github.com/inboxmq/inboxmq/hooks/delivery"
)

// connections is what the API asks of presence: this node's delivery
// hook, and with other nodes on the same Redis their counts too.
func (b *Broker) connections() api.Connections {
	if b.node == nil {
		return b.delivery
	}
	return deploymentConnections{Hook: b.delivery, node: b.node}
}

// deploymentConnections answers GET /api/v1/online for every node sharing
// the Redis (cluster.Node.OnlineEverywhere); kicks stay the hook's, which
// signals the other nodes itself.
type deploymentConnections struct {
	*delivery.Hook
	node *cluster.Node
}

var _ api.DeploymentPresence = deploymentConnections{}

func (d deploymentConnections) OnlineEverywhere(ctx context.Context, uid string) (int, error) {
	return d.node.OnlineEverywhere(ctx, uid)
}
