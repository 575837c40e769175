// clientload: thousands of franz-go clients in one process against one broker, for
// bench/clients.py (issue #17, point 3).
//
//	clientload '<json config>'
//
// Every producer and every consumer is a kgo.Client of its own (its own connections,
// metadata and goroutines), as a fleet of separate applications would be:
//
//   - producers: each writes `rate` records a second of `record_size` bytes (no key,
//     franz-go's defaults: acks=all, idempotent, linger 10 ms; `linger_ms` >= 0 to
//     change it) to `topic` on a ticker of its own (random phase), each batch to a random
//     partition (kgo.StickyPartitioner). franz-go's default partitioner (KIP-794's
//     uniform bytes) sticks to one partition for 64 KiB, over a minute at 1 KB/s: it left
//     partitions without a record, and a consumer whose first fetch named only such a
//     partition waited its 5 s FetchMaxWait before fetching its other one. The value
//     starts with the send time (Unix nanoseconds, big-endian): the end-to-end latency.
//   - consumers: consumer i is in group "<group_prefix>-<i mod groups>" and subscribes
//     to `topic` (classic JoinGroup/SyncGroup protocol, franz-go's default
//     cooperative-sticky balancer, autocommit, from the start of the topic); it polls
//     and notes for each record now - send time.
//
// Clients are started evenly over `ramp_s` seconds (producers and consumers
// interleaved). The producers stop `duration_s` seconds after the first client started;
// they flush (at most `flush_s`), then the consumers get at most `drain_s` to read what
// was acknowledged, then every client is closed (consumers leave their group) within
// `close_s`. A hard deadline (duration + flush + drain + close + 30 s) prints what there
// is and exits 3; so do SIGTERM and SIGINT. Progress goes to stderr every 5 s; the
// result is one JSON line on stdout (see `result` below), times in ms from the start.
//
// Groups: a group is stable when all its consumers have been started, every partition
// of the topic is owned by exactly one of them and min(members, partitions) of them own
// some (with consumers <= partitions per group: every consumer assigned), as the
// OnPartitionsAssigned/Revoked/Lost callbacks leave the assignments. `stable_ms` is the
// first moment all groups were stable; "steady" latencies count only records sent
// after it, and the requests in the steady window (stable to the producers' stop) are
// counted apart. `generations` is the sum over groups of the last generation a member
// had (one per completed JoinGroup round: a rebalance).
//
// Records slower end to end than `slow_ms` (default 1000) are counted, all and steady, and
// the first 10 of each shown (group, consumer, partition, offset, when sent and received);
// so are Fetch requests that took longer than `slow_ms` from write to read (with every
// partition written many times a second, a fetch should come back at once). `debug_log`,
// a path, writes every client's franz-go debug log there (a diagnosis: large).
//
// Also: every Produce request's round trip from write to read (`produce_request_ms`: the
// broker's answer, without the client's linger and queue), and `produce_target`, the
// records the producers would have sent at their rate (a load generator short of CPU
// falls behind it).
//
// Errors by kind: produce and fetch errors, failed connections and requests (client
// hooks), and franz-go's own warnings and errors (its logger), digits replaced by N,
// each with a count, an example and the first and last time; a failed dial is timed
// from its start, and "while closing" marks what began after the clients began to close.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type config struct {
	Bootstrap   string  `json:"bootstrap"`
	Topic       string  `json:"topic"`
	Partitions  int     `json:"partitions"`
	Producers   int     `json:"producers"`
	Consumers   int     `json:"consumers"`
	Groups      int     `json:"groups"`
	GroupPrefix string  `json:"group_prefix"`
	DurationS   float64 `json:"duration_s"`
	RampS       float64 `json:"ramp_s"`
	RecordSize  int     `json:"record_size"`
	Rate        float64 `json:"rate"`      // records a second, per producer
	LingerMs    *int    `json:"linger_ms"` // absent or < 0: franz-go's default (10 ms)
	FlushS      float64 `json:"flush_s"`
	DrainS      float64 `json:"drain_s"`
	CloseS      float64 `json:"close_s"`
	SlowMs      float64 `json:"slow_ms"`   // records (end to end) and fetches slower than this are counted, the first few shown
	DebugLog    string  `json:"debug_log"` // a file for every client's franz-go debug log (diagnosis only)
}

