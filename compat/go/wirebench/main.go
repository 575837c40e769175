// wirebench: a thin Produce / Fetch load generator for bench/broker_bound.py (issue #17):
// it speaks the wire protocol itself so that the broker, not the client, is the bound.
//
//	wirebench -broker 127.0.0.1:9092 -topic t -partitions 3 -mode produce -acks 1 -mb 2000
//	wirebench -broker 127.0.0.1:9092 -topic t -partitions 3 -mode fetch -mb 2000
//
// produce: -connections connections, each owning the partitions p with p % connections
// == its index, sends Produce v9 requests of one prebuilt record batch per partition
// (-batch-records records of -record-size bytes, uncompressed, no key) with up to
// -inflight requests in flight, until -mb MB (10^6 bytes of record values) went out in
// total. The batch is built once: the broker assigns offsets, so resending it is a new
// batch to it.
//
// fetch: each connection reads its partitions from offset 0 with Fetch v12 (no session,
// max_wait 500 ms, the Java consumer's limits: 50 MiB a response, 1 MiB a partition),
// one request in flight, until it has read them to their high watermarks or -mb MB of
// record batches arrived in all. The response is read
// into one reused buffer and only the batch headers are looked at (for the next offset):
// no record is decoded, no checksum computed.
//
// Prints one JSON line: {"bytes": B, "requests": N, "seconds": S, "p50_ms": .., "p99_ms":
// .., "max_ms": .., "errors": false} where bytes are record value bytes (produce) or record
// batch bytes (fetch) and the latencies are per request, write to response. Exits 1 on a
// broker error code or a broken connection, 2 on bad flags.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

type options struct {
	broker, topic, mode                     string
	partitions, connections, inflight, acks int
	batchRecords, recordSize                int
	mb                                      float64
	timeout                                 time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.broker, "broker", "127.0.0.1:9092", "host:port of the broker")
	flag.StringVar(&o.topic, "topic", "", "topic (it must exist)")
	flag.StringVar(&o.mode, "mode", "", "produce or fetch")
	flag.IntVar(&o.partitions, "partitions", 3, "the topic's partitions")
	flag.IntVar(&o.connections, "connections", 1, "connections, the partitions shared out among them")
	flag.IntVar(&o.inflight, "inflight", 5, "produce requests in flight on a connection")
	flag.IntVar(&o.acks, "acks", 1, "produce acks: 0 is not offered, 1 or -1")
	flag.IntVar(&o.batchRecords, "batch-records", 250, "records in the produced batch")
	flag.IntVar(&o.recordSize, "record-size", 1024, "value bytes of a produced record")
	flag.Float64Var(&o.mb, "mb", 1000, "MB (10^6 bytes) to send or read in all")
	flag.DurationVar(&o.timeout, "timeout", 300*time.Second, "give up after this long")
	flag.Parse()
	if o.topic == "" || (o.mode != "produce" && o.mode != "fetch") || o.partitions < 1 ||
		o.connections < 1 || o.connections > o.partitions || o.inflight < 1 ||
		(o.acks != 1 && o.acks != -1) || o.batchRecords < 1 || o.recordSize < 0 || o.mb <= 0 {
		fmt.Fprintln(os.Stderr, "wirebench: -topic, -mode produce|fetch, 1 <= -connections <= -partitions, -acks 1|-1 and positive sizes are required")
		os.Exit(2)
	}

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		latencies []time.Duration
		requests  int
		failure   error
	)
	b := &budget{target: int64(o.mb * 1e6)}
	start := time.Now()
	deadline := start.Add(o.timeout)
	for i := 0; i < o.connections; i++ {
		var mine []int32
		for p := i; p < o.partitions; p += o.connections {
			mine = append(mine, int32(p))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(o.broker, deadline)
			var lat []time.Duration
			if err == nil {
				defer c.conn.Close()
				if o.mode == "produce" {
					lat, err = produce(c, &o, mine, b)
				} else {
					lat, err = fetch(c, &o, mine, b)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			latencies = append(latencies, lat...)
			requests += len(lat)
			if err != nil && failure == nil {
				failure = err
			}
		}()
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()

	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	ms := func(q float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	line, _ := json.Marshal(map[string]any{
		"bytes": b.done.Load(), "requests": requests, "seconds": seconds,
		"p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": ms(1), "errors": failure != nil,
	})
	fmt.Println(string(line))
	if failure != nil {
		fmt.Fprintln(os.Stderr, "wirebench:", failure)
		os.Exit(1)
	}
}

// cxn is one connection: requests framed by kmsg, responses read whole into a reused
// buffer.
type cxn struct {
	conn net.Conn
	r    *bufio.Reader
	f    *kmsg.RequestFormatter
	buf  []byte
}

func dial(addr string, deadline time.Time) (*cxn, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	return &cxn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("wirebench"))}, nil
}

// read returns the next response's body past its header (correlation id, and the
// header's tagged fields: both versions used here are flexible).
func (c *cxn) read() ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c.r, size[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(size[:]))
	if n < 5 {
		return nil, fmt.Errorf("response of %d bytes", n)
	}
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	b := c.buf[:n]
	if _, err := io.ReadFull(c.r, b); err != nil {
		return nil, err
	}
	return b[5:], nil // correlation id, then an empty tag buffer
}

