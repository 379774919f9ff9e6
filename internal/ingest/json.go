package ingest

import (
	"encoding/json"

	"github.com/sketchd/sketchd"
)

func jsonOf(s sketchd.Stream) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}
