// groupmember: one franz-go (github.com/twmb/franz-go/pkg/kgo) consumer-group member,
// as a user runs it. Started by compat/java/test_franz_go_consumer_protocol.py.
//
//	groupmember '<json config>'
//
// It subscribes, polls, commits what it processed after every poll, and reports what it
// sees as JSON lines on stdout, the same events as compat/python/group_worker.py (each
// with "t", the wall clock in Unix milliseconds, when it happened):
//
//	{"ev": "started"}
//	{"ev": "assign",  "added":   [[topic, p], ...], "assignment": [[topic, p], ...]}
//	{"ev": "revoke",  "removed": [[topic, p], ...], "assignment": [...]}
//	{"ev": "lost",    "removed": [[topic, p], ...], "assignment": [...]}
//	{"ev": "records", "records": [[topic, p, offset, value], ...]}
//	{"ev": "commit",  "ok": true, "offsets": [[topic, p, offset, ""], ...]}
//	{"ev": "commit",  "ok": false, "error": "...", "offsets": [...]}
//	{"ev": "error",   "error": "..."}        a fetch error the client reported
//	{"ev": "requests", "counts": {"ConsumerGroupHeartbeat": n, ...}}   after Close
//	{"ev": "closed"}                         after a clean Close (which leaves the group)
//
// Config keys: bootstrap, group, topics, client_id, protocol ("consumer": KIP-848 via
// kgo.ServerSideBalancer, the default; "classic": JoinGroup/SyncGroup), balancer
// ("cooperative-sticky", the default, or "range"), session_timeout_ms, instance_id,
// log_level ("debug" | "info" | "warn" | "error" | "none": franz-go's own log on stderr).
//
// Rebalances are blocked while a poll's records are processed and committed
// (kgo.BlockRebalanceOnPoll): a revoked partition's records are always committed
// before it moves, so that no record is consumed twice across the group.
//
// Commands on stdin, one per line: "close" = AllowRebalance, Close (leave the group) and
// exit 0. EOF on stdin (the test went away) does the same.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type config struct {
	Bootstrap        string   `json:"bootstrap"`
	Group            string   `json:"group"`
	Topics           []string `json:"topics"`
	ClientID         string   `json:"client_id"`
	Protocol         string   `json:"protocol"`
	Balancer         string   `json:"balancer"`
	SessionTimeoutMs int      `json:"session_timeout_ms"`
	InstanceID       string   `json:"instance_id"`
	LogLevel         string   `json:"log_level"`
}

var outMu sync.Mutex

func emit(event string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["ev"] = event
	fields["t"] = time.Now().UnixMilli()
	line, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(line, '\n'))
}

type tp struct {
	topic     string
	partition int32
}

func list(parts map[tp]bool) [][]any {
	keys := make([]tp, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].partition < keys[j].partition
	})
	out := make([][]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, []any{k.topic, k.partition})
	}
	return out
}

// assignment is the member's whole assignment, as the rebalance callbacks leave it.
type assignment struct {
	mu    sync.Mutex
	owned map[tp]bool
}

func (a *assignment) change(event string, parts map[string][]int32, add bool) {
	changed := map[tp]bool{}
	for t, ps := range parts {
		for _, p := range ps {
			changed[tp{t, p}] = true
		}
	}
	if len(changed) == 0 { // Revoked is also called at the end of a session with nothing
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range changed {
		if add {
			a.owned[k] = true
		} else {
			delete(a.owned, k)
		}
	}
	key := "removed"
	if add {
		key = "added"
	}
	emit(event, map[string]any{key: list(changed), "assignment": list(a.owned)})
}

// requestCounter counts the requests written to brokers, by API name: the evidence of
// which group protocol the client really spoke.
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (r *requestCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		return
	}
	r.mu.Lock()
	r.counts[kmsg.NameForKey(key)]++
	r.mu.Unlock()
}

func (r *requestCounter) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

func logLevel(name string) kgo.LogLevel {
	switch name {
	case "debug":
		return kgo.LogLevelDebug
	case "info", "":
		return kgo.LogLevelInfo
	case "warn":
		return kgo.LogLevelWarn
	case "error":
		return kgo.LogLevelError
	default:
		return kgo.LogLevelNone
	}
}

