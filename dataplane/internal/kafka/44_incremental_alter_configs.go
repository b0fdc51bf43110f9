package kafka

// IncrementalAlterConfigs: v0-v1. SET, DELETE, APPEND and SUBTRACT (the
// last two for the list config cleanup.policy) on topic configs; validated
// as a whole before anything changes. ValidateOnly checks only.

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

func handleIncrementalAlterConfigs(rc *Request, req *kmsg.IncrementalAlterConfigsRequest) (Reply, error) {
	b := rc.broker()
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, r := range req.Resources {
		out := kmsg.NewIncrementalAlterConfigsResponseResource()
		out.ResourceType, out.ResourceName = r.ResourceType, r.ResourceName
		cmd, err := incrementalCmd(b.Meta.State(), r)
		if err == nil {
			err = b.alterTopicConfigs(rc, r.ResourceType, r.ResourceName, req.ValidateOnly, cmd)
		}
		if err != nil {
			out.ErrorCode, out.ErrorMessage = errCode(err), topicErrMessage(err)
		}
		resp.Resources = append(resp.Resources, out)
	}
	return Now(resp)
}

func incrementalCmd(st *metadata.State, r kmsg.IncrementalAlterConfigsRequestResource) (*metadata.AlterConfigsCmd, error) {
	cmd := &metadata.AlterConfigsCmd{Topic: r.ResourceName, Set: map[string]string{}}
	current := map[string]string{}
	if t := st.Topics[r.ResourceName]; t != nil {
		current = t.Configs
	}
	for _, c := range r.Configs {
		if err := validateTopicConfig(c.Name, nil); err != nil {
			return nil, badTopic(kerr.InvalidConfig, "%v", err)
		}
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if c.Value == nil {
				return nil, badTopic(kerr.InvalidConfig, "SET of %s needs a value", c.Name)
			}
			cmd.Set[c.Name] = *c.Value
		case kmsg.IncrementalAlterConfigOpDelete:
			cmd.Delete = append(cmd.Delete, c.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if configType(c.Name) != kmsg.ConfigTypeList || c.Value == nil {
				return nil, badTopic(kerr.InvalidConfig, "%s is not a list config", c.Name)
			}
			cur := current[c.Name]
			if cur == "" {
				cur = lookupTopicConfig(c.Name).def
			}
			items := strings.Split(cur, ",")
			for _, v := range strings.Split(*c.Value, ",") {
				has := slices.Contains(items, v)
				if c.Op == kmsg.IncrementalAlterConfigOpAppend && !has {
					items = append(items, v)
				} else if c.Op == kmsg.IncrementalAlterConfigOpSubtract && has {
					items = slices.DeleteFunc(items, func(s string) bool { return s == v })
				}
			}
			cmd.Set[c.Name] = strings.Join(items, ",")
		default:
			return nil, badTopic(kerr.InvalidRequest, "unknown config operation %d", c.Op)
		}
	}
	for k, v := range cmd.Set {
		if err := validateTopicConfig(k, &v); err != nil {
			return nil, badTopic(kerr.InvalidConfig, "%v", err)
		}
	}
	return cmd, nil
}
