package kafka

import (
	"fmt"
	"slices"
	"strconv"
)

// topicConfig is one supported topic config with its broker default.
type topicConfig struct {
	name     string
	def      string
	validate func(string) error
	// sensitive configs are never returned in clear; none yet.
}

func intRange(lo, hi int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", v)
		}
		if n < lo || n > hi {
			return fmt.Errorf("%d out of range [%d, %d]", n, lo, hi)
		}
		return nil
	}
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(vals, v) {
			return fmt.Errorf("%q is not one of %v", v, vals)
		}
		return nil
	}
}

const maxInt64 = int64(^uint64(0) >> 1)

// topicConfigs are the topic configs this broker implements, in name order.
var topicConfigs = []topicConfig{
	{"cleanup.policy", "delete", oneOf("delete", "compact", "compact,delete", "delete,compact")},
	{"max.message.bytes", "1048588", intRange(0, 1<<31-1)},
	{"min.insync.replicas", "1", intRange(1, 1<<31-1)},
	{"retention.bytes", "-1", intRange(-1, maxInt64)},
	{"retention.ms", "604800000", intRange(-1, maxInt64)},
	{"segment.bytes", "1073741824", intRange(14, 1<<31-1)},
	{"segment.ms", "604800000", intRange(1, maxInt64)},
}

func lookupTopicConfig(name string) *topicConfig {
	for i := range topicConfigs {
		if topicConfigs[i].name == name {
			return &topicConfigs[i]
		}
	}
	return nil
}

// validateTopicConfig checks one name/value pair; a nil value means reset.
func validateTopicConfig(name string, value *string) error {
	c := lookupTopicConfig(name)
	if c == nil {
		return fmt.Errorf("unknown topic config %q", name)
	}
	if value == nil {
		return nil
	}
	if err := c.validate(*value); err != nil {
		return fmt.Errorf("invalid value for %s: %w", name, err)
	}
	return nil
}
