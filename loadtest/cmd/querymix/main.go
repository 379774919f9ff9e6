// Command querymix prints the load-test query mix (loadtest/querymix) as a
// vegeta targets file or as the JSON the k6 script reads:
//
//	go run ./loadtest/cmd/querymix -format vegeta -base http://127.0.0.1:8080 > targets.txt
//	vegeta attack -targets targets.txt -rate 1000/s -duration 30s | vegeta report
//	go run ./loadtest/cmd/querymix -format k6 > loadtest/k6/mix.json
//	go run ./loadtest/cmd/querymix -format dashboard > dashboard.json   # loadtest/k6/dashboard.js
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sketchd/sketchd/loadtest/querymix"
)

func main() {
	format := flag.String("format", "vegeta", "vegeta (targets file), k6 (JSON of the mix) or dashboard (JSON of the dashboard scenario)")
	base := flag.String("base", "http://127.0.0.1:8080", "sketchd base URL (vegeta)")
	stream := flag.String("stream", "pv", "stream to query")
	flag.Parse()
	mix := querymix.Mix(*stream)
	var err error
	switch *format {
	case "vegeta":
		err = querymix.WriteVegeta(os.Stdout, mix, *base, time.Now())
	case "k6":
		err = querymix.WriteJSON(os.Stdout, mix)
	case "dashboard":
		err = querymix.DashboardOf(*stream).WriteJSON(os.Stdout)
	default:
		err = fmt.Errorf("unknown -format %q", *format)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "querymix:", err)
		os.Exit(1)
	}
}
