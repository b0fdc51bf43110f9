"""Produce through one node of a cluster and consume through another."""
import sys

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

produce_via, consume_via, topic = sys.argv[1], sys.argv[2], sys.argv[3]
admin = AdminClient({"bootstrap.servers": produce_via})
for t, f in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)]).items():
    f.result(timeout=20)
md = admin.list_topics(topic, timeout=20)
for p in md.topics[topic].partitions.values():
    assert len(p.replicas) == 3, p.replicas

errors = []
p = Producer({"bootstrap.servers": produce_via, "acks": "all", "enable.idempotence": True})
n = 300
for i in range(n):
    p.produce(topic, key=str(i % 7), value=f"py-{i}",
              on_delivery=lambda err, msg: errors.append(err) if err else None)
    p.poll(0)
assert p.flush(30) == 0, "undelivered messages"
assert not errors, errors

c = Consumer({"bootstrap.servers": consume_via, "group.id": "py-cluster",
              "enable.auto.commit": False, "auto.offset.reset": "earliest"})
c.subscribe([topic])
seen = set()
while len(seen) < n:
    m = c.poll(20)
    if m is None:
        raise SystemExit(f"timed out with {len(seen)} of {n} records")
    if m.error():
        raise SystemExit(f"consume error: {m.error()}")
    seen.add(m.value().decode())
c.commit(asynchronous=False)
c.close()
assert seen == {f"py-{i}" for i in range(n)}
print("OK", len(seen))
