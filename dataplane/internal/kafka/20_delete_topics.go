package kafka

// DeleteTopics: v1-v6. Topics are named (all versions) or, from v6, given by
// topic id. Internal topics cannot be deleted.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-stream/chronik/controlplane/metadata"
)

func handleDeleteTopics(rc *Request, req *kmsg.DeleteTopicsRequest) (Reply, error) {
	b := rc.broker()
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	for _, n := range req.TopicNames {
		targets = append(targets, target{name: &n})
	}
	for _, t := range req.Topics {
		targets = append(targets, target{name: t.Topic, id: t.TopicID})
	}
	for _, tg := range targets {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic, rt.TopicID = tg.name, tg.id
		st := b.Meta.State()
		var t *metadata.Topic
		if tg.name != nil {
			t = st.Topics[*tg.name]
		} else {
			t = st.TopicByID(tg.id)
		}
		switch {
		case t == nil && tg.name == nil:
			rt.ErrorCode = kerr.UnknownTopicID.Code
		case t == nil:
			rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case t.Internal:
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			msg := "internal topics cannot be deleted"
			rt.ErrorMessage = &msg
		default:
			name := t.Name
			rt.Topic, rt.TopicID = &name, t.ID
			if _, err := b.Meta.Propose(rc.Ctx, &metadata.Command{DeleteTopic: &name}); err != nil {
				rt.ErrorCode = errCode(err)
				rt.ErrorMessage = topicErrMessage(err)
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return Now(resp)
}
