package devportal_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestPagesAreGzipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.client("acme")
	for _, path := range []string{"/apis/pets", "/api/apis", "/static/devportal.css"} {
		req, _ := http.NewRequest("GET", "http://"+host("acme")+":"+e.port()+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := c.transport().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if path == "/static/devportal.css" {
			// Static files are served before the tenant's handler: plain.
			resp.Body.Close()
			continue
		}
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%s: Content-Encoding %q", path, resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		resp.Body.Close()
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: gunzip %v", path, err)
		}
		if path == "/apis/pets" && !strings.Contains(string(b), `id="op-listpets"`) {
			t.Errorf("gunzipped page lacks the reference")
		}
	}
}
