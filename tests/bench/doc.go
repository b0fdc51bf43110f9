// Package bench is the benchmark driver behind `make bench`: it measures
// where Chronik stands against franz-go's in-memory kfake cluster and against
// the machine's own limits, in one run, side by side.
//
// One run does, in order:
//
//   - machine limits of the data directory's disk (4 KiB write + fdatasync
//     latency, fsynced sequential write throughput), of its page cache
//     (writes into new pages and into cached ones) and of loopback TCP;
//   - for each target (kfake, `chronik-server standalone`, a three-node
//     cluster with replication factor 3, and any external address given on
//     the command line), one target at a time so each gets the whole machine:
//     a produce matrix (1 KiB and 100 B records, acks=-1 and acks=1, 1 and 16
//     partitions, several concurrent producers), consume throughput from the
//     start of a full topic, and a rate-limited steady phase that yields
//     produce latency and end-to-end latency at a moderate rate. Each of
//     these cases starts after sync(2), so none pays for the writeback of
//     the one before; each produce case also reports what the target's
//     processes wrote to storage (/proc/<pid>/io write_bytes, every node),
//     which shows the copies a replicated write costs the shared disk;
//   - failover on the cluster: kill -9 of a partition leader until the next
//     acknowledged acks=-1 produce, several times;
//   - scale: idle CPU and RSS of one broker process holding 1, 100 and 1000
//     partition replicas, and the time to create the largest level.
//
// Every load loop is bounded by a record count and by time, and the whole
// run by a budget; parts that cannot run (a target that does not build or
// never becomes ready, the time budget) are reported as skipped with a
// reason. Results are printed as a table and written as JSON. Under the
// table, the goals Chronik is held to (goals.go) are judged on a full
// run's figures, most as ratios between targets measured in the same run: each
// is met, missed, or not judged with the reason (a part that failed or is
// not in the plan). Where the run shows what the machine allows, the goal
// says so: the replicated produce goal prints the ratio the disk probe
// would permit for the copies each byte took, and the steady latency goal
// prints kfake's figure, which is the harness's own floor.
//
// kfake runs by default in a child process (this same executable re-run with
// CHRONIK_BENCH_ROLE=kfake, see MaybeServeKfake), so it pays for its own
// syscalls and scheduling exactly like chronik-server does.
package bench
