package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestProblemCodesDocumented: docs/api.md's error table lists exactly the
// codes of problemCodes with their statuses, and wherever openapi.json
// names a code in a response's description, that response's status is the
// code's (TestOpenAPIProblemCodes checks the Problem.code enum).
func TestProblemCodesDocumented(t *testing.T) {
	t.Run("docs/api.md", func(t *testing.T) {
		md, err := os.ReadFile("../../docs/api.md")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		in := false
		sc := bufio.NewScanner(bytes.NewReader(md))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if strings.HasPrefix(l, "| status | code |") {
				in = true
				continue
			}
			if !in || strings.HasPrefix(l, "|---") {
				continue
			}
			if !strings.HasPrefix(l, "|") {
				break
			}
			cells := strings.Split(l, "|")
			status, err := strconv.Atoi(strings.TrimSpace(cells[1]))
			code := strings.Trim(strings.TrimSpace(cells[2]), "`")
			if err != nil {
				t.Errorf("row %q: status %v", l, err)
				continue
			}
			if _, dup := got[code]; dup {
				t.Errorf("%s listed twice", code)
			}
			got[code] = status
		}
		if len(got) == 0 {
			t.Fatal("no error table (| status | code | ...) in docs/api.md")
		}
		for code, pc := range problemCodes {
			if s, ok := got[code]; !ok {
				t.Errorf("%s (%d) is missing from the table", code, pc.status)
			} else if s != pc.status {
				t.Errorf("%s: the table says %d, the API answers %d", code, s, pc.status)
			}
		}
		for code := range got {
			if _, ok := problemCodes[code]; !ok {
				t.Errorf("the table lists %s, which the API never answers", code)
			}
		}
	})
	t.Run("openapi.json", func(t *testing.T) {
		var doc struct {
			Paths      map[string]map[string]json.RawMessage `json:"paths"`
			Components struct {
				Responses map[string]struct {
					Description string `json:"description"`
				} `json:"responses"`
			} `json:"components"`
		}
		if err := json.Unmarshal(openAPI, &doc); err != nil {
			t.Fatal(err)
		}
		word := regexp.MustCompile(`[a-z_]+`)
		named := map[string]bool{}
		check := func(where, status, desc string) {
			for _, w := range word.FindAllString(desc, -1) {
				pc, ok := problemCodes[w]
				if !ok {
					continue // a plain word, not a code
				}
				named[w] = true
				if strconv.Itoa(pc.status) != status {
					t.Errorf("%s: response %s names %s, whose status is %d", where, status, w, pc.status)
				}
			}
		}
		refs := map[string]string{} // component response → status it is used for
		for path, ops := range doc.Paths {
			for method, raw := range ops {
				var op struct {
					Responses map[string]struct {
						Ref         string `json:"$ref"`
						Description string `json:"description"`
					} `json:"responses"`
				}
				if json.Unmarshal(raw, &op) != nil {
					continue // path-level parameters
				}
				for status, r := range op.Responses {
					if status[0] < '4' {
						continue
					}
					if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
						if prev, seen := refs[name]; seen && prev != status {
							t.Errorf("response %s is used for %s and %s", name, prev, status)
						}
						refs[name] = status
						continue
					}
					check(method+" "+path, status, r.Description)
				}
			}
		}
		for name, r := range doc.Components.Responses {
			status, ok := refs[name]
			if !ok {
				t.Errorf("component response %s is never used", name)
				continue
			}
			check("components.responses."+name, status, r.Description)
		}
		for code, pc := range problemCodes {
			if !named[code] && code != codeMethodNotAllowed {
				t.Errorf("no %d response of openapi.json names %s", pc.status, code)
			}
		}
	})
}