func (c *config) defaults() error {
	if c.Bootstrap == "" || c.Topic == "" {
		return errors.New("bootstrap and topic are required")
	}
	if c.Partitions <= 0 {
		return errors.New("partitions (of the topic) is required")
	}
	if c.Consumers > 0 && c.Groups <= 0 {
		c.Groups = 1
	}
	if c.GroupPrefix == "" {
		c.GroupPrefix = "clientload"
	}
	if c.DurationS <= 0 {
		c.DurationS = 60
	}
	if c.RecordSize < 8 {
		c.RecordSize = 100
	}
	if c.Rate <= 0 {
		c.Rate = 10
	}
	if c.FlushS <= 0 {
		c.FlushS = 15
	}
	if c.DrainS <= 0 {
		c.DrainS = 10
	}
	if c.CloseS <= 0 {
		c.CloseS = 30
	}
	if c.SlowMs <= 0 {
		c.SlowMs = 1000
	}
	return nil
}

// --- a histogram of microseconds, under 1% error, lock-free ------------------

const subBits = 7
const subCount = 1 << subBits // 128

type histogram struct {
	buckets [2*subCount + 64*subCount]atomic.Int64
	count   atomic.Int64
	max     atomic.Int64
}

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	shift := bits.Len64(u) - (subBits + 1)
	if shift <= 0 {
		return int(u) // 0..255 exactly
	}
	return 2*subCount + (shift-1)*subCount + int(u>>uint(shift)) - subCount
}

func valueOf(i int) float64 {
	if i < 2*subCount {
		return float64(i)
	}
	shift := (i-2*subCount)/subCount + 1
	m := (i-2*subCount)%subCount + subCount
	lo := float64(uint64(m) << uint(shift))
	return lo + float64(uint64(1)<<uint(shift))/2
}

func (h *histogram) record(us int64) {
	h.buckets[bucketOf(us)].Add(1)
	h.count.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// summary in milliseconds: count, p50, p99, p99.9, max (nil when empty).
func (h *histogram) summary() map[string]any {
	n := h.count.Load()
	out := map[string]any{"count": n}
	if n == 0 {
		return out
	}
	counts := make([]int64, len(h.buckets))
	var total int64
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		total += counts[i]
	}
	at := func(q float64) float64 {
		want := int64(math.Ceil(q * float64(total)))
		if want < 1 {
			want = 1
		}
		var seen int64
		for i, c := range counts {
			seen += c
			if seen >= want {
				return math.Round(valueOf(i)) / 1000
			}
		}
		return float64(h.max.Load()) / 1000
	}
	out["p50"] = at(0.50)
	out["p99"] = at(0.99)
	out["p999"] = at(0.999)
	out["max"] = float64(h.max.Load()) / 1000
	return out
}

// --- errors by kind -------------------------------------------------------------

var digits = regexp.MustCompile(`[0-9]+`)

type errorKind struct {
	count       int64
	example     string
	first, last time.Time
}

type errorCounts struct {
	mu        sync.Mutex
	kinds     map[string]*errorKind
	closingAt atomic.Int64 // Unix ns when closing began; 0 before
}

func (e *errorCounts) add(kind string, err error) { e.addAt(kind, err, time.Now()) }

// addAt counts an error that began at t (a failed dial: when it started): "while
// closing" when t is after the clients began to close.
func (e *errorCounts) addAt(kind string, err error, t time.Time) {
	text := kind
	if err != nil {
		var ke *kerr.Error
		if errors.As(err, &ke) {
			text += ": " + ke.Message
		} else {
			text += ": " + err.Error()
		}
	}
	e.addText(text, t)
}

func (e *errorCounts) addText(text string, t time.Time) {
	if c := e.closingAt.Load(); c != 0 && t.UnixNano() >= c {
		text = "while closing: " + text
	}
	key := digits.ReplaceAllString(text, "N")
	if len(key) > 200 {
		key = key[:200]
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.kinds[key]; !ok && len(e.kinds) >= 200 {
		key = "(other kinds)"
	}
	k := e.kinds[key]
	if k == nil {
		if len(text) > 400 {
			text = text[:400]
		}
		k = &errorKind{example: text, first: t}
		e.kinds[key] = k
	}
	k.count++
	if t.Before(k.first) {
		k.first = t
	}
	if t.After(k.last) {
		k.last = t
	}
}

// snapshot: by kind, the count, an example, and the first and last time (ms from the start).
func (e *errorCounts) snapshot() (map[string]map[string]any, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]map[string]any, len(e.kinds))
	var total int64
	for key, k := range e.kinds {
		out[key] = map[string]any{"count": k.count, "example": k.example,
			"first_ms": msSince(k.first.UnixNano()), "last_ms": msSince(k.last.UnixNano())}
		total += k.count
	}
	return out, total
}

