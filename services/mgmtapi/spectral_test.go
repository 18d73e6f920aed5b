package mgmtapi

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// SpectralVersion is the @stoplight/spectral-cli that deploy/local/test.sh
// installs (into a cache, with npm) and passes as TOLLGATE_SPECTRAL.
const SpectralVersion = "6.16.3"

// TestOpenAPISpectral lints the document /v1 serves with Spectral itself,
// the oas ruleset, failing on any result down to hints. TestOpenAPILint is
// the same check in Go, which runs everywhere; this one runs where
// TOLLGATE_SPECTRAL names a spectral binary (the test script sets it when
// npm could install one) and is skipped otherwise.
func TestOpenAPISpectral(t *testing.T) {
	t.Parallel()
	bin := os.Getenv("TOLLGATE_SPECTRAL")
	if bin == "" {
		t.Skip("TOLLGATE_SPECTRAL is not set (deploy/local/test.sh installs @stoplight/spectral-cli " + SpectralVersion + " with npm)")
	}
	dir := t.TempDir()
	doc := filepath.Join(dir, "openapi.json")
	ruleset := filepath.Join(dir, ".spectral.yaml")
	if err := os.WriteFile(doc, OpenAPI(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ruleset, []byte("extends: [\"spectral:oas\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "lint", doc, "--ruleset", ruleset, "--fail-severity", "hint", "-f", "text")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("spectral lint (oas ruleset): %v\n%s", err, out)
	}
	t.Logf("spectral: %s", out)
}

// TestSpectralVersionPinned: the test script installs SpectralVersion.
func TestSpectralVersionPinned(t *testing.T) {
	t.Parallel()
	script, err := os.ReadFile(filepath.Join("..", "..", "deploy", "local", "test.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "spectral_version=" + SpectralVersion + " "; !strings.Contains(string(script), want) {
		t.Errorf("deploy/local/test.sh does not pin %q", want)
	}
}
