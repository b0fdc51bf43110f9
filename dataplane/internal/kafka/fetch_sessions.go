package kafka

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch sessions (KIP-227): a client that opens a session sends later only
// the partitions that changed, and gets back only the partitions with news.

const maxFetchSessions = 1000

type sessionPartition struct {
	topic     string
	topicID   [16]byte
	partition int32
	offset    int64
	maxBytes  int32
	epoch     int32
	// what the client was last told, to decide what is news
	hwm, logStart int64
	sent          bool
}

type tp struct {
	topic     string
	partition int32
}

type fetchSession struct {
	id    int32
	epoch int32 // the epoch the next request must carry
	parts map[tp]*sessionPartition
	order []tp
	used  uint64
}

type fetchSessions struct {
	mu     sync.Mutex
	nextID int32
	clock  uint64
	m      map[int32]*fetchSession
}

// resolve turns a fetch request into the partition list to serve. It
// returns the session (nil for sessionless fetches) or a top-level error.
// The caller holds no lock; the session is used by one request at a time
// because its epoch must advance before the next one is accepted.
func (fs *fetchSessions) resolve(req *kmsg.FetchRequest, names func(id [16]byte) string) (*fetchSession, []*sessionPartition, int16) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m == nil {
		fs.m = map[int32]*fetchSession{}
	}
	fs.clock++
	full := req.SessionEpoch == 0 || req.SessionEpoch == -1
	var s *fetchSession
	switch {
	case req.Version < 7 || (req.SessionID == 0 && req.SessionEpoch == -1):
		// sessionless full fetch
	case req.SessionEpoch == -1:
		delete(fs.m, req.SessionID) // close the session, answer in full
	case req.SessionEpoch == 0:
		if req.SessionID != 0 {
			delete(fs.m, req.SessionID)
		}
		s = fs.create()
	default:
		s = fs.m[req.SessionID]
		if s == nil {
			return nil, nil, kerr.FetchSessionIDNotFound.Code
		}
		if s.epoch != req.SessionEpoch {
			return nil, nil, kerr.InvalidFetchSessionEpoch.Code
		}
	}
	if s == nil || full {
		var parts []*sessionPartition
		var order []tp
		m := map[tp]*sessionPartition{}
		for _, t := range req.Topics {
			name := topicName(t, names)
			for _, p := range t.Partitions {
				sp := &sessionPartition{topic: name, topicID: t.TopicID, partition: p.Partition, offset: p.FetchOffset, maxBytes: p.PartitionMaxBytes, epoch: p.CurrentLeaderEpoch}
				parts = append(parts, sp)
				k := tp{name, p.Partition}
				if m[k] == nil {
					order = append(order, k)
				}
				m[k] = sp
			}
		}
		if s != nil {
			s.parts, s.order = m, order
			s.epoch = 1
		}
		return s, parts, 0
	}
	// Incremental: apply changes, forget what the client forgot.
	for _, t := range req.Topics {
		name := topicName(t, names)
		for _, p := range t.Partitions {
			k := tp{name, p.Partition}
			sp := s.parts[k]
			if sp == nil {
				sp = &sessionPartition{topic: name, topicID: t.TopicID, partition: p.Partition}
				s.parts[k] = sp
				s.order = append(s.order, k)
			}
			sp.offset, sp.maxBytes, sp.epoch = p.FetchOffset, p.PartitionMaxBytes, p.CurrentLeaderEpoch
		}
	}
	for _, f := range req.ForgottenTopics {
		name := ""
		if f.Topic != "" {
			name = f.Topic
		} else {
			name = names(f.TopicID)
		}
		for _, p := range f.Partitions {
			delete(s.parts, tp{name, p})
		}
	}
	kept := s.order[:0]
	var parts []*sessionPartition
	for _, k := range s.order {
		if sp := s.parts[k]; sp != nil {
			kept = append(kept, k)
			parts = append(parts, sp)
		}
	}
	s.order = kept
	s.epoch = nextEpoch(s.epoch)
	s.used = fs.clock
	return s, parts, 0
}

func nextEpoch(e int32) int32 {
	if e == 1<<31-1 {
		return 1
	}
	return e + 1
}

func topicName(t kmsg.FetchRequestTopic, names func([16]byte) string) string {
	if t.Topic != "" {
		return t.Topic
	}
	return names(t.TopicID)
}

// create makes a new session, evicting the least recently used when full.
// Caller holds fs.mu.
func (fs *fetchSessions) create() *fetchSession {
	if len(fs.m) >= maxFetchSessions {
		var oldest *fetchSession
		for _, s := range fs.m {
			if oldest == nil || s.used < oldest.used {
				oldest = s
			}
		}
		delete(fs.m, oldest.id)
	}
	for {
		fs.nextID++
		if fs.nextID <= 0 {
			fs.nextID = 1
		}
		if fs.m[fs.nextID] == nil {
			break
		}
	}
	s := &fetchSession{id: fs.nextID, used: fs.clock}
	fs.m[s.id] = s
	return s
}
