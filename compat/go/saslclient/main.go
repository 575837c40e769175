// saslclient: a franz-go (github.com/twmb/franz-go/pkg/kgo) client that logs in with
// SASL OAUTHBEARER (pkg/sasl/oauth) or SCRAM (pkg/sasl/scram, delegation tokens
// included), produces records and reads them back. Started by
// compat/python/test_franz_go_sasl.py.
//
//	saslclient '<json config>'
//
// Config keys: bootstrap; ca_file (a PEM CA: TLS, i.e. SASL_SSL; the server name is the
// bootstrap host, as verified against the certificate); mechanism ("OAUTHBEARER" with
// token, or "SCRAM-SHA-256" / "SCRAM-SHA-512" with user, password and is_token: a
// delegation token's id and base64 HMAC, sent with tokenauth=true); topic; produce (how
// many records, values "v0", "v1", ...); consume (then read the topic's partitions from
// the start, no group, until as many records came back); timeout_ms (per step, default
// 20000); log_level (franz-go's own log on stderr: "debug" | "info" | "warn" | "error";
// none by default).
//
// It pings the cluster first (kgo.Client.Ping: a refused login is reported at once),
// then produces and consumes. What it saw, as JSON lines on stdout; it exits 1 after an
// error:
//
//	{"produced": n}
//	{"consumed": n, "values": ["v0", ...]}
//	{"error": "TOPIC_AUTHORIZATION_FAILED", "message": "<franz-go's error text>"}
//
// "error" is the Kafka error's name when the failure carries one, else the whole text.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

type config struct {
	Bootstrap string `json:"bootstrap"`
	CAFile    string `json:"ca_file"`
	Mechanism string `json:"mechanism"`
	Token     string `json:"token"`
	User      string `json:"user"`
	Password  string `json:"password"`
	IsToken   bool   `json:"is_token"`
	Topic     string `json:"topic"`
	Produce   int    `json:"produce"`
	Consume   bool   `json:"consume"`
	TimeoutMs int    `json:"timeout_ms"`
	LogLevel  string `json:"log_level"`
}

func emit(fields map[string]any) {
	line, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(append(line, '\n'))
}

func mechanism(c config) (sasl.Mechanism, error) {
	switch c.Mechanism {
	case "OAUTHBEARER":
		return oauth.Auth{Token: c.Token}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: c.User, Pass: c.Password, IsToken: c.IsToken}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: c.User, Pass: c.Password, IsToken: c.IsToken}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("unknown mechanism %q", c.Mechanism)
}

func options(c config) ([]kgo.Opt, error) {
	mech, err := mechanism(c)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(c.Bootstrap, ",")...),
		kgo.SASL(mech),
		kgo.DefaultProduceTopic(c.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}
	if level, ok := map[string]kgo.LogLevel{"debug": kgo.LogLevelDebug, "info": kgo.LogLevelInfo,
		"warn": kgo.LogLevelWarn, "error": kgo.LogLevelError}[c.LogLevel]; ok {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, level, nil)))
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", c.CAFile)
		}
		// No ServerName: franz-go takes the host it dials, checked against the SANs.
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}))
	}
	return opts, nil
}

func run(c config) error {
	opts, err := options(c)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	timeout := time.Duration(c.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 20 * time.Second
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Ping (a Metadata request) reports a refused login at once; the producer would
	// retry it until its deadline and report only that.
	if err := cl.Ping(ctx); err != nil {
		return err
	}
	records := make([]*kgo.Record, c.Produce)
	for i := range records {
		records[i] = &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)}
	}
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return err
	}
	emit(map[string]any{"produced": len(records)})
	if !c.Consume {
		return nil
	}

	// A direct consumer of every partition of the topic, from the start.
	cl.AddConsumeTopics(c.Topic)
	ctx, cancel = context.WithTimeout(context.Background(), timeout)
	defer cancel()
	values := []string{}
	for len(values) < c.Produce {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%d of %d records read: %w", len(values), c.Produce, err)
		}
		var fetchErr error
		fetches.EachError(func(_ string, _ int32, err error) { fetchErr = err })
		if fetchErr != nil {
			return fetchErr
		}
		fetches.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
	}
	emit(map[string]any{"consumed": len(values), "values": values})
	return nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: saslclient '<json config>'")
		os.Exit(2)
	}
	var c config
	if err := json.Unmarshal([]byte(os.Args[1]), &c); err != nil {
		fmt.Fprintln(os.Stderr, "bad config:", err)
		os.Exit(2)
	}
	if err := run(c); err != nil {
		name := err.Error()
		var kafkaErr *kerr.Error
		if errors.As(err, &kafkaErr) {
			name = kafkaErr.Message
		}
		emit(map[string]any{"error": name, "message": err.Error()})
		os.Exit(1)
	}
}
