package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// prettyKey is the context key of the pretty flag.
type prettyKey struct{}

// prettyParam asks for indented JSON: ?pretty, ?pretty=1 or ?pretty=true
// (?pretty=0 or false: compact). It is accepted on every route.
const prettyParam = "pretty"

// pretty takes the pretty parameter out of the query string, so that no
// handler sees it, and records it in the context for writeJSON and
// writeProblem. A value that is not a boolean is refused.
func (s *server) pretty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := r.URL.RawQuery
		if !strings.Contains(raw, prettyParam) {
			next.ServeHTTP(w, r)
			return
		}
		var kept []string
		on, found := false, false
		for _, pair := range strings.Split(raw, "&") {
			name, val, hasVal := strings.Cut(pair, "=")
			if name != prettyParam {
				kept = append(kept, pair)
				continue
			}
			found, on = true, true
			if hasVal && val != "" {
				b, err := strconv.ParseBool(val)
				if err != nil {
					s.writeError(w, r, paramError(prettyParam, "want pretty, pretty=1 or pretty=0, got %q", truncate(val)))
					return
				}
				on = b
			}
		}
		if !found {
			next.ServeHTTP(w, r)
			return
		}
		r2 := r.WithContext(context.WithValue(r.Context(), prettyKey{}, on))
		u := *r.URL
		u.RawQuery = strings.Join(kept, "&")
		r2.URL = &u
		next.ServeHTTP(w, r2)
	})
}

// marshalJSON encodes v, indented when the request asked for pretty.
func marshalJSON(r *http.Request, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return indentIfPretty(r.Context(), b), nil
}