func produce(c *cxn, o *options, mine []int32, b *budget) ([]time.Duration, error) {
	batch := recordBatch(o.batchRecords, o.recordSize)
	perRequest := int64(len(mine) * o.batchRecords * o.recordSize)
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, int16(o.acks), 30000
	t := kmsg.NewProduceRequestTopic()
	t.Topic = o.topic
	for _, p := range mine {
		tp := kmsg.NewProduceRequestTopicPartition()
		tp.Partition, tp.Records = p, batch
		t.Partitions = append(t.Partitions, tp)
	}
	req.Topics = append(req.Topics, t)
	wire := c.f.AppendRequest(nil, req, 0)

	// Requests go out from this goroutine, responses come back in order on another.
	sent := make(chan time.Time, o.inflight)
	errs := make(chan error, 1)
	var lat []time.Duration
	go func() {
		for at := range sent {
			body, err := c.read()
			if err == nil {
				err = produceError(body)
			}
			if err != nil {
				errs <- err
				for range sent { // let the writer finish
				}
				return
			}
			lat = append(lat, time.Since(at))
			b.done.Add(perRequest)
		}
		errs <- nil
	}()
	var err error
	for b.claim(perRequest) {
		sent <- time.Now() // blocks while -inflight are outstanding
		if _, err = c.conn.Write(wire); err != nil {
			break
		}
	}
	close(sent)
	if rerr := <-errs; err == nil {
		err = rerr
	}
	return lat, err
}

// budget is the bytes to move, shared by the connections: done counts what the broker
// answered for, claimed what was sent or is about to be.
type budget struct {
	target        int64
	done, claimed atomic.Int64
}

// claim takes n more bytes to send, or says the target is already met by what went out.
func (b *budget) claim(n int64) bool {
	return b.claimed.Add(n)-n < b.target
}

func produceError(body []byte) error {
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	if err := resp.ReadFrom(body); err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return fmt.Errorf("produce %s/%d: error code %d", t.Topic, p.Partition, p.ErrorCode)
			}
		}
	}
	return nil
}