// logger: the counting logger, and with debug_log every client's debug log into that
// file as well (a diagnosis: large).
func logger(clientID string) kgo.Logger {
	counting := countingLogger{&state.errors}
	if state.debugLog == nil {
		return counting
	}
	return debugLogger{counting, kgo.BasicLogger(lockedWriter{}, kgo.LogLevelDebug, func() string {
		return time.Now().Format("15:04:05.000000 ") + clientID + " "
	})}
}

type lockedWriter struct{}

func (lockedWriter) Write(b []byte) (int, error) {
	state.debugMu.Lock()
	defer state.debugMu.Unlock()
	return state.debugLog.Write(b)
}

type debugLogger struct {
	counting countingLogger
	debug    kgo.Logger
}

func (d debugLogger) Level() kgo.LogLevel { return kgo.LogLevelDebug }

func (d debugLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	d.debug.Log(level, msg, keyvals...)
	if level <= kgo.LogLevelWarn {
		d.counting.Log(level, msg, keyvals...)
	}
}

// countingLogger counts franz-go's warnings and errors by message and error.
type countingLogger struct{ errs *errorCounts }

func (l countingLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l countingLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	text := "franz-go " + strings.ToLower(level.String()) + ": " + msg
	for i := 0; i+1 < len(keyvals); i += 2 {
		if k, _ := keyvals[i].(string); k == "err" || k == "error" {
			if err, ok := keyvals[i+1].(error); ok {
				var ke *kerr.Error
				if errors.As(err, &ke) {
					text += ": " + ke.Message
				} else {
					text += ": " + err.Error()
				}
			} else {
				text += fmt.Sprintf(": %v", keyvals[i+1])
			}
		}
	}
	state.errors.addText(text, time.Now())
}

// --- requests and connections (client hooks) ------------------------------------------

// hooks are per client: id is its client ID.
type hooks struct{ id string }

var (
	requestCounts [128]atomic.Int64
	connOpened    atomic.Int64
	connFailed    atomic.Int64
	connClosed    atomic.Int64
	connOpen      atomic.Int64
	connPeak      atomic.Int64
)

func (hooks) OnBrokerConnect(_ kgo.BrokerMetadata, dial time.Duration, _ net.Conn, err error) {
	if err != nil {
		connFailed.Add(1)
		perSecond(&failedPerS, time.Now().Add(-dial))
		state.errors.addAt("connect", err, time.Now().Add(-dial))
		return
	}
	connOpened.Add(1)
	perSecond(&connectsPerS, time.Now())
	n := connOpen.Add(1)
	for {
		p := connPeak.Load()
		if n <= p || connPeak.CompareAndSwap(p, n) {
			return
		}
	}
}

// Connections opened, dials that failed (by when they began) and connections closed, by
// second from the start (the last slot holds everything later).
var connectsPerS, failedPerS, closedPerS [600]atomic.Int64

func perSecond(slots *[600]atomic.Int64, t time.Time) {
	i := int(t.Sub(state.start) / time.Second)
	slots[max(0, min(i, len(slots)-1))].Add(1)
}

func perSecondList(slots *[600]atomic.Int64) []int64 {
	last := -1
	for i := range slots {
		if slots[i].Load() != 0 {
			last = i
		}
	}
	out := make([]int64, last+1)
	for i := range out {
		out[i] = slots[i].Load()
	}
	return out
}

func (hooks) OnBrokerDisconnect(kgo.BrokerMetadata, net.Conn) {
	perSecond(&closedPerS, time.Now())
	connClosed.Add(1)
	connOpen.Add(-1)
}

func (hooks) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		if !ignorable(err) {
			state.errors.add("write "+kmsg.NameForKey(key), err)
		}
		return
	}
	if key >= 0 && int(key) < len(requestCounts) {
		requestCounts[key].Add(1)
	}
}

func (hooks) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil && !ignorable(err) {
		state.errors.add("read "+kmsg.NameForKey(key), err)
	}
}

// ignorable: a request the client gave up itself (a fetch canceled when the assignment
// changed, anything in flight at Close).
func ignorable(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed)
}

// OnBrokerE2E notes fetches that took longer than slow_ms from write to read: with every
// partition written to many times a second, a fetch (min bytes 1) should return at once.
//
// It also times every Produce request from write to read (the broker's answer, without
// the client's linger and queueing).
func (h hooks) OnBrokerE2E(meta kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key == 0 && e2e.Err() == nil {
		state.produceRequests.record(e2e.DurationE2E().Microseconds())
		return
	}
	if key != 1 || e2e.Err() != nil {
		return
	}
	d := e2e.DurationE2E()
	if float64(d.Microseconds()) <= state.cfg.SlowMs*1000 {
		return
	}
	state.slowFetches.Add(1)
	state.slowMu.Lock()
	defer state.slowMu.Unlock()
	if len(state.slowFetchExamples) < 10 {
		end := time.Now()
		state.slowFetchExamples = append(state.slowFetchExamples, map[string]any{
			"client": h.id, "broker": meta.NodeID, "written_ms": msSince(end.Add(-d).UnixNano()),
			"e2e_ms": float64(d.Microseconds()) / 1000, "bytes_read": e2e.BytesRead,
		})
	}
}

