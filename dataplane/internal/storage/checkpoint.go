package storage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// File names in the partition directory.
const (
	logStartFile      = "log-start-offset-checkpoint"
	recoveryPointFile = "recovery-point-offset-checkpoint"
	epochFile         = "leader-epoch-checkpoint"
	cleanShutdownFile = ".clean-shutdown"
	tmpSuffix         = ".tmp"
	checkpointVersion = 0
)

// writeFileAtomic replaces dir/name with data: write a temporary file,
// fsync it, rename it over the old one and fsync the directory.
func (l *Log) writeFileAtomic(name string, data []byte) error {
	path := filepath.Join(l.dir, name)
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = l.fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = l.syncDir()
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// syncDir fsyncs the partition directory, making created, renamed and
// removed names durable.
func (l *Log) syncDir() error {
	d, err := os.Open(l.dir)
	if err != nil {
		return err
	}
	l.fsyncs.Add(1)
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// fsync flushes f to disk and counts it.
func (l *Log) fsync(f *os.File) error {
	l.fsyncs.Add(1)
	return fdatasync(f)
}

// encodeOffsetCheckpoint writes one offset in the text form Kafka uses for
// its checkpoint files: a version line, then the value.
func encodeOffsetCheckpoint(off int64) []byte {
	return fmt.Appendf(nil, "%d\n%d\n", checkpointVersion, off)
}

// readOffsetCheckpoint reads a file written by encodeOffsetCheckpoint. A
// missing file is (0, false, nil); a malformed one is an error.
func readOffsetCheckpoint(path string) (int64, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != strconv.Itoa(checkpointVersion) {
		return 0, false, fmt.Errorf("%s: malformed checkpoint %q", filepath.Base(path), b)
	}
	off, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || off < 0 {
		return 0, false, fmt.Errorf("%s: malformed offset %q", filepath.Base(path), lines[1])
	}
	return off, true, nil
}

// epochEntry says leader epoch epoch wrote its first batch at start.
type epochEntry struct {
	epoch int32
	start int64
}

// epochCache maps leader epochs to their start offsets, as Kafka's
// LeaderEpochFileCache does: epochs and start offsets both increase.
type epochCache struct {
	entries []epochEntry
}

// assign notes that epoch wrote a batch at start. It reports whether the
// cache changed; an epoch older than the latest is ignored.
func (c *epochCache) assign(epoch int32, start int64) bool {
	if epoch < 0 {
		return false
	}
	n := len(c.entries)
	if n > 0 && epoch <= c.entries[n-1].epoch {
		return false
	}
	for n > 0 && c.entries[n-1].start >= start {
		n--
	}
	c.entries = append(c.entries[:n], epochEntry{epoch: epoch, start: start})
	return true
}

// truncateFromEnd drops the epochs that start at or past end.
func (c *epochCache) truncateFromEnd(end int64) bool {
	n := len(c.entries)
	for n > 0 && c.entries[n-1].start >= end {
		n--
	}
	changed := n != len(c.entries)
	c.entries = c.entries[:n]
	return changed
}

// truncateFromStart drops the epochs that ended before start and moves the
// start of the one that spans it to start.
func (c *epochCache) truncateFromStart(start int64) bool {
	i := 0
	for i+1 < len(c.entries) && c.entries[i+1].start <= start {
		i++
	}
	if len(c.entries) == 0 || (i == 0 && c.entries[0].start >= start) {
		return false
	}
	c.entries = append(c.entries[:0], c.entries[i:]...)
	if c.entries[0].start < start {
		c.entries[0].start = start
	}
	return true
}

// endOffsetFor answers OffsetForLeaderEpoch with Kafka's semantics: for
// the latest epoch, the log end offset; otherwise the largest epoch not
// above the requested one and the start offset of the epoch after it;
// (-1, -1) for an unknown or newer epoch.
func (c *epochCache) endOffsetFor(epoch int32, logEnd int64) (int32, int64) {
	n := len(c.entries)
	if epoch < 0 || n == 0 {
		return -1, -1
	}
	if c.entries[n-1].epoch == epoch {
		return epoch, logEnd
	}
	higher := -1 // first entry with a larger epoch
	for i, e := range c.entries {
		if e.epoch > epoch {
			higher = i
			break
		}
	}
	switch {
	case higher < 0:
		return -1, -1
	case higher == 0:
		return epoch, c.entries[0].start
	default:
		return c.entries[higher-1].epoch, c.entries[higher].start
	}
}

// latest is the newest epoch, -1 when none.
func (c *epochCache) latest() int32 {
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].epoch
}

// encode writes Kafka's leader-epoch-checkpoint text: version, count, then
// "epoch startOffset" lines.
func (c *epochCache) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n%d\n", checkpointVersion, len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&b, "%d %d\n", e.epoch, e.start)
	}
	return b.Bytes()
}

// decodeEpochCheckpoint parses what encode wrote, checking order.
func decodeEpochCheckpoint(b []byte) (epochCache, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 2 || lines[0] != strconv.Itoa(checkpointVersion) {
		return epochCache{}, errors.New("leader epoch checkpoint: bad header")
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n != len(lines)-2 {
		return epochCache{}, fmt.Errorf("leader epoch checkpoint: count %q for %d entries", lines[1], len(lines)-2)
	}
	var c epochCache
	for _, line := range lines[2:] {
		var e epochEntry
		if _, err := fmt.Sscanf(line, "%d %d", &e.epoch, &e.start); err != nil {
			return epochCache{}, fmt.Errorf("leader epoch checkpoint: line %q: %w", line, err)
		}
		if k := len(c.entries); e.epoch < 0 || e.start < 0 || (k > 0 && (e.epoch <= c.entries[k-1].epoch || e.start < c.entries[k-1].start)) {
			return epochCache{}, fmt.Errorf("leader epoch checkpoint: entry %q out of order", line)
		}
		c.entries = append(c.entries, e)
	}
	return c, nil
}