func run(c config) error {
	owned := &assignment{owned: map[tp]bool{}}
	requests := &requestCounter{counts: map[string]int{}}

	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(c.Bootstrap, ",")...),
		kgo.ClientID(c.ClientID),
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(c.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.WithHooks(requests),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, logLevel(c.LogLevel), func() string {
			return time.Now().Format("15:04:05.000 ")
		})),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
			owned.change("assign", parts, true)
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
			// Nothing to commit here: every poll's records were committed before
			// AllowRebalance let this callback run.
			owned.change("revoke", parts, false)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
			owned.change("lost", parts, false)
		}),
	}
	switch c.Balancer {
	case "cooperative-sticky", "":
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	case "range":
		opts = append(opts, kgo.Balancers(kgo.RangeBalancer()))
	default:
		return fmt.Errorf("unknown balancer %q", c.Balancer)
	}
	switch c.Protocol {
	case "consumer", "":
		// KIP-848: ConsumerGroupHeartbeat; the coordinator assigns ("uniform" for a
		// sticky balancer, "range" for range).
		opts = append(opts, kgo.ServerSideBalancer())
	case "classic":
	default:
		return fmt.Errorf("unknown protocol %q", c.Protocol)
	}
	if c.SessionTimeoutMs > 0 {
		opts = append(opts, kgo.SessionTimeout(time.Duration(c.SessionTimeoutMs)*time.Millisecond))
	}
	if c.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(c.InstanceID))
	}

	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}

	ctx, stop := context.WithCancel(context.Background())
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			if strings.TrimSpace(scanner.Text()) == "close" {
				break
			}
		}
		stop() // "close", or EOF: nobody is listening any more
	}()

	emit("started", nil)
	for ctx.Err() == nil {
		pollCtx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		fetches.EachError(func(t string, p int32, err error) {
			if err == context.DeadlineExceeded || err == context.Canceled {
				return
			}
			emit("error", map[string]any{"error": fmt.Sprintf("%s/%d: %v", t, p, err)})
		})
		var records [][]any
		next := map[string]map[int32]kgo.EpochOffset{}
		fetches.EachRecord(func(r *kgo.Record) {
			records = append(records, []any{r.Topic, r.Partition, r.Offset, string(r.Value)})
			if next[r.Topic] == nil {
				next[r.Topic] = map[int32]kgo.EpochOffset{}
			}
			next[r.Topic][r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		})
		if len(records) > 0 {
			emit("records", map[string]any{"records": records})
			commit(ctx, cl, next)
		}
		cl.AllowRebalance()
	}

	cl.Close() // leaves the group (ConsumerGroupHeartbeat, epoch -1; -2 if static), revoking all
	emit("requests", map[string]any{"counts": requests.snapshot()})
	emit("closed", nil)
	return nil
}

// commit commits the next offsets synchronously and reports the outcome, partition
// errors included.
func commit(ctx context.Context, cl *kgo.Client, next map[string]map[int32]kgo.EpochOffset) {
	var offsets [][]any
	for t, ps := range next {
		for p, eo := range ps {
			offsets = append(offsets, []any{t, p, eo.Offset, ""})
		}
	}
	sort.Slice(offsets, func(i, j int) bool {
		if offsets[i][0].(string) != offsets[j][0].(string) {
			return offsets[i][0].(string) < offsets[j][0].(string)
		}
		return offsets[i][1].(int32) < offsets[j][1].(int32)
	})
	var failure []string
	commitCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl.CommitOffsetsSync(commitCtx, next, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			failure = append(failure, err.Error())
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					failure = append(failure, fmt.Sprintf("%s/%d: %v", t.Topic, p.Partition, err))
				}
			}
		}
	})
	if len(failure) > 0 {
		emit("commit", map[string]any{"ok": false, "error": strings.Join(failure, "; "), "offsets": offsets})
	} else {
		emit("commit", map[string]any{"ok": true, "offsets": offsets})
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: groupmember '<json config>'")
		os.Exit(2)
	}
	var c config
	if err := json.Unmarshal([]byte(os.Args[1]), &c); err != nil {
		fmt.Fprintln(os.Stderr, "bad config:", err)
		os.Exit(2)
	}
	if err := run(c); err != nil {
		emit("crashed", map[string]any{"error": err.Error()})
		os.Exit(1)
	}
}
