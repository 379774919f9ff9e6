package store

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// removeEmptyValueLogs deletes value-log files of zero bytes in dir before
// Badger opens it, and returns their names.
//
// Badger creates a new value-log file at every open (valueLog.open ends in
// createVlogFile: O_CREATE|O_EXCL, then ftruncate, then a 20-byte header).
// A process killed between the create and the ftruncate leaves a file of
// zero bytes, and every later open fails on it ("Open existing file ...
// Create a new file": logFile.open returns z.NewFile for an existing empty
// file, and valueLog.open treats that as an error; badger v4.9.6). Such a
// file never held a header, so no entry and no value pointer can refer to
// it: removing it loses nothing, and is what the next open would need.
// The crash loop (internal/ingest TestCrashLoop) kills children during
// start-up and hit this.
func removeEmptyValueLogs(dir string, log *slog.Logger) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".vlog") {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() != 0 {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil {
			return removed, fmt.Errorf("remove empty value log %s: %w", path, err)
		}
		log.Warn("removed an empty value-log file left by a crash during start-up", "file", path)
		removed = append(removed, e.Name())
	}
	return removed, nil
}
