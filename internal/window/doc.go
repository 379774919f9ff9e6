// Package window is sketchd's event-time engine on the ingest side: it
// assigns events to epoch-aligned panes per key, tracks the stream
// watermark, finalizes panes and accounts for late data. Reading stored
// panes back into windows is the query package's job.
//
// # Aggregator
//
// An Aggregator owns the open panes of one stream. Its caller (ingest) feeds
// it batches in source order from one goroutine; Process classifies every
// event against the watermark (on time, late but applied, too late, too far
// in the future), advances the watermark, and routes the event to the shard
// that owns its key. Each shard is a goroutine that owns its panes outright:
// no locks on the per-event path. Watermark advances and flush barriers
// travel in band through the same bounded shard queues as the events (as
// Flink's watermarks and checkpoint barriers do), so a flush holds
// exactly the effects of the input up to its checkpoint position, and
// ingestion only waits for a queue send while a flush runs.
//
// # Batch memory
//
// A Batch copies each event's values once into its own chunks (the
// decoder reuses its buffers), but not what does not change: the key (a Go
// string) and, with RetainRaw, the value bytes that lie inside the event's
// raw JSON (ingest sets it: a NATS payload is allocated per message and
// never written again). Process does not copy the items again: it hands
// the shards indexes into the batch's items, and the batch's memory to
// them; the last shard done with it puts it in a pool that the next
// batch's first Add takes from. The profile of the load runner's ingest
// phase had Batch.Add and Process's per-shard copies at 14% of all CPU and
// 87% of the bytes allocated on this path (890 B per event; now ~100 B:
// `go test ./internal/window -run '^$' -bench DecodeAggregate -benchmem
// -benchtime 400000x`).
//
// Time never comes from the clock here: event times, processing times (Now
// in each batch, Tick) and positions are values handed in by the edge.
//
// # Replay safety
//
// Every pane records the highest source position applied to it. After a
// crash the aggregator restarts from the last checkpoint: batches at or below
// the checkpoint position are ignored whole, and a replayed event whose
// position is at or below its pane's applied position (a pane written by a
// flush whose checkpoint never landed) is skipped. Each sketch's state is a
// deterministic function of its inputs, so a replay rebuilds the same panes
// as an uninterrupted run.
package window
