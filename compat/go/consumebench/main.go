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
//	{"records": N, "bytes": B, "seconds": S, "connect_seconds": C, "errors": E}
//
// bytes are key + value bytes; seconds run from the first record returned by a poll
// to the last one counted; connect_seconds from the client's creation to the first
// record. Exits 1 (with what there is) if `timeout` passes first.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
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

	created := time.Now()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.ConsumeTopics(*topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
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

	out := map[string]any{
		"records":         n,
		"bytes":           bytes,
		"seconds":         last.Sub(first).Seconds(),
		"connect_seconds": first.Sub(created).Seconds(),
		"errors":          errs,
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