func (hooks) OnGroupManageError(err error) {
	if ignorable(err) {
		return
	}
	state.errors.add("group session", err)
}

func requestSnapshot() (int64, map[string]int64) {
	by := map[string]int64{}
	var total int64
	for k := range requestCounts {
		if n := requestCounts[k].Load(); n > 0 {
			by[kmsg.NameForKey(int16(k))] = n
			total += n
		}
	}
	return total, by
}

// --- group assignments ---------------------------------------------------------------

type group struct {
	members int              // consumers configured in this group
	started int              // of them, created so far
	owned   []map[int32]bool // by member index within the group
	owners  []int            // by partition: how many members own it
}

func (g *group) stable(partitions int) bool {
	if g.started < g.members {
		return false
	}
	for _, n := range g.owners {
		if n != 1 {
			return false
		}
	}
	nonEmpty := 0
	for _, o := range g.owned {
		if len(o) > 0 {
			nonEmpty++
		}
	}
	return nonEmpty == min(g.members, partitions)
}

type assignments struct {
	mu          sync.Mutex
	groups      []*group
	stableCount int
	stopped     bool // the end: revocations while leaving are not instability
	assigned    int64
	revoked     int64
	lost        int64
	lastChange  time.Time
	unstable    int64 // times a group left the stable state after all had been stable
}

func (a *assignments) change(g, slot int, parts []int32, add bool, kind string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return
	}
	switch kind {
	case "assigned":
		a.assigned++
	case "revoked":
		a.revoked++
	case "lost":
		a.lost++
	}
	gr := a.groups[g]
	was := gr.stable(state.cfg.Partitions)
	for _, p := range parts {
		if int(p) >= len(gr.owners) {
			continue // not the topic's partition count: the config was wrong
		}
		have := gr.owned[slot][p]
		if add && !have {
			gr.owned[slot][p] = true
			gr.owners[p]++
		} else if !add && have {
			delete(gr.owned[slot], p)
			gr.owners[p]--
		}
	}
	a.lastChange = time.Now()
	a.update(was, gr.stable(state.cfg.Partitions))
}

func (a *assignments) memberStarted(g int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	gr := a.groups[g]
	was := gr.stable(state.cfg.Partitions)
	gr.started++
	a.update(was, gr.stable(state.cfg.Partitions))
}

// update under a.mu.
func (a *assignments) update(was, now bool) {
	if was == now {
		return
	}
	if now {
		a.stableCount++
		if a.stableCount == len(a.groups) && state.stableAt.Load() == 0 {
			state.stableAt.Store(time.Now().UnixNano())
			total, _ := requestSnapshot()
			state.requestsAtStable.Store(total)
			fmt.Fprintf(os.Stderr, "clientload: all %d groups stable at %.1f s\n", len(a.groups), state.sinceStart(time.Now()))
		}
	} else {
		a.stableCount--
		if state.stableAt.Load() != 0 {
			a.unstable++
		}
	}
}

// --- the run -------------------------------------------------------------------------

type runState struct {
	cfg    config
	start  time.Time
	errors errorCounts
	asg    assignments

	stableAt         atomic.Int64 // Unix ns; 0 = not yet
	requestsAtStable atomic.Int64
	rampEnd          atomic.Int64
	stopAt           atomic.Int64 // producers stopped
	flushedAt        atomic.Int64
	drainedAt        atomic.Int64
	closedAt         atomic.Int64

	produced, acked, failed   atomic.Int64
	ackedSteady               atomic.Int64
	consumed, consumedSteady  atomic.Int64
	produceLat, produceSteady histogram
	e2eLat, e2eSteady         histogram
	produceRequests           histogram // Produce requests, write to read
	producerStarts            []time.Time
	requestsAtStop            atomic.Int64
	stopping                  atomic.Bool // producer callbacks after the snapshot are not counted
	closeTimedOut             atomic.Int64
	slowCount                 atomic.Int64
	slowMu                    sync.Mutex
	slowSteady                atomic.Int64
	slowFetches               atomic.Int64
	slowFetchExamples         []map[string]any
	debugLog                  *os.File
	debugMu                   sync.Mutex
	slowExamples              map[bool][]map[string]any // by steady
	clientsStarted            atomic.Int64

	frozen     atomic.Bool // the counts below were taken
	frozenMu   sync.Mutex
	frozenVals map[string]int64

	producers []*kgo.Client
	consumers []member
	clientsMu sync.Mutex
	printOnce sync.Once
}

