package ingest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestAckSeqsOf(t *testing.T) {
	tests := []struct {
		name    string
		reply   string
		want    ackSeqs
		wantErr bool
	}{
		{name: "v1", reply: "$JS.ACK.S.C.1.42.7.1700000000000000000.3", want: ackSeqs{stream: 42, consumer: 7, delivered: 1, pending: 3}},
		{name: "v2", reply: "$JS.ACK._.HASH.S.C.2.42.7.1700000000000000000.0.RND", want: ackSeqs{stream: 42, consumer: 7, delivered: 2}},
		{name: "v2 without the last token", reply: "$JS.ACK.dom.HASH.S.C.1.9.8.1.0", want: ackSeqs{stream: 9, consumer: 8, delivered: 1}},
		{name: "v2 with more tokens", reply: "$JS.ACK.dom.HASH.S.C.3.18446744073709551615.5.1.12.RND.x.y", want: ackSeqs{stream: 18446744073709551615, consumer: 5, delivered: 3, pending: 12}},
		{name: "a token that is not a number reads 0", reply: "$JS.ACK.S.C.1.4x.-7.1.0", want: ackSeqs{delivered: 1}},
		{name: "empty tokens read 0", reply: "$JS.ACK.S.C....1.0", want: ackSeqs{}},
		{name: "10 tokens", reply: "$JS.ACK.x.S.C.1.42.7.1.0", wantErr: true},
		{name: "8 tokens", reply: "$JS.ACK.S.C.1.42.7.1", wantErr: true},
		{name: "not an ack subject", reply: "$JS.NAK.S.C.1.42.7.1.0", wantErr: true},
		{name: "empty", reply: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ackSeqsOf(tt.reply)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestAckSeqsMatchMetadata checks ackSeqsOf against nats.go's Metadata on
// the messages of a real consumer, first deliveries and redeliveries.
func TestAckSeqsMatchMetadata(t *testing.T) {
	msgs := consumeJS(t, 20, true)
	redelivered := 0
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ackSeqsOf(m.Reply())
		if err != nil {
			t.Fatalf("%q: %v", m.Reply(), err)
		}
		want := ackSeqs{stream: md.Sequence.Stream, consumer: md.Sequence.Consumer, delivered: md.NumDelivered, pending: md.NumPending}
		if got != want {
			t.Errorf("%q: got %+v, want %+v", m.Reply(), got, want)
		}
		if md.NumDelivered > 1 {
			redelivered++
		}
	}
	if redelivered == 0 {
		t.Error("no redelivery seen")
	}
}

// consumeJS publishes n messages to a JetStream stream on a new server and
// returns their deliveries to a consumer; with nak, each message is nakked
// once, so its redelivery follows.
func consumeJS(tb testing.TB, n int, nak bool) []jetstream.Msg {
	tb.Helper()
	ns := runNATS(tb)
	js, err := jetstream.New(connect(tb, ns.ClientURL()))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ACKS", Subjects: []string{"acks.>"}})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if _, err := js.Publish(ctx, "acks."+strconv.Itoa(i), []byte("x")); err != nil {
			tb.Fatal(err)
		}
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "acks", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		tb.Fatal(err)
	}
	want := n
	if nak {
		want = 2 * n
	}
	var out []jetstream.Msg
	for len(out) < want {
		batch, err := c.Fetch(want-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			tb.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m)
			md, err := m.Metadata()
			if err != nil {
				tb.Fatal(err)
			}
			if nak && md.NumDelivered == 1 {
				err = m.Nak()
			} else {
				err = m.Ack()
			}
			if err != nil {
				tb.Fatal(err)
			}
		}
		if err := batch.Error(); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// FuzzAckSeqsOf checks ackSeqsOf against a plain reading of the ack
// subject's layout (nats.go's, token by token).
func FuzzAckSeqsOf(f *testing.F) {
	for _, s := range []string{
		"$JS.ACK.S.C.1.42.7.1700000000000000000.3",
		"$JS.ACK._.HASH.S.C.2.42.7.1700000000000000000.0.RND",
		"$JS.ACK.x.S.C.1.42.7.1.0",
		"$JS.ACK.S.C.1.4x.-7.1.0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		got, err := ackSeqsOf(reply)
		want, ok := referenceAckSeqs(reply)
		if (err == nil) != ok || got != want {
			t.Fatalf("%q: got %+v, %v; want %+v, ok %v", reply, got, err, want, ok)
		}
	})
}

func referenceAckSeqs(reply string) (ackSeqs, bool) {
	toks := strings.Split(reply, ".")
	if len(toks) < 9 || (len(toks) > 9 && len(toks) < 11) || !strings.HasPrefix(reply, "$JS.ACK.") {
		return ackSeqs{}, false
	}
	if len(toks) == 9 {
		toks = append(toks[:2:2], append([]string{"", ""}, toks[2:]...)...)
	}
	num := func(s string) uint64 {
		var n uint64
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0
			}
			n = n*10 + uint64(c-'0')
		}
		return n
	}
	return ackSeqs{delivered: num(toks[6]), stream: num(toks[7]), consumer: num(toks[8]), pending: num(toks[10])}, true
}

// BenchmarkAckSeqs compares nats.go's Metadata with ackSeqsOf on real
// deliveries:
//
//	nice -n 19 go test ./internal/ingest -run '^$' -bench AckSeqs -benchmem
func BenchmarkAckSeqs(b *testing.B) {
	msgs := consumeJS(b, 64, false)
	var sink uint64
	b.Run("impl=metadata", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			md, err := msgs[i%len(msgs)].Metadata()
			if err != nil {
				b.Fatal(err)
			}
			sink += md.Sequence.Stream + md.Sequence.Consumer + md.NumDelivered
			i++
		}
	})
	b.Run("impl=ackSeqsOf", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s, err := ackSeqsOf(msgs[i%len(msgs)].Reply())
			if err != nil {
				b.Fatal(err)
			}
			sink += s.stream + s.consumer + s.delivered
			i++
		}
	})
	_ = sink
}
