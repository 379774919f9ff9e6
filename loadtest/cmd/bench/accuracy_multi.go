package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// multiOf is the plan's first three queries (hll, cms, tdigest per hour
// and country) as one multi-aggregate request: the same range, grouping
// and kind parameters, each aggregate named once.
func multiOf(stream string, plan []accQuery) (string, error) {
	names := []string{}
	params := url.Values{}
	for _, q := range plan[:3] {
		path, raw, _ := strings.Cut(q.path, "?")
		names = append(names, path[strings.LastIndex(path, "/")+1:])
		v, err := url.ParseQuery(raw)
		if err != nil {
			return "", err
		}
		for k, vals := range v {
			if _, ok := params[k]; !ok {
				params[k] = vals
			}
		}
	}
	return "/v1/streams/" + stream + "/query?aggregate=" + strings.Join(names, ",") + "&" + params.Encode(), nil
}

// checkMulti asks the multi-aggregate endpoint what the plan's first three
// queries asked one by one, and counts the windows of each of its results
// equal to the single answer's (raws).
func checkMulti(ctx context.Context, c *client, stream string, plan []accQuery, raws []json.RawMessage, acc *Accuracy) (string, error) {
	path, err := multiOf(stream, plan)
	if err != nil {
		return path, err
	}
	var multi struct {
		Results []json.RawMessage `json:"results"`
	}
	if err := c.getJSON(ctx, path, &multi); err != nil {
		return path, fmt.Errorf("accuracy query multi: %w", err)
	}
	if len(multi.Results) != 3 {
		return path, fmt.Errorf("accuracy query multi: %d results, want 3", len(multi.Results))
	}
	for i := range 3 {
		same, err := SameGroups(multi.Results[i], raws[i])
		if err != nil {
			return path, fmt.Errorf("accuracy query multi: %w", err)
		}
		var ans Answer
		_ = json.Unmarshal(raws[i], &ans)
		for _, g := range ans.Groups {
			for range g.Windows {
				acc.Multi.Add(0, same)
			}
		}
		if !same {
			acc.miss("multi", 1, Window{}, nil, fmt.Sprintf("%s: the multi-aggregate answer differs from the single one", plan[i].kind))
		}
	}
	return path, nil
}