type member struct {
	cl    *kgo.Client
	group int
}

var state = &runState{}

func (s *runState) sinceStart(t time.Time) float64 { return t.Sub(s.start).Seconds() }

func msSince(ns int64) any {
	if ns == 0 {
		return nil
	}
	return math.Round(float64(ns-state.start.UnixNano())/1e4) / 100
}

func commonOpts(clientID string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(strings.Split(state.cfg.Bootstrap, ",")...),
		kgo.ClientID(clientID),
		kgo.WithHooks(hooks{clientID}),
		kgo.WithLogger(logger(clientID)),
	}
}

func runProducer(i int, stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	opts := append(commonOpts(fmt.Sprintf("clientload-p%d", i)), kgo.DefaultProduceTopic(state.cfg.Topic),
		// A random partition for each batch (every record here): franz-go's default
		// (KIP-794's uniform-bytes) sticks to one partition for 64 KiB, over a minute
		// at this rate, which leaves some partitions without any record.
		kgo.RecordPartitioner(kgo.StickyPartitioner()))
	if l := state.cfg.LingerMs; l != nil && *l >= 0 {
		opts = append(opts, kgo.ProducerLinger(time.Duration(*l)*time.Millisecond))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		state.errors.add("new producer", err)
		return
	}
	state.clientsMu.Lock()
	state.producers = append(state.producers, cl)
	state.clientsMu.Unlock()
	state.clientsStarted.Add(1)

	interval := time.Duration(float64(time.Second) / state.cfg.Rate)
	select { // a random phase: the producers do not tick together
	case <-stop:
		return
	case <-time.After(time.Duration(rand.Int64N(int64(interval)))):
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	state.clientsMu.Lock()
	state.producerStarts = append(state.producerStarts, time.Now())
	state.clientsMu.Unlock()
	for {
		value := make([]byte, state.cfg.RecordSize)
		for j := 8; j < len(value); j++ {
			value[j] = 'x'
		}
		sent := time.Now()
		binary.BigEndian.PutUint64(value, uint64(sent.UnixNano()))
		state.produced.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if state.stopping.Load() {
				return
			}
			if err != nil {
				state.failed.Add(1)
				state.errors.add("produce", err)
				return
			}
			state.acked.Add(1)
			us := time.Since(sent).Microseconds()
			state.produceLat.record(us)
			if st := state.stableAt.Load(); st != 0 && sent.UnixNano() >= st {
				state.produceSteady.record(us)
				state.ackedSteady.Add(1)
			}
		})
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
	}
}

func runConsumer(i int, ctx context.Context, done *sync.WaitGroup) {
	defer done.Done()
	g := i % state.cfg.Groups
	slot := i / state.cfg.Groups
	name := fmt.Sprintf("%s-%d", state.cfg.GroupPrefix, g)
	var cl *kgo.Client
	partsOf := func(m map[string][]int32) []int32 { return m[state.cfg.Topic] }
	opts := append(commonOpts(fmt.Sprintf("clientload-c%d", i)),
		kgo.ConsumerGroup(name),
		kgo.ConsumeTopics(state.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			state.asg.change(g, slot, partsOf(m), true, "assigned")
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, c *kgo.Client, m map[string][]int32) {
			// What franz-go does when this callback is not set: commit before the
			// partitions move (here: everything polled, as it was all processed).
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := c.CommitUncommittedOffsets(cctx); err != nil && !errors.Is(err, context.Canceled) {
				state.errors.add("commit on revoke", err)
			}
			cancel()
			state.asg.change(g, slot, partsOf(m), false, "revoked")
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			state.asg.change(g, slot, partsOf(m), false, "lost")
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		state.errors.add("new consumer", err)
		return
	}
	state.clientsMu.Lock()
	state.consumers = append(state.consumers, member{cl, g})
	state.clientsMu.Unlock()
	state.clientsStarted.Add(1)
	state.asg.memberStarted(g)

	for ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		now := time.Now().UnixNano()
		fetches.EachError(func(t string, p int32, err error) {
			if ignorable(err) {
				return
			}
			state.errors.add("fetch", err)
		})
		st := state.stableAt.Load()
		fetches.EachRecord(func(r *kgo.Record) {
			if len(r.Value) < 8 {
				return
			}
			sent := int64(binary.BigEndian.Uint64(r.Value))
			us := (now - sent) / 1000
			state.consumed.Add(1)
			state.e2eLat.record(us)
			if float64(us) > state.cfg.SlowMs*1000 {
				steady := st != 0 && sent >= st
				state.slowCount.Add(1)
				if steady {
					state.slowSteady.Add(1)
				}
				state.slowMu.Lock()
				if n := len(state.slowExamples[steady]); n < 10 {
					state.slowExamples[steady] = append(state.slowExamples[steady], map[string]any{
						"group": g, "consumer": i, "partition": r.Partition, "offset": r.Offset,
						"sent_ms": msSince(sent), "received_ms": msSince(now), "e2e_ms": float64(us) / 1000,
					})
				}
				state.slowMu.Unlock()
			}
			if st != 0 && sent >= st {
				state.consumedSteady.Add(1)
				state.e2eSteady.record(us)
			}
		})
	}
}

