package ingest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/functions/ingest"
)

// BenchmarkServeHTTP measures ingest's own cost per request, in process
// (no network, no load generator), with Kafka acknowledging every record:
// the number to divide a core by. Parallel, so requests batch in the
// producer as they do under real load.
func BenchmarkServeHTTP(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("events=%d", size), func(b *testing.B) {
			e := newEnv(b, func(c *ingest.Config) { c.RateLimit = 0 })
			ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
			data := `{"item_id":"gems_100","item_type":"currency_pack","currency":"USD","amount_minor":499,"transaction_id":"t-1"}`
			var body []byte
			headers := http.Header{"Authorization": {"Bearer " + e.keys.Write}}
			if size == 1 {
				body = []byte(data)
				for k, v := range map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": "b-1",
					"Ce-Source": "/bench", "Ce-Type": "com.gamemetrics.purchase", "Ce-Subject": "player-1", "Ce-Time": ts} {
					headers.Set(k, v)
				}
			} else {
				evs := make([]json.RawMessage, size)
				for i := range evs {
					evs[i] = json.RawMessage(fmt.Sprintf(`{"specversion":"1.0","id":"b-%d","source":"/bench","type":"com.gamemetrics.purchase","subject":"player-%d","time":%q,"datacontenttype":"application/json","data":%s}`, i, i%20, ts, data))
				}
				body, _ = json.Marshal(evs)
				headers.Set("Content-Type", "application/cloudevents-batch+json")
			}
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
					req.Header = headers.Clone()
					w := httptest.NewRecorder()
					e.ingest.ServeHTTP(w, req)
					if w.Code != http.StatusAccepted {
						b.Fatalf("status %d: %s", w.Code, w.Body)
					}
				}
			})
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
