package store

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// removeEmptyLogs deletes value-log and memtable-log files of zero bytes
// in dir before Badger opens it, and returns their names.
//
// Badger creates a new value-log file at every open (valueLog.open ends in
// createVlogFile: O_CREATE|O_EXCL, then ftruncate, then a 20-byte header),
// and a new memtable log whenever a memtable fills or is flushed
// (newMemTable: O_CREATE, then ftruncate, then the header). A process
// killed between the create and the ftruncate leaves a file of zero bytes,
// and the next open fails on it ("Create a new file": logFile.open returns
// z.NewFile for an existing empty file, and valueLog.open and
// openMemTables treat that as an error; badger v4.9.6). For a memtable log
// the failed open has truncated the file and written its header, so the
// open after it succeeds (TestOpenAfterKillDuringMemtableCreate): a
// black-box test saw a restart 1 s after a SIGKILL during a DELETE fail on
// "while opening memtables ... fid: 5", and one 15 s later open. Such a file never held a header, so no entry and no value pointer
// can refer to it: removing it loses nothing, and is what the next open
// would need. The crash loop (internal/ingest TestCrashLoop) kills
// children during start-up and hit the value-log case.
func removeEmptyLogs(dir string, log *slog.Logger) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".vlog") || strings.HasSuffix(e.Name(), ".mem")) {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() != 0 {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil {
			return removed, fmt.Errorf("remove empty log file %s: %w", path, err)
		}
		log.Warn("removed an empty log file left by a crash while Badger created it", "file", path)
		removed = append(removed, e.Name())
	}
	return removed, nil
}
