package kafka

// AlterConfigs: v0-v2. Replaces a topic's whole set of overrides; every
// name and value is validated first and nothing changes when one is bad.
// ValidateOnly checks and changes nothing. Broker configs are static here:
// BROKER resources get INVALID_REQUEST.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

func handleAlterConfigs(rc *Request, req *kmsg.AlterConfigsRequest) (Reply, error) {
	b := rc.broker()
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, r := range req.Resources {
		out := kmsg.NewAlterConfigsResponseResource()
		out.ResourceType, out.ResourceName = r.ResourceType, r.ResourceName
		set := map[string]string{}
		var err error
		for _, c := range r.Configs {
			if err = validateTopicConfig(c.Name, c.Value); err != nil {
				break
			}
			if c.Value != nil {
				set[c.Name] = *c.Value
			}
		}
		if err == nil {
			err = b.alterTopicConfigs(rc, r.ResourceType, r.ResourceName, req.ValidateOnly, &metadata.AlterConfigsCmd{Topic: r.ResourceName, Replace: true, Set: set})
		} else {
			err = badTopic(kerr.InvalidConfig, "%v", err)
		}
		if err != nil {
			out.ErrorCode, out.ErrorMessage = errCode(err), topicErrMessage(err)
		}
		resp.Resources = append(resp.Resources, out)
	}
	return Now(resp)
}

// alterTopicConfigs checks the resource and proposes the change.
func (b *Broker) alterTopicConfigs(rc *Request, typ kmsg.ConfigResourceType, name string, validateOnly bool, cmd *metadata.AlterConfigsCmd) error {
	if typ != kmsg.ConfigResourceTypeTopic {
		return badTopic(kerr.InvalidRequest, "%s configs cannot be altered; only topic configs are dynamic", typ)
	}
	if b.Meta.State().Topics[name] == nil {
		return badTopic(kerr.UnknownTopicOrPartition, "unknown topic %q", name)
	}
	if validateOnly {
		return nil
	}
	if _, err := b.Meta.Propose(rc.Ctx, &metadata.Command{AlterConfigs: cmd}); err != nil {
		return fmt.Errorf("alter configs of %s: %w", name, err)
	}
	return nil
}