// freeze takes the counts reported as the run's (before closing, whose aborted
// records and revocations are not the load's).
func freeze() {
	state.frozenMu.Lock()
	defer state.frozenMu.Unlock()
	if state.frozen.Load() {
		return
	}
	state.stopping.Store(true)
	state.frozenVals = map[string]int64{
		"produced": state.produced.Load(), "acked": state.acked.Load(), "failed": state.failed.Load(),
		"acked_steady": state.ackedSteady.Load(),
		"consumed":     state.consumed.Load(), "consumed_steady": state.consumedSteady.Load(),
	}
	state.asg.mu.Lock()
	state.asg.stopped = true
	state.asg.mu.Unlock()
	state.frozen.Store(true)
}

func result(reason string) map[string]any {
	freeze()
	state.frozenMu.Lock()
	f := state.frozenVals
	state.frozenMu.Unlock()
	c := state.cfg
	total, by := requestSnapshot()
	errs, errTotal := state.errors.snapshot()

	a := &state.asg
	a.mu.Lock()
	stableGroups := a.stableCount
	var lastChange any
	if !a.lastChange.IsZero() {
		lastChange = msSince(a.lastChange.UnixNano())
	}
	asg := map[string]any{
		"assigned_callbacks": a.assigned, "revoked_callbacks": a.revoked, "lost_callbacks": a.lost,
		"unstable_after_stable": a.unstable,
	}
	a.mu.Unlock()

	// The generation each group reached: the largest any member has.
	gens := make([]int32, c.Groups)
	state.clientsMu.Lock()
	consumers := append([]member(nil), state.consumers...)
	state.clientsMu.Unlock()
	for _, m := range consumers {
		if _, gen := m.cl.GroupMetadata(); gen > gens[m.group] {
			gens[m.group] = gen
		}
	}
	var genSum int64
	for _, g := range gens {
		genSum += int64(g)
	}

	steady := map[string]any{}
	if st := state.stableAt.Load(); st != 0 {
		end := state.stopAt.Load()
		reqEnd := state.requestsAtStop.Load()
		if end == 0 {
			end, reqEnd = time.Now().UnixNano(), total
		}
		steady["seconds"] = math.Round(float64(end-st)/1e7) / 100
		steady["requests"] = reqEnd - state.requestsAtStable.Load()
		steady["from_ms"] = msSince(st)
		steady["to_ms"] = msSince(end)
	}

	return map[string]any{
		"result":          reason,
		"config":          c,
		"start_unix_ms":   state.start.UnixMilli(),
		"clients_started": state.clientsStarted.Load(),
		"times_ms": map[string]any{
			"ramp_end": msSince(state.rampEnd.Load()), "stop": msSince(state.stopAt.Load()),
			"flushed": msSince(state.flushedAt.Load()), "drained": msSince(state.drainedAt.Load()),
			"closed": msSince(state.closedAt.Load()), "now": msSince(time.Now().UnixNano()),
		},
		"connections": map[string]any{
			"opened": connOpened.Load(), "failed": connFailed.Load(), "closed": connClosed.Load(),
			"open": connOpen.Load(), "peak_open": connPeak.Load(),
			"opened_per_s": perSecondList(&connectsPerS), "failed_per_s": perSecondList(&failedPerS),
			"closed_per_s": perSecondList(&closedPerS),
		},
		"produced": f["produced"], "acked": f["acked"], "failed": f["failed"],
		"unacked_at_end":            f["produced"] - f["acked"] - f["failed"],
		"acked_steady":              f["acked_steady"],
		"produce_latency_ms":        state.produceLat.summary(),
		"produce_latency_steady_ms": state.produceSteady.summary(),
		"produce_request_ms":        state.produceRequests.summary(),
		"produce_target":            produceTarget(),
		"consumed":                  f["consumed"],
		"consumed_expected":         f["acked"] * int64(c.Groups),
		"consumed_steady":           f["consumed_steady"],
		"e2e_latency_ms":            state.e2eLat.summary(),
		"e2e_latency_steady_ms":     state.e2eSteady.summary(),
		"stable_ms":                 msSince(state.stableAt.Load()),
		"stable_groups_at_end":      stableGroups,
		"last_assignment_change_ms": lastChange,
		"assignments":               asg,
		"generations":               genSum,
		"generations_by_group":      gens,
		"requests":                  map[string]any{"total": total, "by_api": by},
		"requests_steady":           steady,
		"errors_total":              errTotal,
		"errors":                    errs,
		"close_timed_out":           state.closeTimedOut.Load(),
		"slow_records":              state.slowCount.Load(),
		"slow_records_steady":       state.slowSteady.Load(),
		"slow_examples":             slowExamples(false),
		"slow_fetches":              state.slowFetches.Load(),
		"slow_fetch_examples":       slowFetchExamples(),
		"slow_examples_steady":      slowExamples(true),
	}
}

