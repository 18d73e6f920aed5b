package devportal_test

import (
	"net/url"
	"testing"
)

// TestPageAccountPages: sign-in errors, password reset, and sign-up of a
// known address all answer without telling whether an address has an
// account.
func TestPageAccountPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.pageSignedIn("acme", "known@example.com", true)
	c := e.client("acme")

	// Wrong password and unknown address: the same answer.
	for _, email := range []string{"known@example.com", "nobody@example.com"} {
		c.submit("/login", "/login", url.Values{"email": {email}, "password": {"wrong password!"}}).must(t, 401).
			contains(t, "Wrong email or password.", `value="`+email+`"`).lacks(t, "wrong password!")
	}
	// Sign-up with a known address looks like any other sign-up.
	c.submit("/signup", "/signup", url.Values{"name": {"Again"}, "email": {"known@example.com"},
		"password": {"correct horse battery"}}).redirectsTo(t, "/signup/sent")
	// Field errors sit next to their fields, values kept (not the password).
	c.submit("/signup", "/signup", url.Values{"name": {""}, "email": {"not-an-address"}, "password": {"short"}}).must(t, 422).
		contains(t, `id="f-name-error"`, `id="f-email-error"`, `id="f-password-error"`, `value="not-an-address"`,
			`aria-invalid="true"`).lacks(t, `value="short"`)

	// Password reset: the same answer for any address, a mail for a known one.
	mails := len(e.sink.Messages())
	c.submit("/forgot", "/forgot", url.Values{"email": {"nobody@example.com"}}).redirectsTo(t, "/login")
	if len(e.sink.Messages()) != mails {
		t.Error("a reset of an unknown address sent mail")
	}
	c.submit("/forgot", "/forgot", url.Values{"email": {"known@example.com"}}).redirectsTo(t, "/login")
	c.page("GET", "/login", nil).must(t, 200).contains(t, "If that address has an account")
	tok := e.mailedToken("known@example.com", "Reset")
	for range 2 { // GET never consumes
		c.page("GET", "/reset?token="+tok, nil).must(t, 200).contains(t, `id="reset-form"`, `name="token" value="`+tok+`"`)
	}
	c.submit("/reset?token="+tok, "/reset", url.Values{"token": {tok}, "password": {"short"}}).must(t, 422).
		contains(t, `id="f-password-error"`)
	c.submit("/reset?token="+tok, "/reset", url.Values{"token": {tok}, "password": {"a brand new passphrase"}}).redirectsTo(t, "/login")
	c.page("GET", "/login", nil).must(t, 200).contains(t, "Your password is changed.")
	c.submit("/reset?token="+tok, "/reset", url.Values{"token": {tok}, "password": {"another new passphrase"}}).must(t, 422).
		contains(t, "already used or expired")
	c.submit("/login", "/login", url.Values{"email": {"known@example.com"}, "password": {"a brand new passphrase"}}).redirectsTo(t, "/apps")
}

// TestPageSignupModes: an invitation-only portal explains itself and takes
// sign-ups with an invitation only; an approval portal says it reviews
// accounts and shows a pending developer a banner.
func TestPageSignupModes(t *testing.T) {
	t.Parallel()
	inv := newEnv(t, envOpts{signup: "invite"})
	c := inv.client("acme")
	c.page("GET", "/", nil).must(t, 200).lacks(t, `id="cta-signup"`)
	c.page("GET", "/signup", nil).must(t, 200).contains(t, "invitation-only", `id="signup-closed"`).lacks(t, `id="signup-form"`)
	c.page("GET", "/signup?invite=tgd_abc&email=guest%40example.com", nil).must(t, 200).
		contains(t, `id="signup-form"`, `name="invite" value="tgd_abc"`, `value="guest@example.com"`)
	c.submit("/signup?invite=tgd_abc", "/signup", url.Values{"invite": {"tgd_abc"}, "name": {"Guest"},
		"email": {"guest@example.com"}, "password": {"correct horse battery"}}).must(t, 403).contains(t, "invitation")

	appr := newEnv(t, envOpts{signup: "approval"})
	a := appr.client("acme")
	a.page("GET", "/signup", nil).must(t, 200).contains(t, "reviews every new account")
	pc, _ := appr.pageSignedIn("acme", "waiting@example.com", true)
	pc.page("GET", "/apis", nil).must(t, 200).contains(t, `id="pending-banner"`)
	appID := pc.pageNewApp("Patient")
	pc.pageSubscribe(appID, appr.tenants["acme"].FreePlan.ID).must(t, 403).contains(t, "approval")
}
