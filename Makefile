# Developer entry points. CI runs .ci/run, which runs the same test command.
GO ?= go

.PHONY: run test vet lint fuzz bench

run:
	$(GO) run ./cmd/sketchd --demo

test:
	$(GO) test -race ./...

vet:
	$(GO) vet ./...

lint:
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run ./...

# Each fuzz target for a short while (go test runs the seed corpora always).
fuzz:
	$(GO) test ./sketch -run '^$$' -fuzz FuzzDecode -fuzztime 30s

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./sketch ./window ./store ./ingest ./api
