# Stub HTTP server for producing a k6 CSV fixture: every 3rd answer carries
# Sketchd-Stale: true, panel "slow" sleeps 30 ms, filter value "XX" on panel
# "slow" answers 503.
import http.server, sys, time, threading
n = 0
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        global n
        with lock:
            n += 1
            k = n
        code = 200
        if '/slow' in self.path:
            time.sleep(0.03)
            if 'v=XX' in self.path:
                code = 503
        body = b'{}'
        self.send_response(code)
        if k % 3 == 0:
            self.send_header('Sketchd-Stale', 'true')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
