package ingest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// cutProxy forwards TCP connections to a NATS server and cuts them on
// command: the network failing between sketchd and NATS. While blocked it
// accepts and closes new connections at once (a refused reconnect).
type cutProxy struct {
	ln     net.Listener
	target string

	// blackhole discards what the server sends: deliveries lost in
	// transit.
	blackhole atomic.Bool

	mu      sync.Mutex
	blocked bool
	conns   map[net.Conn]struct{}
	cuts    int
	wg      sync.WaitGroup
	stopped bool
}

func newCutProxy(tb testing.TB, target string) *cutProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	tb.Cleanup(p.close)
	return p
}

func (p *cutProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.blocked || p.stopped {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.mu.Unlock()
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			_ = c.Close() // the server is down
			continue
		}
		p.mu.Lock()
		if p.blocked || p.stopped {
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn, down bool) {
			defer p.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 && !(down && p.blackhole.Load()) {
					if _, werr := dst.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			_ = dst.Close()
			_ = src.Close()
		}
		p.wg.Add(2)
		go pipe(up, c, false)
		go pipe(c, up, true)
	}
}

// cut closes every proxied connection, abruptly: whatever is in flight is
// lost. With block, reconnects are refused until unblock.
func (p *cutProxy) cut(block bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole.Store(false)
	p.blocked = block
	p.cuts++
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST: drop unsent data
		}
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) unblock() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = false
}

func (p *cutProxy) close() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.cut(true)
	p.wg.Wait()
}

// restartableNATS is a real nats-server with JetStream on a fixed port and
// store dir, which the test shuts down and starts again.
type restartableNATS struct {
	tb   testing.TB
	opts ServerOptions
	mu   sync.Mutex
	ns   *server.Server
}

func startRestartableNATS(tb testing.TB) *restartableNATS {
	tb.Helper()
	s := &restartableNATS{tb: tb, opts: ServerOptions{Port: -1, StoreDir: tb.TempDir()}}
	s.start()
	s.opts.Port = s.ns.Addr().(*net.TCPAddr).Port
	tb.Cleanup(s.shutdown)
	return s
}

func (s *restartableNATS) start() {
	s.tb.Helper()
	ns, err := StartServer(s.opts, nil)
	if err != nil {
		s.tb.Fatal(err)
	}
	s.mu.Lock()
	s.ns = ns
	s.mu.Unlock()
}

func (s *restartableNATS) shutdown() {
	s.mu.Lock()
	ns := s.ns
	s.ns = nil
	s.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

func (s *restartableNATS) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port) }

