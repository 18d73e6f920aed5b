package devportal

import "testing"

// TestPageNextStaysOnSite runs the tenant portal's table of open-redirect
// tricks (web/portal TestLoginNextStaysOnSite) against the developer
// portal's "next" check: each trick is refused ("" means the default page).
func TestPageNextStaysOnSite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, next, want string
	}{
		{"empty", "", ""},
		{"path", "/apps", "/apps"},
		{"path with query", "/apps?x=1", "/apps?x=1"},
		{"tab between slashes", "/\t/evil.com", ""},
		{"newline between slashes", "/\n/evil.com", ""},
		{"carriage return", "/\r/evil.com", ""},
		{"vertical tab", "/\v/evil.com", ""},
		{"protocol-relative", "//evil.com", ""},
		{"backslash", "/\\evil.com", ""},
		{"backslashes", "\\\\evil.com", ""},
		{"absolute", "https://evil.com/", ""},
		{"scheme without slashes", "https:evil.com", ""},
		{"javascript", "javascript:alert(1)", ""},
		{"no leading slash", "evil.com", ""},
		{"null byte", "/\x00/evil.com", ""},
		{"bad escape", "/%zz", ""},
	} {
		if got := pageNext(tc.next); got != tc.want {
			t.Errorf("%s: pageNext(%q) = %q, want %q", tc.name, tc.next, got, tc.want)
		}
	}
}
