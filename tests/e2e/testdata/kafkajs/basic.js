// kafkajs against the brokers in argv[2] (comma-separated): creates a topic
// with the replication factor in argv[3], produces idempotently, consumes
// in a group that commits, and checks a second session of the group
// resumes after the commit. Prints "OK <count>" on success.
const { Kafka, logLevel } = require('kafkajs')

const brokers = process.argv[2].split(',')
const rf = Number(process.argv[3] || 1)
const topic = 'kafkajs-topic'
const groupId = 'kafkajs-group'
const kafka = new Kafka({
  clientId: 'chronik-e2e',
  brokers,
  logLevel: logLevel.WARN,
  retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 1000 },
})

const value = (i) => `js-${String(i).padStart(5, '0')}`

function fail (msg) {
  console.error(`FAIL ${msg}`)
  process.exit(1)
}

async function produce (producer, from, to) {
  const messages = []
  for (let i = from; i < to; i++) {
    messages.push({ key: String(i % 11), value: value(i), headers: { n: String(i) } })
  }
  const res = await producer.send({ topic, messages, acks: -1 })
  for (const r of res) {
    if (r.errorCode !== 0) fail(`produce to partition ${r.partition}: error ${r.errorCode}`)
  }
}

// consume runs one group session until it has seen want distinct values,
// then leaves the group; kafkajs commits what was consumed as it goes and
// on leaving.
async function consume (want) {
  const consumer = kafka.consumer({ groupId, heartbeatInterval: 500, sessionTimeout: 10000 })
  const seen = new Map()
  let resolve
  const enough = new Promise((r) => { resolve = r })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ message }) => {
      const v = message.value.toString()
      seen.set(v, message.headers.n ? message.headers.n.toString() : undefined)
      if (seen.size >= want) resolve()
    },
  })
  const timer = setTimeout(() => fail(`group session consumed ${seen.size} of ${want} values in 60 s`), 60000)
  await enough
  clearTimeout(timer)
  await consumer.disconnect()
  return seen
}

async function main () {
  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: 3, replicationFactor: rf }],
    waitForLeaders: true,
  })
  if (!created) fail('createTopics answered that the topic existed')
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  if (md.topics[0].partitions.length !== 3) fail(`metadata lists ${md.topics[0].partitions.length} partitions`)
  for (const p of md.topics[0].partitions) {
    if (p.replicas.length !== rf) fail(`partition ${p.partitionId} has ${p.replicas.length} replicas, want ${rf}`)
  }

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const first = 300
  const more = 60
  await produce(producer, 0, first)

  const s1 = await consume(first)
  for (let i = 0; i < first; i++) {
    if (s1.get(value(i)) !== String(i)) fail(`first session: ${value(i)} came with header ${s1.get(value(i))}`)
  }
  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] })
  const committed = offsets[0].partitions.reduce((sum, p) => sum + Number(p.offset), 0)
  if (committed !== first) fail(`the group committed offsets adding up to ${committed}, want ${first}`)

  await produce(producer, first, first + more)
  const s2 = await consume(more)
  for (const v of s2.keys()) {
    if (s1.has(v)) fail(`second session consumed ${v} again: the commit was not honoured`)
  }
  for (let i = first; i < first + more; i++) {
    if (!s2.has(value(i))) fail(`second session never consumed ${value(i)}`)
  }

  const groups = await admin.describeGroups([groupId])
  if (groups.groups[0].state !== 'Empty') fail(`group state after both sessions left: ${groups.groups[0].state}`)

  await producer.disconnect()
  await admin.disconnect()
  console.log(`OK ${s1.size + s2.size}`)
}

main().catch((e) => fail(e.stack || String(e)))
