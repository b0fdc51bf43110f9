"""AdminClient create/describe, Producer and Consumer against one broker."""
import sys

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource

bootstrap = sys.argv[1]
topic = "py-basic"
admin = AdminClient({"bootstrap.servers": bootstrap})
for t, f in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                          config={"retention.ms": "86400000"})]).items():
    f.result(timeout=20)
md = admin.list_topics(timeout=20)
assert topic in md.topics, md.topics
assert len(md.topics[topic].partitions) == 3
res = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
for r, f in res.items():
    configs = f.result(timeout=20)
    assert configs["retention.ms"].value == "86400000", configs["retention.ms"]

errors = []
p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
n = 300
for i in range(n):
    p.produce(topic, key=str(i % 7), value=f"py-{i}",
              on_delivery=lambda err, msg: errors.append(err) if err else None)
    p.poll(0)
assert p.flush(30) == 0, "undelivered messages"
assert not errors, errors

c = Consumer({"bootstrap.servers": bootstrap, "group.id": "py-basic-assign",
              "enable.auto.commit": False, "auto.offset.reset": "earliest"})
c.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(3)])
seen = set()
while len(seen) < n:
    m = c.poll(10)
    if m is None:
        raise SystemExit(f"timed out with {len(seen)} of {n} records")
    if m.error():
        raise SystemExit(f"consume error: {m.error()}")
    seen.add(m.value().decode())
c.close()
assert seen == {f"py-{i}" for i in range(n)}
print("OK", len(seen))
