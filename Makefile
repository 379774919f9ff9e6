# Developer entry points. CI runs .ci/run, which runs the same test command.
GO ?= go

.PHONY: run test vet lint fuzz gobench bench bench-quick

run:
	$(GO) run ./cmd/sketchd --demo

test:
	$(GO) test -race ./...

vet:
	$(GO) vet ./...

lint:
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run ./...

# Each fuzz target for a short while (go test runs the seed corpora always).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./sketch -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/decode -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/decode -run '^$$' -fuzz '^FuzzParseRFC3339$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/decode -run '^$$' -fuzz '^FuzzParseUnix$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/store -run '^$$' -fuzz '^FuzzDecodePane$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/api -run '^$$' -fuzz '^FuzzQuery$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/promapi -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME)
	$(GO) test . -run '^$$' -fuzz '^FuzzParseDuration$$' -fuzztime $(FUZZTIME)

# The Go benchmarks next to the hot code.
gobench:
	$(GO) test -run '^$$' -bench . -benchmem ./sketch ./internal/decode ./internal/window ./internal/query ./internal/store ./internal/ingest ./internal/api

# The load tests and the benchmark report (loadtest/README.md): installs
# natscli, vegeta and k6 when missing, builds and starts sketchd on loopback
# with a temp dir, measures, and writes docs/benchmarks.md.
bench:
	$(GO) run ./loadtest/cmd/bench

# The same, smaller and shorter; prints the figures, writes no report.
bench-quick:
	$(GO) run ./loadtest/cmd/bench --quick
