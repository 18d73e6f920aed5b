package sdk

import (
	"context"
	"testing"
)

// BenchmarkGenerate measures one uncached generation of the 200-operation
// document per language (load, validate, generate, zip) and reports the zip
// size. go test -run '^$' -bench Generate -benchmem ./services/sdk/
func BenchmarkGenerate(b *testing.B) {
	doc := testDocuments(b)[3].doc
	for _, lang := range Languages {
		b.Run(string(lang), func(b *testing.B) {
			req := testRequest(lang, doc)
			var size int
			b.ReportAllocs()
			for b.Loop() {
				a, err := generate(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				size = len(a.Zip)
			}
			b.ReportMetric(float64(size), "zip-bytes")
		})
	}
}