func slowExamples(steady bool) []map[string]any {
	state.slowMu.Lock()
	defer state.slowMu.Unlock()
	return append([]map[string]any{}, state.slowExamples[steady]...)
}

// produceTarget: the records the producers would have sent at their rate from their
// first tick to the stop (or now).
func produceTarget() int64 {
	end := time.Now()
	if st := state.stopAt.Load(); st != 0 {
		end = time.Unix(0, st)
	}
	state.clientsMu.Lock()
	defer state.clientsMu.Unlock()
	var target float64
	for _, t := range state.producerStarts {
		if end.After(t) {
			target += 1 + math.Floor(end.Sub(t).Seconds()*state.cfg.Rate)
		}
	}
	return int64(target)
}

func slowFetchExamples() []map[string]any {
	state.slowMu.Lock()
	defer state.slowMu.Unlock()
	return append([]map[string]any{}, state.slowFetchExamples...)
}

func printResult(reason string) {
	state.printOnce.Do(func() {
		line, err := json.Marshal(result(reason))
		if err != nil {
			line = []byte(fmt.Sprintf(`{"result": "unprintable: %s"}`, err))
		}
		os.Stdout.Write(append(line, '\n'))
	})
}

func progress(stop <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			state.asg.mu.Lock()
			stable := state.asg.stableCount
			state.asg.mu.Unlock()
			_, errs := state.errors.snapshot()
			total, _ := requestSnapshot()
			fmt.Fprintf(os.Stderr, "clientload: %5.1f s  clients %d  connections %d  produced %d acked %d failed %d  consumed %d  groups stable %d/%d  requests %d  errors %d\n",
				state.sinceStart(now), state.clientsStarted.Load(), connOpen.Load(), state.produced.Load(), state.acked.Load(),
				state.failed.Load(), state.consumed.Load(), stable, state.cfg.Groups, total, errs)
		}
	}
}

