// consumebench: franz-go consume throughput, for bench/consume_clients.py (issue #17,
// point 1).
//
//	consumebench -brokers 127.0.0.1:9092 -topic t -records 500000 [-timeout 120s]
//
// One kgo.Client, no consumer group: kgo.ConsumeTopics without kgo.ConsumerGroup reads
// every partition of the topic directly (metadata, ListOffsets, then Fetch), from the
// start (kgo.ConsumeResetOffset(AtStart)), with franz-go's default fetch settings
// (FetchMaxBytes 50 MiB, FetchMaxPartitionBytes 1 MiB, FetchMaxWait 5 s). It polls
// until `records` records have arrived, then prints one JSON line on stdout:
//
//	{"records": N, "bytes": B, "seconds": S, "connect_seconds": C, "errors": E, ...}
//
// bytes are key + value bytes; seconds run from the first record returned by a poll
// to the last one counted; connect_seconds from the client's creation to the first
// record. Then what arrived, by franz-go's hooks: fetch_responses and fetch_bytes (as
// read off the socket), batches and batch_bytes; and what the Go runtime did with it:
// gc_cycles and allocated_bytes (runtime.MemStats NumGC, TotalAlloc). Exits 1 (with what there is) if `timeout` passes first.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap servers, comma separated")
	topic := flag.String("topic", "", "topic to read")
	records := flag.Int64("records", 0, "records to read before stopping")
	timeout := flag.Duration("timeout", 120*time.Second, "give up after this long")
	flag.Parse()
	if *topic == "" || *records <= 0 {
		fmt.Fprintln(os.Stderr, "consumebench: -topic and -records are required")
		os.Exit(2)
	}

	var seen wireStats
	created := time.Now()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.ConsumeTopics(*topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithHooks(&seen),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumebench:", err)
		os.Exit(2)
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	var n, bytes, errs int64
	var first, last time.Time
	for n < *records {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			errs++
			if errs <= 10 {
				fmt.Fprintf(os.Stderr, "consumebench: fetch error %s/%d: %v\n", t, p, err)
			}
		})
		got := false
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			bytes += int64(len(r.Key) + len(r.Value))
			got = true
		})
		if got {
			if first.IsZero() {
				first = time.Now()
			}
			last = time.Now()
		}
	}

	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	out := map[string]any{
		"records":         n,
		"bytes":           bytes,
		"seconds":         last.Sub(first).Seconds(),
		"connect_seconds": first.Sub(created).Seconds(),
		"errors":          errs,
		"fetch_responses": seen.responses.Load(),
		"fetch_bytes":     seen.responseBytes.Load(),
		"batches":         seen.batches.Load(),
		"batch_bytes":     seen.batchBytes.Load(),
		"gc_cycles":       mem.NumGC,
		"allocated_bytes": mem.TotalAlloc,
	}
	if first.IsZero() {
		out["seconds"], out["connect_seconds"] = 0.0, 0.0
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
	if n < *records {
		fmt.Fprintf(os.Stderr, "consumebench: timed out after %v with %d of %d records\n", *timeout, n, *records)
		os.Exit(1)
	}
}

// wireStats counts what the broker sent: Fetch responses and their bytes (as read off
// the socket), record batches and their bytes, so two brokers' responses can be
// compared for the same consume.
type wireStats struct {
	responses, responseBytes, batches, batchBytes atomic.Int64
}

func (w *wireStats) OnBrokerRead(_ kgo.BrokerMetadata, key int16, bytesRead int, _, _ time.Duration, _ error) {
	if key == 1 { // Fetch
		w.responses.Add(1)
		w.responseBytes.Add(int64(bytesRead))
	}
}

func (w *wireStats) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	w.batches.Add(1)
	w.batchBytes.Add(int64(m.CompressedBytes))
}
