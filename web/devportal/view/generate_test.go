package view

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGeneratedFilesUpToDate regenerates the templ components in a scratch
// directory and compares them with the committed *_templ.go files, so that a
// .templ change without `go tool templ generate` fails the build.
// fileNames matches the directory part of templ's recorded source paths.
var fileNames = regexp.MustCompile("FileName: `[^`]*/")

func TestGeneratedFilesUpToDate(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs templ generate")
	}
	sources, err := filepath.Glob("*.templ")
	if err != nil || len(sources) == 0 {
		t.Fatalf("no .templ files: %v", err)
	}
	dir := t.TempDir()
	for _, src := range sources {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, src), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "tool", "templ", "generate", "-path", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("templ generate: %v\n%s", err, out)
	}
	for _, src := range sources {
		gen := strings.TrimSuffix(src, ".templ") + "_templ.go"
		want, err := os.ReadFile(filepath.Join(dir, gen))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(gen)
		if err != nil {
			t.Fatalf("%s is missing: run go tool templ generate (from the repository root)", gen)
		}
		// templ records the source path relative to where it ran; the
		// committed files come from the repository root (go tool templ generate).
		if !bytes.Equal(fileNames.ReplaceAll(got, []byte("FileName: `")), fileNames.ReplaceAll(want, []byte("FileName: `"))) {
			t.Errorf("%s is stale: run go tool templ generate (from the repository root)", gen)
		}
	}
}
