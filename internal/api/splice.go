package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// The windows of an answer are rendered to bytes one by one (winmemo.go);
// encoding/json would check and compact each of them again (it does so for
// every json.RawMessage), which cost more than rendering them once they
// come from the memo. So the answer bodies of the aggregate and
// multi-aggregate routes are spliced: the members around the groups are
// encoded by encoding/json, the groups written here. The bytes equal
// json.Marshal's (TestSplicedEqualsMarshal).

// encodeResult returns the body of a single answer (marshalJSON's).
func encodeResult(ctx context.Context, out *resultJSON) ([]byte, error) {
	b, err := appendResult(nil, out)
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return append(indentIfPretty(ctx, b), '\n'), nil
}

// encodeMulti returns the body of a multi-aggregate answer.
func encodeMulti(ctx context.Context, out *multiJSON) ([]byte, error) {
	b := []byte(`{"stream":`)
	name, err := json.Marshal(out.Stream)
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	b = append(b, name...)
	b = fmt.Appendf(b, `,"keys":%d,"results":`, out.Keys)
	if out.Results == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, rj := range out.Results {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendResult(b, rj); err != nil {
				return nil, fmt.Errorf("encode response: %w", err)
			}
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	return append(indentIfPretty(ctx, b), '\n'), nil
}

// appendResult appends out as json.Marshal encodes it: every member up to
// groups by encoding/json, then the groups with their windows' bytes as
// they are, then ranking.
func appendResult(dst []byte, out *resultJSON) ([]byte, error) {
	head := *out
	head.Groups, head.Ranking = nil, nil
	b, err := json.Marshal(&head)
	if err != nil {
		return nil, err
	}
	const tail = `"groups":null}`
	if !bytes.HasSuffix(b, []byte(tail)) { // cannot happen: groups is the last member without omitempty
		return nil, fmt.Errorf("answer encodes without its groups member last")
	}
	dst = slices.Grow(dst, len(b)+groupsLen(out.Groups)+256)
	dst = append(dst, b[:len(b)-len(tail)]...)
	dst = append(dst, `"groups":`...)
	if dst, err = appendGroups(dst, out.Groups); err != nil {
		return nil, err
	}
	if out.Ranking != nil {
		rk, err := json.Marshal(out.Ranking)
		if err != nil {
			return nil, err
		}
		dst = append(dst, `,"ranking":`...)
		dst = append(dst, rk...)
	}
	return append(dst, '}'), nil
}

// groupsLen is about the length of the groups' encoding: their windows'
// bytes and separators, and room for each key.
func groupsLen(groups []groupJSON) int {
	n := 2
	for _, g := range groups {
		n += 64 + len(g.Windows)
		for _, w := range g.Windows {
			n += len(w)
		}
	}
	return n
}

func appendGroups(dst []byte, groups []groupJSON) ([]byte, error) {
	if groups == nil {
		return append(dst, "null"...), nil
	}
	dst = append(dst, '[')
	for i, g := range groups {
		if i > 0 {
			dst = append(dst, ',')
		}
		key, err := json.Marshal(g.Key)
		if err != nil {
			return nil, err
		}
		dst = append(dst, `{"key":`...)
		dst = append(dst, key...)
		dst = append(dst, `,"windows":`...)
		if g.Windows == nil {
			dst = append(dst, "null"...)
		} else {
			dst = append(dst, '[')
			for j, w := range g.Windows {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, w...)
			}
			dst = append(dst, ']')
		}
		dst = append(dst, '}')
	}
	return append(dst, ']'), nil
}

// indentIfPretty indents b as marshalJSON does with ?pretty.
func indentIfPretty(ctx context.Context, b []byte) []byte {
	if on, _ := ctx.Value(prettyKey{}).(bool); on {
		var buf bytes.Buffer
		if json.Indent(&buf, b, "", "  ") == nil {
			return buf.Bytes()
		}
	}
	return b
}
