package kafka

// DescribeCluster: v0-v1. Live brokers, the cluster id and the controller
// id as Metadata reports them. v1 accepts only the broker endpoint type.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeCluster(rc *Request, req *kmsg.DescribeClusterRequest) (Reply, error) {
	b := rc.broker()
	st := b.Meta.State()
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		return Now(resp)
	}
	resp.ClusterID = st.ClusterID
	resp.ControllerID = b.controllerID(st)
	resp.ClusterAuthorizedOperations = -2147483648
	for _, mb := range metadataBrokers(st) {
		db := kmsg.NewDescribeClusterResponseBroker()
		db.NodeID, db.Host, db.Port, db.Rack = mb.NodeID, mb.Host, mb.Port, mb.Rack
		resp.Brokers = append(resp.Brokers, db)
	}
	return Now(resp)
}
