// Package promapi serves the subset of the Prometheus HTTP API that
// Grafana's built-in Prometheus data source and promtool use, over
// sketchd's stored sketches: instant and range queries, series, label
// names and values, metadata and build information (docs/grafana.md).
//
// Queries are parsed by the upstream PromQL parser
// (github.com/prometheus/prometheus/promql/parser) and mapped onto
// query.Query: a metric name picks what a window's merged sketch answers
// (sketchd_distinct for hll and theta, sketchd_quantile for tdigest and
// ddsketch, sketchd_top_count, sketchd_count and
// the _lower/_upper bounds), label matchers on the stream's dimensions are
// where filters, `sum by (...)` is a group_by (sketches are merged, never
// estimates added), and the range query's step is the query's step: each
// sample is the window [t - step, t). What the mapping cannot answer
// truthfully (functions, other operators, negative or free regular
// expression matchers on dimensions) is refused with Prometheus's error
// format, {"status":"error","errorType":"bad_data","error":...}.
//
// The package reads streams and runs queries through two small
// consumer-side interfaces; internal/api mounts its Handler under /api/v1
// behind the same read token, timeout and admission as /v1.
package promapi
