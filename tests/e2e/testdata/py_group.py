"""A confluent-kafka consumer group with manual commits against one broker.

1. One consumer reads half the records, committing each synchronously, and
   closes; a second consumer in the same group reads exactly the other half.
2. Two consumers share the group at once (a rebalance) and together read
   every new record; their commits leave nothing behind.
"""
import sys

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = sys.argv[1]
topic = group = "py-group"
admin = AdminClient({"bootstrap.servers": bootstrap})
for _, f in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).items():
    f.result(timeout=20)

producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})


def produce(start, end):
    errors = []
    for i in range(start, end):
        producer.produce(topic, key=str(i), value=f"py-{i}",
                         on_delivery=lambda err, msg: errors.append(err) if err else None)
        producer.poll(0)
    assert producer.flush(30) == 0, "undelivered messages"
    assert not errors, errors


def consumer(name):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000})
    c.subscribe([topic])
    return c


def take(consumers, n, deadline_polls=1200):
    """Polls until n distinct records came, committing each one. With
    several consumers a commit may meet a rebalance: the record then comes
    again, which at-least-once allows."""
    got = []
    polls = 0
    while len(set(got)) < n:
        for c in consumers:
            m = c.poll(0.05)
            if m is None:
                continue
            if m.error():
                raise SystemExit(f"consume error: {m.error()}")
            got.append(m.value().decode())
            try:
                c.commit(message=m, asynchronous=False)
            except KafkaException as e:
                if len(consumers) == 1:
                    raise
                print("commit during rebalance:", e)
        polls += 1
        if polls > deadline_polls:
            raise SystemExit(f"timed out with {len(got)} of {n} records")
    return got


produce(0, 200)
first = consumer("py-first")
a = take([first], 100)
first.close()
second = consumer("py-second")
b = take([second], 100)
# Nothing more: the group's commits cover all 200.
for _ in range(10):
    m = second.poll(0.2)
    assert m is None or m.error(), f"extra record {m.value()}"
committed = second.committed([TopicPartition(topic, p) for p in range(3)], timeout=20)
assert sum(tp.offset for tp in committed) == 200, committed
second.close()
assert len(a) == 100 and len(b) == 100, (len(a), len(b))
assert set(a) | set(b) == {f"py-{i}" for i in range(200)}, "records lost or repeated"

# Two members at once.
c1, c2 = consumer("py-one"), consumer("py-two")
produce(200, 400)
both = take([c1, c2], 200)
assert set(both) == {f"py-{i}" for i in range(200, 400)}, "records lost in the shared group"
c1.close()
c2.close()
print("OK", len(a), len(b), len(both))
