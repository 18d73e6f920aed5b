//go:build ignore

// This program writes client.gen.go from the document /v1 serves
// (mgmtapi.OpenAPI, pinned by services/mgmtapi/testdata/openapi.json):
//
//	go generate ./services/mgmtapi/v1client
package main

import (
	"log"
	"os"

	"github.com/tollgate/tollgate/services/mgmtapi"
	"github.com/tollgate/tollgate/services/mgmtapi/v1client/internal/gen"
)

func main() {
	src, err := gen.Client(mgmtapi.OpenAPI())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("client.gen.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
