package cluster

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

// holdProxy forwards TCP connections to a NATS server. While held, what
// the server sends (answers, acks) is kept back from the client, whose own
// messages still reach the server: answers that arrive after the
// client's timeout, that is, lost. resume delivers what was kept, in
// order.
type holdProxy struct {
	ln     net.Listener
	target string
	done   chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	gate  chan struct{} // closed while answers pass
	armed []byte        // holdOn's marker
	conns []net.Conn

	reqMarker []byte        // holdRequestsOn's marker
	reqGate   chan struct{} // closed by releaseRequests
	reqHeld   int           // requests held since holdRequestsOn
}

func newHoldProxy(tb testing.TB, target string) *holdProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target, done: make(chan struct{}), gate: make(chan struct{})}
	close(p.gate)
	p.wg.Add(1)
	go p.serve()
	tb.Cleanup(p.close)
	return p
}

func (p *holdProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *holdProxy) hold() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
}

// holdOn holds once the client sends bytes that contain marker, before
// they reach the server: the answer to that message is held.
func (p *holdProxy) holdOn(marker string) {
	p.mu.Lock()
	p.armed = []byte(marker)
	p.mu.Unlock()
}

func (p *holdProxy) resume() {
	p.mu.Lock()
	close(p.gate)
	p.mu.Unlock()
}

// holdRequestsOn holds each client's bytes that contain marker before
// they reach the server (the rest of that connection's requests wait
// behind them) until releaseRequests; heldRequests counts them.
func (p *holdProxy) holdRequestsOn(marker string) {
	p.mu.Lock()
	p.reqMarker, p.reqGate, p.reqHeld = []byte(marker), make(chan struct{}), 0
	p.mu.Unlock()
}

func (p *holdProxy) heldRequests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reqHeld
}

// releaseRequests sends the held requests on and holds no more.
func (p *holdProxy) releaseRequests() {
	p.mu.Lock()
	if p.reqGate != nil {
		close(p.reqGate)
	}
	p.reqMarker, p.reqGate = nil, nil
	p.mu.Unlock()
}

// dropConns closes every connection the proxy carries, dropping what it
// holds: a held request is then lost, never answered. Clients reconnect
// through the proxy, which holds nothing more.
func (p *holdProxy) dropConns() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.reqMarker, p.reqGate = nil, nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (p *holdProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.requests(up, c) }()
		go func() { defer p.wg.Done(); p.answers(c, up) }()
	}
}

// requests copies the client's bytes to the server, holding the answers
// first when they carry holdOn's marker, and holding them themselves when
// they carry holdRequestsOn's.
func (p *holdProxy) requests(server, client net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			var wait chan struct{}
			p.mu.Lock()
			if p.armed != nil && bytes.Contains(buf[:n], p.armed) {
				p.armed = nil
				p.gate = make(chan struct{})
			}
			if p.reqMarker != nil && bytes.Contains(buf[:n], p.reqMarker) {
				p.reqHeld++
				wait = p.reqGate
			}
			p.mu.Unlock()
			if wait != nil {
				select {
				case <-wait:
				case <-p.done:
					return
				}
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// answers copies the server's bytes to the client, each read waiting
// for the gate.
func (p *holdProxy) answers(client, server net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			select {
			case <-gate:
			case <-p.done:
				return
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *holdProxy) close() {
	close(p.done)
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