// outageConn connects sketchd the way cmd/sketchd does, with a short
// reconnect wait.
func outageConn(tb testing.TB, url string) (*nats.Conn, *ConnState) {
	tb.Helper()
	nc, cs, err := Connect(ConnOptions{URL: url, ReconnectWait: 50 * time.Millisecond}, testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc, cs
}

func newOutageManager(tb testing.TB, nc *nats.Conn, cs *ConnState, db Store) *Manager {
	tb.Helper()
	m, err := NewManager(nc, cs, db, testLogger(tb), Options{FlushInterval: 50 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// duringOutage waits until readiness reports the outage, then checks that
// queries over the store and the stream status keep answering. It returns
// the number of queries answered.
func duringOutage(tb testing.TB, m *Manager, q *query.Querier, name string, minEvents uint64) {
	tb.Helper()
	ctx := context.Background()
	waitFor(tb, 10*time.Second, "not ready during the outage", func() (bool, string) {
		err := m.Ready(ctx)
		return isUnavailable(err), fmt.Sprint(err)
	})
	if v := mustMetric(tb, m, "sketchd_nats_connected"); v != 0 {
		tb.Errorf("sketchd_nats_connected = %v during the outage", v)
	}
	for range 5 {
		st, err := m.Get(ctx, name)
		if err != nil {
			tb.Fatalf("stream status during the outage: %v", err)
		}
		n, err := queryEvents(ctx, q, st)
		if err != nil {
			tb.Fatalf("query during the outage: %v", err)
		}
		if n < minEvents {
			tb.Fatalf("query during the outage counts %d events, the committed state had %d", n, minEvents)
		}
	}
}

// publishAsync publishes msgs[from:to] with a message ID each, and
// republishes (same ID) whatever was not acknowledged, through outages.
func publishAsync(js jetstream.JetStream, subject string, msgs [][]byte, from, to int) error {
	for i := from; i < to; i += 500 {
		end := min(i+500, to)
		futs := make([]jetstream.PubAckFuture, 0, end-i)
		for j := i; j < end; j++ {
			f, err := js.PublishAsync(subject, msgs[j], jetstream.WithMsgID(fmt.Sprint("m", j)))
			if err != nil {
				if err := retryPublish(js, subject, msgs[j], fmt.Sprint("m", j)); err != nil {
					return err
				}
				continue
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
				continue
			case <-f.Err():
			case <-time.After(10 * time.Second):
			}
			m := f.Msg()
			if err := retryPublish(js, subject, m.Data, m.Header.Get(nats.MsgIdHdr)); err != nil {
				return err
			}
		}
	}
	return nil
}

func retryPublish(js jetstream.JetStream, subject string, msg []byte, id string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.Publish(ctx, subject, msg, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("publish %s: %w", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitReady(tb testing.TB, m *Manager) {
	tb.Helper()
	waitFor(tb, 20*time.Second, "ready after the outage", func() (bool, string) {
		err := m.Ready(context.Background())
		return err == nil, fmt.Sprint(err)
	})
}

// TestJetStreamOutages cuts the network between sketchd and NATS twice
// (once while a backlog streams in, so deliveries are lost in transit) and
// restarts the server once, all during ingest. Readiness and metrics report
// each outage, queries keep answering, and afterwards every published event
// is counted exactly once.
//
//	go test -race ./internal/ingest -run TestJetStreamOutages -v
func TestJetStreamOutages(t *testing.T) {
	srv := startRestartableNATS(t)
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.opts.Port))
	nc, cs := outageConn(t, proxy.url())
	pubNC, _ := outageConn(t, srv.url())
	js, _ := jetstream.New(pubNC)
	db := openStore(t, t.TempDir())
	q := newQuerier(t, db, query.Options{})
	spec := pageviews("out", true)
	ctx := context.Background()
	m := newOutageManager(t, nc, cs, db)
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()

	evs := genEvents(21, 8000)
	msgs := crashMessages(evs) // 1 to 3 events per message
	committed := func() uint64 {
		st := mustStatus(t, m, spec.Name)
		_, total := paneTotals(t, db, st.ID)
		return total
	}
	n := len(msgs)
	q1, q2 := n/4, n/2

	// 1. A network cut while idle: the first quarter is in.
	if err := publishAsync(js, spec.Subject, msgs, 0, q1); err != nil {
		t.Fatal(err)
	}
	waitConsumed(t, js, spec, q1)
	waitCommitted(t, m, spec.Name, q1)
	proxy.cut(true)
	duringOutage(t, m, q, spec.Name, committed())
	proxy.unblock()
	waitReady(t, m)

	// 2. The server restarts (same port, same store dir) while events are
	// being published.
	pubDone := make(chan struct{})
	var pubErr error
	go func() { defer close(pubDone); pubErr = publishAsync(js, spec.Subject, msgs, q1, q2) }()
	waitFor(t, 20*time.Second, "some of the second quarter published", func() (bool, string) {
		info, err := js.Stream(ctx, spec.JetStreamStream)
		if err != nil {
			return false, err.Error()
		}
		return info.CachedInfo().State.Msgs > uint64(q1+200), fmt.Sprint(info.CachedInfo().State.Msgs)
	})
	before := committed()
	srv.shutdown()
	duringOutage(t, m, q, spec.Name, before)
	srv.start()
	waitReady(t, m)
	<-pubDone
	if pubErr != nil {
		t.Fatal(pubErr)
	}

	// 3. The network loses what the server sends (deliveries lost in
	// transit) while a backlog is published, then is cut.
	r := runnerOf(t, m, spec.Name)
	waitFor(t, 20*time.Second, "the consumer reset after the restart done", func() (bool, string) {
		return !r.consumer.resetting.Load(), "resetting"
	})
	proxy.blackhole.Store(true)
	if err := publishAsync(js, spec.Subject, msgs, q2, n); err != nil {
		t.Fatal(err)
	}
	// Any delivery of the backlog now is lost in transit.
	waitFor(t, 20*time.Second, "deliveries lost in transit", func() (bool, string) {
		d := consumerInfo(t, js, spec).Delivered.Stream
		return d > uint64(q2+10), fmt.Sprintf("delivered up to sequence %d, the backlog starts at %d", d, q2+1)
	})
	proxy.cut(true)
	duringOutage(t, m, q, spec.Name, 0)
	proxy.unblock()
	waitReady(t, m)

	waitConsumed(t, js, spec, n)
	// A reset puts the ack floor below its start, committed or not: the
	// last reset may come after the whole backlog was handed over (see
	// TestResetAckFloorIsNotCommit).
	waitCommitted(t, m, spec.Name, n)
	si, err := js.Stream(ctx, spec.JetStreamStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := si.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(n) {
		t.Fatalf("the JetStream stream holds %d messages, %d were published: the publisher's dedup failed", info.State.Msgs, n)
	}
	st := mustStatus(t, m, spec.Name)
	total := checkPanes(t, db, st.ID, truthOf(evs))
	if a := applied(st); a != uint64(len(evs)) {
		t.Errorf("counters: %d applied, want %d", a, len(evs))
	}
	if got, err := queryEvents(ctx, q, st); err != nil || got != uint64(len(evs)) {
		t.Errorf("query after the outages: %d events, %v; want %d", got, err, len(evs))
	}
	reconnects := mustMetric(t, m, "sketchd_nats_reconnects_total")
	disconnects := mustMetric(t, m, "sketchd_nats_disconnects_total")
	down := mustMetric(t, m, "sketchd_nats_disconnected_seconds_total")
	resets := mustMetric(t, m, "sketchd_jetstream_consumer_resets_total", spec.Name)
	redelivered := mustMetric(t, m, "sketchd_jetstream_redelivered_messages_total", spec.Name)
	if resets < 1 {
		t.Errorf("sketchd_jetstream_consumer_resets_total = %v after deliveries were lost in transit, want >= 1", resets)
	}
	if reconnects < 3 || disconnects < 3 || down <= 0 {
		t.Errorf("metrics: reconnects %v, disconnects %v, disconnected %vs; want >= 3, >= 3, > 0", reconnects, disconnects, down)
	}
	if v := mustMetric(t, m, "sketchd_nats_connected"); v != 1 {
		t.Errorf("sketchd_nats_connected = %v after recovery", v)
	}
	t.Logf("messages=%d events=%d in panes=%d lost=%d doubled=%d; outages=3 disconnected=%.2fs reconnects=%v consumer resets=%v redeliveries ignored=%v",
		n, len(evs), total, sub0(uint64(len(evs)), total), sub0(total, uint64(len(evs))), down, reconnects, resets, redelivered)
}

// TestCoreOutage: a core NATS stream is at-most-once. Events published
// while sketchd is cut off are lost, and that loss is not silent: it falls
// entirely within an outage that readiness and the metrics report (number
// and length of disconnections). Everything published while connected is
// counted.
//
//	go test -race ./internal/ingest -run TestCoreOutage -v
func TestCoreOutage(t *testing.T) {
	srv := startRestartableNATS(t)
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.opts.Port))
	nc, cs := outageConn(t, proxy.url())
	pub, _ := outageConn(t, srv.url())
	db := openStore(t, t.TempDir())
	q := newQuerier(t, db, query.Options{})
	spec := pageviews("coreout", false)
	ctx := context.Background()
	m := newOutageManager(t, nc, cs, db)
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	r := runnerOf(t, m, spec.Name)
	evs := genEvents(22, 6000)
	publish := func(evs []event) {
		t.Helper()
		for _, e := range evs {
			if err := pub.Publish(spec.Subject, e.json()); err != nil {
				t.Fatal(err)
			}
		}
		if err := pub.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	before, during, after := evs[:2000], evs[2000:4000], evs[4000:]

	publish(before)
	waitFor(t, 20*time.Second, "events before the outage", func() (bool, string) {
		a := applied(mustStatus(t, m, spec.Name))
		return a == uint64(len(before)), fmt.Sprint(a)
	})
	proxy.cut(true)
	duringOutage(t, m, q, spec.Name, 0)
	publish(during) // nobody subscribed at the server: lost
	proxy.unblock()
	waitReady(t, m)
	// The client re-subscribed on reconnect; a round trip makes sure the
	// server has processed it before more is published.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	publish(after)
	want := uint64(len(before) + len(after))
	waitFor(t, 20*time.Second, "events after the outage", func() (bool, string) {
		a := applied(mustStatus(t, m, spec.Name))
		return a >= want, fmt.Sprint(a)
	})
	// Wait for the flush that makes everything durable, then compare.
	waitFor(t, 10*time.Second, "committed", func() (bool, string) {
		st := mustStatus(t, m, spec.Name)
		_, total := paneTotals(t, db, st.ID)
		return total == applied(st), fmt.Sprintf("%d in panes, %d applied", total, applied(st))
	})
	st := mustStatus(t, m, spec.Name)
	got := applied(st)
	received := r.intake.received.Load()
	lost := uint64(len(evs)) - received - st.Dropped
	if got != received {
		t.Errorf("applied %d of %d received messages", got, received)
	}
	if received < want || lost > uint64(len(during)) {
		t.Errorf("received %d, dropped %d, lost %d: loss outside the outage (before+after = %d)", received, st.Dropped, lost, want)
	}
	disconnects := mustMetric(t, m, "sketchd_nats_disconnects_total")
	down := mustMetric(t, m, "sketchd_nats_disconnected_seconds_total")
	if lost > 0 && (disconnects < 1 || down <= 0) {
		t.Errorf("%d events lost, but the metrics show no outage (disconnects %v, %vs)", lost, disconnects, down)
	}
	t.Logf("published=%d received=%d dropped(slow consumer)=%d lost during the outage=%d (published while cut off: %d); disconnects=%v disconnected=%.2fs",
		len(evs), received, st.Dropped, lost, len(during), disconnects, down)
}

// TestStartDuringOutage: a stream whose consumer cannot start because
// NATS is unreachable is reported by readiness, retried in the background,
// and runs once NATS is back; nothing published meanwhile is lost.
//
//	go test -race ./internal/ingest -run TestStartDuringOutage -v
func TestStartDuringOutage(t *testing.T) {
	srv := startRestartableNATS(t)
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.opts.Port))
	nc, cs := outageConn(t, proxy.url())
	pubNC, _ := outageConn(t, srv.url())
	js, _ := jetstream.New(pubNC)
	db := openStore(t, t.TempDir())
	spec := pageviews("late_start", true)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: spec.JetStreamStream, Subjects: []string{spec.Subject}}); err != nil {
		t.Fatal(err)
	}
	evs := genEvents(23, 2000)
	msgs := crashMessages(evs)
	if err := publishAsync(js, spec.Subject, msgs, 0, len(msgs)/2); err != nil {
		t.Fatal(err)
	}
	m := newOutageManager(t, nc, cs, db)
	proxy.cut(true)
	startCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := m.Start(startCtx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	st := mustStatus(t, m, spec.Name)
	if st.State != "failed" {
		t.Fatalf("stream state %q while NATS is unreachable, want failed", st.State)
	}
	if err := m.Ready(ctx); !isUnavailable(err) {
		t.Errorf("Ready = %v while the stream cannot start", err)
	}
	proxy.unblock()
	if err := publishAsync(js, spec.Subject, msgs, len(msgs)/2, len(msgs)); err != nil {
		t.Fatal(err)
	}
	waitReady(t, m)
	waitConsumed(t, js, spec, len(msgs))
	waitCommitted(t, m, spec.Name, len(msgs)) // a reset moves the ack floor too
	st = mustStatus(t, m, spec.Name)
	if st.State != "running" {
		t.Errorf("stream state %q, want running", st.State)
	}
	total := checkPanes(t, db, st.ID, truthOf(evs))
	t.Logf("events=%d in panes=%d: started by the retry after the outage", len(evs), total)
}
