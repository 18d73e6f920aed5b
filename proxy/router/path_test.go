package router

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

func TestCleanPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     string
		want    string // "" means raw itself, unchanged
		wantErr error
	}{
		{name: "plain", raw: "/v1/items/42"},
		{name: "root", raw: "/"},
		{name: "trailing slash kept", raw: "/v1/items/"},
		{name: "empty is root", raw: "", want: "/"},
		{name: "sub-delims and colon kept", raw: "/a/b:c@d!$&'()*+,;=e"},
		{name: "matrix parameter kept", raw: "/a/b;v=1/c"},
		{name: "dots inside a segment", raw: "/files/a..b/.well-known/x.json"},
		{name: "unreserved decoded", raw: "/v%31/%7Euser/%2D%2e%5F", want: "/v1/~user/-._"},
		{name: "reserved stays encoded", raw: "/a%3Fb/%23c/%20d/%25e/%2B", want: ""},
		{name: "hex made upper case", raw: "/a%3fb/%c3%a9", want: "/a%3Fb/%C3%A9"},
		{name: "raw non-ascii encoded", raw: "/caf\xc3\xa9", want: "/caf%C3%A9"},
		{name: "raw braces encoded", raw: "/a{b}|c", want: "/a%7Bb%7D%7Cc"},

		{name: "encoded slash", raw: "/v1/a%2Fb", wantErr: ErrAmbiguousPath},
		{name: "encoded slash lower case", raw: "/v1/a%2fb", wantErr: ErrAmbiguousPath},
		{name: "encoded backslash", raw: "/v1/..%5Cadmin", wantErr: ErrAmbiguousPath},
		{name: "raw backslash", raw: "/v1/a\\b", wantErr: ErrAmbiguousPath},
		{name: "encoded nul", raw: "/v1/a%00.json", wantErr: ErrAmbiguousPath},
		{name: "raw nul", raw: "/v1/a\x00b", wantErr: ErrAmbiguousPath},
		{name: "encoded control", raw: "/v1/a%0d%0aSet-Cookie:x", wantErr: ErrAmbiguousPath},
		{name: "raw space", raw: "/v1/a b", wantErr: ErrAmbiguousPath},
		{name: "raw tab", raw: "/v1/a\tb", wantErr: ErrAmbiguousPath},
		{name: "del", raw: "/v1/a%7Fb", wantErr: ErrAmbiguousPath},
		{name: "malformed percent", raw: "/v1/100%", wantErr: ErrAmbiguousPath},
		{name: "malformed percent digits", raw: "/v1/%zz", wantErr: ErrAmbiguousPath},
		{name: "truncated percent", raw: "/v1/%4", wantErr: ErrAmbiguousPath},
		{name: "double slash", raw: "/v1//admin", wantErr: ErrAmbiguousPath},
		{name: "leading double slash", raw: "//evil.example/x", wantErr: ErrAmbiguousPath},
		{name: "dot dot", raw: "/v1/../admin", wantErr: ErrAmbiguousPath},
		{name: "trailing dot dot", raw: "/v1/admin/..", wantErr: ErrAmbiguousPath},
		{name: "dot", raw: "/v1/./admin", wantErr: ErrAmbiguousPath},
		{name: "trailing dot", raw: "/v1/.", wantErr: ErrAmbiguousPath},
		{name: "encoded dot dot", raw: "/v1/%2e%2e/admin", wantErr: ErrAmbiguousPath},
		{name: "half encoded dot dot", raw: "/v1/.%2E/admin", wantErr: ErrAmbiguousPath},
		{name: "tomcat dot dot semicolon", raw: "/v1/..;/admin", wantErr: ErrAmbiguousPath},
		{name: "tomcat with parameter", raw: "/v1/..;jsessionid=x/admin", wantErr: ErrAmbiguousPath},
		{name: "encoded semicolon", raw: "/v1/..%3b/admin", wantErr: ErrAmbiguousPath},
		{name: "dot semicolon", raw: "/v1/.;/admin", wantErr: ErrAmbiguousPath},
		{name: "three dots", raw: "/v1/.../admin", wantErr: ErrAmbiguousPath},
		{name: "dots and encoded space", raw: "/v1/..%20/admin", wantErr: ErrAmbiguousPath},
		{name: "not absolute", raw: "*", wantErr: ErrAmbiguousPath},
		{name: "too long", raw: "/" + strings.Repeat("a", MaxPathLen), wantErr: ErrPathTooLong},
		{name: "longest allowed", raw: "/" + strings.Repeat("a", MaxPathLen-1)},
		{name: "too many segments", raw: strings.Repeat("/a", MaxPathSegments+1), wantErr: ErrTooManySegments},
		{name: "most segments allowed", raw: strings.Repeat("/a", MaxPathSegments)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw := []byte(tc.raw)
			got, changed, err := CleanPath(nil, raw)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("CleanPath(%q) err = %v, want %v", tc.raw, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			want := tc.want
			if want == "" {
				want = tc.raw
			}
			if string(got) != want || changed != (want != tc.raw) {
				t.Fatalf("CleanPath(%q) = %q (changed %v), want %q", tc.raw, got, changed, want)
			}
			if !changed && len(raw) > 0 && &got[0] != &raw[0] {
				t.Fatalf("CleanPath(%q) copied an unchanged path", tc.raw)
			}
		})
	}
}

func TestCleanPathDoesNotAllocate(t *testing.T) {
	raw := []byte("/v1/items/42/tags;x=1")
	var buf [64]byte
	if n := testing.AllocsPerRun(100, func() { _, _, _ = CleanPath(buf[:0], raw) }); n != 0 {
		t.Fatalf("CleanPath allocates %v times", n)
	}
}

func TestStripSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, base, want string
	}{
		{name: "below", path: "/v1/x", base: "/v1", want: "/x"},
		{name: "exact", path: "/v1", base: "/v1", want: "/"},
		{name: "trailing slash", path: "/v1/", base: "/v1", want: "/"},
		{name: "root base", path: "/a/b", base: "/", want: "/a/b"},
		{name: "base with slash", path: "/v1/admin/x", base: "/v1/admin/", want: "/x"},
		{name: "encoded base", path: "/v%C3%A9/x%3By", base: "/v\u00e9", want: "/x%3By"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(StripSegments([]byte(tc.path), Segments(tc.base))); got != tc.want {
				t.Fatalf("StripSegments(%q, %q) = %q, want %q", tc.path, tc.base, got, tc.want)
			}
		})
	}
}

// percentDecode decodes every %XX (the reading of a decoding server).
func percentDecode(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '%' && i+2 < len(b) && unhex(b[i+1]) >= 0 && unhex(b[i+2]) >= 0 {
			out = append(out, byte(unhex(b[i+1])<<4|unhex(b[i+2])))
			i += 2
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// FuzzCleanPath checks the normaliser's promises on any input: a clean path
// means what the raw one meant (same bytes once decoded), is its own normal
// form, and decodes to the same segments, none of them a dot segment and no
// backslash or NUL.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{
		"/", "/v1/items/42", "/v1/../admin", "/v1/..;/admin", "/a%2Fb", "/a%5Cb", "/a%00", "/%2e%2e/x",
		"/caf\xc3\xa9", "/a%3fb", "//x", "/a/.", "/v%31/x", "/a;b/c", "/...", "/..%20", "/a%3B/..%3b",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		clean, changed, err := CleanPath(nil, raw)
		if err != nil {
			return
		}
		if len(clean) == 0 || clean[0] != '/' {
			t.Fatalf("CleanPath(%q) = %q: not absolute", raw, clean)
		}
		if !changed && !bytes.Equal(clean, raw) {
			t.Fatalf("CleanPath(%q) = %q but says unchanged", raw, clean)
		}
		if len(raw) > 0 && !bytes.Equal(percentDecode(raw), percentDecode(clean)) {
			t.Fatalf("CleanPath(%q) = %q changes the meaning", raw, clean)
		}
		again, changed2, err := CleanPath(nil, clean)
		if err != nil || changed2 || !bytes.Equal(again, clean) {
			t.Fatalf("CleanPath(%q) = %q is not a fixed point: %q, %v, %v", raw, clean, again, changed2, err)
		}
		dec := percentDecode(clean)
		if bytes.Count(dec, []byte("/")) != bytes.Count(clean, []byte("/")) {
			t.Fatalf("CleanPath(%q) = %q decodes to other segments: %q", raw, clean, dec)
		}
		if bytes.ContainsAny(dec, "\\\x00") {
			t.Fatalf("CleanPath(%q) = %q decodes to a backslash or NUL", raw, clean)
		}
		for seg := range bytes.SplitSeq(dec[1:], []byte("/")) {
			base, _, _ := bytes.Cut(seg, []byte(";"))
			if len(bytes.Trim(base, ". ")) == 0 && bytes.Contains(base, []byte(".")) {
				t.Fatalf("CleanPath(%q) = %q keeps dot segment %q", raw, clean, seg)
			}
		}
	})
}

// templateRegexp is the reference reading of a route template: every
// {name} is one or more bytes other than "/", the rest literal.
func templateRegexp(tmpl string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^`)
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			break
		}
		b.WriteString(regexp.QuoteMeta(tmpl[:i]))
		b.WriteString(`[^/]+`)
		tmpl = tmpl[i+strings.IndexByte(tmpl[i:], '}')+1:]
	}
	b.WriteString(regexp.QuoteMeta(tmpl))
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

// FuzzRouteMatch checks the linear matcher against a regular expression
// (RE2, itself linear) for any valid template and path.
func FuzzRouteMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"/items/{id}", "/items/42"},
		{"/files/{name}.{ext}.gz", "/files/a.b.c.gz"},
		{"/files/{name}.json", "/files/.json"},
		{"/v{major}/status", "/v2/status"},
		{"/{a}{b}x{c}", "/aaxx"},
		{"/{p}aab{q}ab", "/aaabaab"},
		{"/a/{x}/c", "/a/b/c"},
		{"/trailing/", "/trailing"},
		{"/{p}abab{q}", "/abababab"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		// The reference works on UTF-8 text; the matcher on bytes.
		if len(tmpl) > 256 || len(path) > 1024 || !utf8.ValidString(tmpl) || !utf8.ValidString(path) ||
			proxycfg.ValidateRoute(proxycfg.Route{Method: "GET", Path: tmpl}) != nil {
			return
		}
		r, err := CompileRoutes([]proxycfg.Route{{Method: "GET", Path: tmpl}})
		if err != nil {
			t.Fatalf("CompileRoutes(%q): %v", tmpl, err)
		}
		got, _ := r.Match([]byte("GET"), []byte(path))
		want := RouteNotFound
		if templateRegexp(tmpl).MatchString(path) {
			want = RouteMatched
		}
		if got != want {
			t.Fatalf("Match(%q) against %q = %d, want %d", path, tmpl, got, want)
		}
	})
}

func BenchmarkCleanPath(b *testing.B) {
	var buf [256]byte
	for _, bc := range []struct{ name, path string }{
		{name: "normal", path: "/v1/items/42/tags"},
		{name: "encoded", path: "/v1/caf%c3%a9/%7Euser/x%3By"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := []byte(bc.path)
			b.ReportAllocs()
			for b.Loop() {
				_, _, _ = CleanPath(buf[:0], p)
			}
		})
	}
}