// within runs f and waits for it at most d; false if it did not return in time.
func within(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func run() {
	c := state.cfg
	state.errors.kinds = map[string]*errorKind{}
	state.slowExamples = map[bool][]map[string]any{}
	state.asg.groups = make([]*group, c.Groups)
	for g := range state.asg.groups {
		members := c.Consumers / c.Groups
		if g < c.Consumers%c.Groups {
			members++
		}
		gr := &group{members: members, owned: make([]map[int32]bool, members), owners: make([]int, c.Partitions)}
		for m := range gr.owned {
			gr.owned[m] = map[int32]bool{}
		}
		state.asg.groups[g] = gr
	}

	state.start = time.Now()
	hard := time.Duration((c.DurationS + c.FlushS + c.DrainS + c.CloseS + 30) * float64(time.Second))
	time.AfterFunc(hard, func() {
		fmt.Fprintf(os.Stderr, "clientload: hard deadline (%.0f s) reached\n", hard.Seconds())
		printResult("hard deadline")
		os.Exit(3)
	})
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-signals
		fmt.Fprintf(os.Stderr, "clientload: %v\n", s)
		printResult("signal " + s.String())
		os.Exit(3)
	}()
	progressStop := make(chan struct{})
	go progress(progressStop)

	stopProducing := make(chan struct{})
	consumeCtx, stopConsuming := context.WithCancel(context.Background())
	var producersDone, consumersDone sync.WaitGroup
	deadline := state.start.Add(time.Duration(c.DurationS * float64(time.Second)))

	// Interleave producers and consumers over the ramp.
	type start struct {
		consumer bool
		i        int
	}
	var order []start
	for k := 0; k < max(c.Producers, c.Consumers); k++ {
		if k < c.Consumers {
			order = append(order, start{true, k})
		}
		if k < c.Producers {
			order = append(order, start{false, k})
		}
	}
	ramp := time.Duration(c.RampS * float64(time.Second))
	for k, s := range order {
		if ramp > 0 {
			at := state.start.Add(time.Duration(int64(ramp) * int64(k) / int64(len(order))))
			time.Sleep(time.Until(at))
		}
		if time.Now().After(deadline) {
			break
		}
		if s.consumer {
			consumersDone.Add(1)
			go runConsumer(s.i, consumeCtx, &consumersDone)
		} else {
			producersDone.Add(1)
			go runProducer(s.i, stopProducing, &producersDone)
		}
	}
	state.rampEnd.Store(time.Now().UnixNano())
	fmt.Fprintf(os.Stderr, "clientload: %d clients started in %.1f s\n", len(order), state.sinceStart(time.Now()))

	time.Sleep(time.Until(deadline))
	close(stopProducing)
	producersDone.Wait() // the tickers: immediate
	state.stopAt.Store(time.Now().UnixNano())
	total, _ := requestSnapshot()
	state.requestsAtStop.Store(total)

	state.clientsMu.Lock()
	producers := append([]*kgo.Client(nil), state.producers...)
	state.clientsMu.Unlock()
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), time.Duration(c.FlushS*float64(time.Second)))
	var flushing sync.WaitGroup
	for _, cl := range producers {
		flushing.Add(1)
		go func() { defer flushing.Done(); cl.Flush(flushCtx) }()
	}
	flushing.Wait()
	cancelFlush()
	state.flushedAt.Store(time.Now().UnixNano())

	drainEnd := time.Now().Add(time.Duration(c.DrainS * float64(time.Second)))
	want := state.acked.Load() * int64(c.Groups)
	for c.Consumers > 0 && state.consumed.Load() < want && time.Now().Before(drainEnd) {
		time.Sleep(100 * time.Millisecond)
	}
	state.drainedAt.Store(time.Now().UnixNano())
	fmt.Fprintf(os.Stderr, "clientload: producers stopped at %.1f s, flushed, drained; closing\n",
		float64(state.stopAt.Load()-state.start.UnixNano())/1e9)

	// The run's counts are taken before closing: the records closing aborts and the
	// revocations of leaving members are not the load's.
	freeze()
	state.errors.closingAt.Store(time.Now().UnixNano())

	stopConsuming()
	state.clientsMu.Lock()
	consumers := append([]member(nil), state.consumers...)
	state.clientsMu.Unlock()
	closeBy := time.Duration(c.CloseS * float64(time.Second))
	var closing sync.WaitGroup
	for _, m := range consumers {
		cl := m.cl
		closing.Add(1)
		go func() {
			defer closing.Done()
			if !within(closeBy, func() {
				ctx, cancel := context.WithTimeout(context.Background(), closeBy)
				defer cancel()
				if err := cl.LeaveGroupContext(ctx); err != nil {
					state.errors.add("leave group", err)
				}
				cl.Close()
			}) {
				state.closeTimedOut.Add(1)
			}
		}()
	}
	for _, cl := range producers {
		closing.Add(1)
		go func() {
			defer closing.Done()
			if !within(closeBy, cl.Close) {
				state.closeTimedOut.Add(1)
			}
		}()
	}
	within(closeBy+5*time.Second, closing.Wait)
	consumersDone.Wait()
	state.closedAt.Store(time.Now().UnixNano())
	close(progressStop)
	fmt.Fprintf(os.Stderr, "clientload: closed at %.1f s\n", state.sinceStart(time.Now()))
	printResult("ok")
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: clientload '<json config>'")
		os.Exit(2)
	}
	if err := json.Unmarshal([]byte(os.Args[1]), &state.cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bad config:", err)
		os.Exit(2)
	}
	if err := state.cfg.defaults(); err != nil {
		fmt.Fprintln(os.Stderr, "bad config:", err)
		os.Exit(2)
	}
	if state.cfg.DebugLog != "" {
		f, err := os.Create(state.cfg.DebugLog)
		if err != nil {
			fmt.Fprintln(os.Stderr, "debug log:", err)
			os.Exit(2)
		}
		state.debugLog = f
	}
	run()
}
