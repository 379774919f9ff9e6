package store

// Partitions in the registry. A partitioned stream (spec partitions N > 0)
// takes the N IDs after its own when it is created: partition p stores its
// panes, key index and checkpoint under ID + 1 + p, byte for byte as an
// unpartitioned stream does under its ID (docs/format.md). The IDs derive
// from the stream's ID and spec, so the stream record is unchanged. Every
// data ID maps to its stream's info in byID: commits, reads and retention
// of a partition see the stream's spec.

// partitionIDs returns the data IDs of the n partitions of stream id.
func partitionIDs(id uint32, n int) []uint32 {
	if n <= 0 {
		return nil
	}
	out := make([]uint32, n)
	for p := range out {
		out[p] = id + 1 + uint32(p)
	}
	return out
}

// lastID is the highest ID the stream takes.
func (info *StreamInfo) lastID() uint32 { return info.ID + uint32(len(info.Partitions)) }

// dataIDs returns the IDs the stream's data is under: its partitions', or
// its own when unpartitioned.
func (info *StreamInfo) dataIDs() []uint32 {
	if len(info.Partitions) > 0 {
		return info.Partitions
	}
	return []uint32{info.ID}
}

// register puts info in the registry under its ID and its partitions' (regMu
// held).
func (db *DB) register(info StreamInfo) {
	db.byID[info.ID] = info
	for _, id := range info.Partitions {
		db.byID[id] = info
	}
	db.byName[info.Spec.Name] = info.ID
}

// unregister removes it (regMu held).
func (db *DB) unregister(info StreamInfo) {
	delete(db.byID, info.ID)
	for _, id := range info.Partitions {
		delete(db.byID, id)
	}
	delete(db.byName, info.Spec.Name)
}
