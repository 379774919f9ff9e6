package api

// Issue 15, item 8: request bodies cut off or too slow, /debug/pprof
// behind the tokens, and the listener's connection cap.

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// rawPost sends a POST with a declared Content-Length of 1000 and only
// the first part of the body, then (cut) closes its write side or (slow)
// waits, and returns the answer's status line.
func rawPost(t *testing.T, addr string, cut bool) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("POST /v1/streams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":\"a\""))
	if cut {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestBodyCutOrSlow(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewUnstartedServer(f.h)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	if got := rawPost(t, addr, true); !strings.Contains(got, " 400 ") {
		t.Errorf("cut-off body: %q, want 400", got)
	}
	if got := rawPost(t, addr, false); !strings.Contains(got, " 408 ") {
		t.Errorf("slow body: %q, want 408", got)
	}
}

func TestPprofGuarded(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Pprof = true; c.AdminToken = "adm"; c.ReadToken = "rd" })
	tests := []struct {
		target, token string
		status        int
	}{
		{"/debug/pprof/", "", http.StatusUnauthorized},
		{"/debug/pprof/heap", "rd", http.StatusForbidden},
		{"/debug/pprof/", "adm", http.StatusOK},
		{"/debug/pprof/goroutine?debug=1", "adm", http.StatusOK},
		{"/debug/pprof/profile?seconds=3600", "adm", http.StatusBadRequest},
		{"/debug/pprof/trace?seconds=0", "adm", http.StatusBadRequest},
	}
	for _, tc := range tests {
		var hdr []string
		if tc.token != "" {
			hdr = []string{"Authorization", "Bearer " + tc.token}
		}
		if r := f.get(t, tc.target, hdr...); r.status != tc.status {
			t.Errorf("%s with %q: %d, want %d", tc.target, tc.token, r.status, tc.status)
		}
	}
	g := newFixture(t, func(c *Config) { c.Pprof = true; c.ReadToken = "rd" })
	if r := g.get(t, "/debug/pprof/"); r.status != http.StatusUnauthorized {
		t.Errorf("read token only, none given: %d", r.status)
	}
	if r := g.get(t, "/debug/pprof/", "Authorization", "Bearer rd"); r.status != http.StatusOK {
		t.Errorf("read token only, given: %d", r.status)
	}
}

// At the cap, a new connection takes the slot of the connection idle the
// longest (kept alive after its request), instead of waiting in the
// kernel's backlog until it times out; a client whose idle connection was
// closed is served again on a new one.
func TestLimitListenerIdleGivesWay(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := LimitListener(ln, 2)
	srv := &http.Server{Handler: f.h, ReadHeaderTimeout: 10 * time.Second, ConnState: lim.ConnState}
	go func() { _ = srv.Serve(lim) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "http://" + ln.Addr().String() + "/livez"
	get := func(name string, c *http.Client) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("%s: %v (idle connections closed: %d)", name, err, lim.IdleClosed())
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", name, resp.StatusCode)
		}
	}
	client := func() *http.Client {
		tr := &http.Transport{MaxIdleConnsPerHost: 1}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	a, b, c := client(), client(), client()
	get("a", a)
	get("b", b) // two idle keep-alive connections hold both slots
	if n := lim.IdleClosed(); n != 0 {
		t.Fatalf("%d idle connections closed below the cap", n)
	}
	get("c", c) // served: an idle connection made room
	if n := lim.IdleClosed(); n != 1 {
		t.Fatalf("idle connections closed: %d, want 1", n)
	}
	// The client whose connection was closed (a or b: which went idle
	// first is the server's ConnState race) is served on a new one.
	get("a again", a)
	get("b again", b)
	if n := lim.IdleClosed(); n < 2 {
		t.Fatalf("idle connections closed: %d, want 2 or more (a new connection at the cap)", n)
	}
}

// LimitListener holds at most n connections: the n+1st is accepted only
// once one closes.
func TestLimitListener(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f.h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(LimitListener(ln, 2)) }()
	t.Cleanup(func() { _ = srv.Close() })
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/livez")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case s := <-done:
		t.Fatalf("a third connection was served (%d) while two were open", s)
	case <-time.After(300 * time.Millisecond):
	}
	idle[0].Close()
	select {
	case s := <-done:
		if s != http.StatusOK {
			t.Errorf("/livez %d", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the third connection was not served after one closed")
	}
}
