package api

import (
	"net/http"
	"strconv"
)

// maxProfileSeconds bounds /debug/pprof/profile and /debug/pprof/trace's
// seconds: a profile holds a connection (and slows the process) that long.
const maxProfileSeconds = 30

// guardPprof puts /debug/pprof behind the tokens: the admin token when one
// is set, else the read token when one is set (profiles show the code,
// the heap holds the data). It also bounds seconds=.
func (s *server) guardPprof(next http.Handler) http.Handler {
	bounded := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("seconds"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > maxProfileSeconds {
				s.writeError(w, r, paramError("seconds", "want a whole number of seconds from 1 to %d", maxProfileSeconds))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
	switch {
	case s.adminSet == 1:
		return s.authAdmin(bounded)
	case s.readSet == 1:
		return s.authRead(bounded)
	}
	return bounded
}