func fetch(c *cxn, o *options, mine []int32, b *budget) ([]time.Duration, error) {
	next := make(map[int32]int64, len(mine))
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 12, -1, 500, 1, 50<<20
	req.SessionEpoch = -1
	var lat []time.Duration
	var wire []byte
	caughtUp := 0 // of mine, the partitions whose next offset reached the high watermark
	for corr := int32(0); caughtUp < len(mine) && b.done.Load() < b.target; corr++ {
		t := kmsg.NewFetchRequestTopic()
		t.Topic = o.topic
		for _, p := range mine {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, next[p], 1<<20
			fp.CurrentLeaderEpoch, fp.LastFetchedEpoch, fp.LogStartOffset = -1, -1, -1
			t.Partitions = append(t.Partitions, fp)
		}
		req.Topics = append(req.Topics[:0], t)
		wire = c.f.AppendRequest(wire[:0], req, corr)
		at := time.Now()
		if _, err := c.conn.Write(wire); err != nil {
			return lat, err
		}
		body, err := c.read()
		if err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(at))
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = 12
		if err := resp.UnsafeReadFrom(body); err != nil {
			return lat, err
		}
		if resp.ErrorCode != 0 {
			return lat, fmt.Errorf("fetch: error code %d", resp.ErrorCode)
		}
		caughtUp = 0
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 {
					return lat, fmt.Errorf("fetch %s/%d: error code %d", rt.Topic, rp.Partition, rp.ErrorCode)
				}
				n, last, ok := completeBatches(rp.RecordBatches)
				if ok {
					next[rp.Partition] = last + 1
					b.done.Add(int64(n))
				}
				if next[rp.Partition] >= rp.HighWatermark {
					caughtUp++
				}
			}
		}
	}
	return lat, nil
}

// completeBatches walks the batch headers of a partition's records: the bytes of its
// whole batches and the last offset of the last one (a trailing partial batch, which
// Kafka may send, is left for the next fetch).
func completeBatches(b []byte) (n int, last int64, ok bool) {
	for len(b) >= 27 {
		size := 12 + int(int32(binary.BigEndian.Uint32(b[8:12])))
		if size < 27 || size > len(b) {
			break
		}
		last = int64(binary.BigEndian.Uint64(b[0:8])) + int64(int32(binary.BigEndian.Uint32(b[23:27])))
		n, ok, b = n+size, true, b[size:]
	}
	return n, last, ok
}

// recordBatch is a v2 batch (uncompressed, no producer id) of n records of size value
// bytes each, no key, no headers.
func recordBatch(n, size int) []byte {
	value := make([]byte, size)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var records []byte
	for i := 0; i < n; i++ {
		var body []byte
		body = append(body, 0)                        // attributes
		body = binary.AppendVarint(body, 0)           // timestamp delta
		body = binary.AppendVarint(body, int64(i))    // offset delta
		body = binary.AppendVarint(body, -1)          // no key
		body = binary.AppendVarint(body, int64(size)) // value
		body = append(body, value...)
		body = binary.AppendVarint(body, 0) // headers
		records = binary.AppendVarint(records, int64(len(body)))
		records = append(records, body...)
	}
	now := time.Now().UnixMilli()
	// From attributes on: what the CRC covers.
	var tail []byte
	tail = binary.BigEndian.AppendUint16(tail, 0)           // attributes
	tail = binary.BigEndian.AppendUint32(tail, uint32(n-1)) // last offset delta
	tail = binary.BigEndian.AppendUint64(tail, uint64(now)) // first timestamp
	tail = binary.BigEndian.AppendUint64(tail, uint64(now)) // max timestamp
	tail = binary.BigEndian.AppendUint64(tail, ^uint64(0))  // producer id -1
	tail = binary.BigEndian.AppendUint16(tail, ^uint16(0))  // producer epoch -1
	tail = binary.BigEndian.AppendUint32(tail, ^uint32(0))  // base sequence -1
	tail = binary.BigEndian.AppendUint32(tail, uint32(n))   // records
	tail = append(tail, records...)
	var b []byte
	b = binary.BigEndian.AppendUint64(b, 0)                       // base offset
	b = binary.BigEndian.AppendUint32(b, uint32(4+1+4+len(tail))) // batch length
	b = binary.BigEndian.AppendUint32(b, ^uint32(0))              // partition leader epoch -1
	b = append(b, 2)                                              // magic
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(tail, crc32.MakeTable(crc32.Castagnoli)))
	return append(b, tail...)
}
