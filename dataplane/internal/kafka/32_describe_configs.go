package kafka

// DescribeConfigs: v0-v4.
// - TOPIC resources: every supported topic config with its value, source
//   (topic override or default), synonyms (v1+, when asked), type and
//   documentation (v3+).
// - BROKER resources: the broker's static settings, read-only.
// - ConfigNames filters; unknown resources get their Kafka error codes.

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeConfigs(rc *Request, req *kmsg.DescribeConfigsRequest) (Reply, error) {
	b := rc.broker()
	st := b.Meta.State()
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, r := range req.Resources {
		out := kmsg.NewDescribeConfigsResponseResource()
		out.ResourceType, out.ResourceName = r.ResourceType, r.ResourceName
		want := func(name string) bool {
			if r.ConfigNames == nil {
				return true
			}
			for _, n := range r.ConfigNames {
				if n == name {
					return true
				}
			}
			return false
		}
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t := st.Topics[r.ResourceName]
			if t == nil {
				out.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			for _, c := range topicConfigs {
				if !want(c.name) {
					continue
				}
				v, set := t.Configs[c.name]
				src := kmsg.ConfigSourceDefaultConfig
				if set {
					src = kmsg.ConfigSourceDynamicTopicConfig
				} else {
					v = c.def
				}
				out.Configs = append(out.Configs, describedConfig(req, c.name, v, src, false, set, c.def))
			}
		case kmsg.ConfigResourceTypeBroker:
			if r.ResourceName != "" && r.ResourceName != strconv.Itoa(int(b.NodeID)) {
				out.ErrorCode = kerr.InvalidRequest.Code
				msg := "describe the configs of broker " + r.ResourceName + " on that broker"
				out.ErrorMessage = &msg
				break
			}
			for _, kv := range b.brokerConfigs() {
				if want(kv[0]) {
					out.Configs = append(out.Configs, describedConfig(req, kv[0], kv[1], kmsg.ConfigSourceStaticBrokerConfig, true, false, ""))
				}
			}
		default:
			out.ErrorCode = kerr.InvalidRequest.Code
			msg := "unsupported resource type " + r.ResourceType.String()
			out.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, out)
	}
	return Now(resp)
}

func describedConfig(req *kmsg.DescribeConfigsRequest, name, value string, src kmsg.ConfigSource, readOnly, set bool, def string) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name, c.Value, c.ReadOnly, c.Source = name, &value, readOnly, src
	c.IsDefault = src == kmsg.ConfigSourceDefaultConfig
	c.ConfigType = configType(name)
	if req.IncludeSynonyms {
		syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		syn.Name, syn.Value, syn.Source = name, &value, src
		c.ConfigSynonyms = append(c.ConfigSynonyms, syn)
		if set {
			d := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			d.Name, d.Value, d.Source = name, &def, kmsg.ConfigSourceDefaultConfig
			c.ConfigSynonyms = append(c.ConfigSynonyms, d)
		}
	}
	return c
}

func configType(name string) kmsg.ConfigType {
	switch name {
	case "cleanup.policy":
		return kmsg.ConfigTypeList
	case "auto.create.topics.enable":
		return kmsg.ConfigTypeBoolean
	case "max.message.bytes", "min.insync.replicas", "segment.bytes", "num.partitions", "socket.request.max.bytes":
		return kmsg.ConfigTypeInt
	default:
		return kmsg.ConfigTypeLong
	}
}

// brokerConfigs lists the broker settings that DescribeConfigs reports.
func (b *Broker) brokerConfigs() [][2]string {
	return [][2]string{
		{"auto.create.topics.enable", strconv.FormatBool(b.AutoCreateTopics)},
		{"broker.id", strconv.Itoa(int(b.NodeID))},
		{"default.replication.factor", strconv.Itoa(int(b.DefaultReplicationFactor))},
		{"num.partitions", strconv.Itoa(int(b.DefaultPartitions))},
	}
}
