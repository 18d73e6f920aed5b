package sdk

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// file is one file of an SDK, by its path inside the SDK's folder.
type file struct {
	name string
	data []byte
}

// zipTime is the modification time of every archived file, so that the same
// document always gives the same bytes (and checksum).
var zipTime = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// checksumName is the file in every SDK that lists the SHA-256 of each of its
// other files, in the format `sha256sum -c` reads.
const checksumName = "CHECKSUM.sha256"

// archive zips files under the folder root, sorted by name, with fixed
// times and modes, and adds CHECKSUM.sha256. The output depends only on the
// files (and on compress/flate, which is deterministic for a Go release).
func archive(root string, files []file) ([]byte, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	var sums strings.Builder
	for i, f := range files {
		if i > 0 && files[i-1].name == f.name {
			return nil, fmt.Errorf("archive: %s twice", f.name)
		}
		sum := sha256.Sum256(f.data)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(sum[:]), f.name)
	}
	files = append(files, file{name: checksumName, data: []byte(sums.String())})

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	for _, f := range files {
		h := &zip.FileHeader{Name: root + "/" + f.name, Method: zip.Deflate, Modified: zipTime}
		h.SetMode(0o644)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", f.name, err)
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, fmt.Errorf("archive %s: %w", f.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return buf.Bytes(), nil
}

// slugOf returns s reduced to lower-case letters, digits and inner hyphens,
// or "api" when nothing is left. It names files, Go modules and npm packages.
func slugOf(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	out := strings.TrimSuffix(b.String(), "-")
	if out == "" {
		return "api"
	}
	return out
}

// fileSafe replaces the characters of s that do not belong in a file name.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '+', r == '-':
			return r
		}
		return '-'
	}, s)
}
