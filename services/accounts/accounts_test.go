package accounts_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
)

var secret = []byte("accounts-test-secret-0123456789")

func signup(t *testing.T, db *pgxpool.Pool, slug string) accounts.User {
	t.Helper()
	_, u, err := accounts.Signup(context.Background(), db, secret, accounts.SignupInput{
		Company: "Co " + slug, Slug: slug, Name: "Owner", Email: "owner@" + slug + ".example", Password: "correct horse battery"})
	if err != nil {
		t.Fatalf("signup %s: %v", slug, err)
	}
	return u
}

// rfcHash is "s3cret password" under RFC 9106's second recommended
// parameters (64 MiB, 3 passes, 4 lanes): hashes keep their own parameters.
const rfcHash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$DKgfGuzoUEDugfbpsxAaZTboilM8mSQG12HrByfk4GQ"

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	h, err := accounts.HashPassword("s3cret password")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=47104,t=1,p=1$") {
		t.Errorf("hash %q is not an argon2id PHC string with the expected parameters", h)
	}
	h2, _ := accounts.HashPassword("s3cret password")
	if h == h2 {
		t.Errorf("two hashes of one password are equal: no salt")
	}
	for _, tc := range []struct {
		name, hash, pw string
		ok, err        bool
	}{
		{name: "right", hash: h, pw: "s3cret password", ok: true},
		{name: "wrong", hash: h, pw: "s3cret passwort"},
		{name: "empty", hash: h, pw: ""},
		{name: "not phc", hash: "plain", pw: "x", err: true},
		{name: "bcrypt", hash: "$2a$10$abcdefghijklmnopqrstuu", pw: "x", err: true},
		{name: "bad salt", hash: "$argon2id$v=19$m=47104,t=1,p=1$!!$AAAA", pw: "x", err: true},
		{name: "older parameters", hash: rfcHash, pw: "s3cret password", ok: true},
		{name: "absurd cost", hash: "$argon2id$v=19$m=99999999,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA", pw: "x", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := accounts.CheckPassword(tc.hash, tc.pw)
			if ok != tc.ok || (err != nil) != tc.err {
				t.Errorf("CheckPassword = %v, %v; want %v, error %v", ok, err, tc.ok, tc.err)
			}
		})
	}
}

func TestLoginSessionsAndThrottle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	u := signup(t, db, "signin")
	got, err := accounts.Login(ctx, db, " Owner@Signin.example ", "correct horse battery", "192.0.2.1")
	if err != nil || got.ID != u.ID || got.Role != accounts.RoleOwner {
		t.Fatalf("login = %+v, %v", got, err)
	}
	s1, err := accounts.StartSession(ctx, db, got)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := accounts.StartSession(ctx, db, got)
	if err != nil {
		t.Fatal(err)
	}
	if s1.ID == s2.ID || s1.CSRF == s2.CSRF {
		t.Fatalf("sessions share an id or CSRF token")
	}
	back, err := accounts.LookupSession(ctx, db, s1.ID)
	if err != nil || back.User.ID != u.ID || back.CSRF != s1.CSRF {
		t.Fatalf("lookup = %+v, %v", back, err)
	}
	if err := accounts.EndSession(ctx, db, s1.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{s1.ID, "", "tgs_unknown", strings.Repeat("x", 500)} {
		if _, err := accounts.LookupSession(ctx, db, id); !errors.Is(err, fault.ErrUnauthenticated) {
			t.Errorf("lookup %.20q = %v, want unauthenticated", id, err)
		}
	}
	var stored int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE digest = $1`, s2.ID).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("a session id is stored in clear (%d rows, %v)", stored, err)
	}

	if _, err := accounts.Login(ctx, db, "nobody@signin.example", "whatever", "192.0.2.1"); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Errorf("unknown email: %v", err)
	}
	// The account is throttled per client: the guessing client is stopped,
	// even with the right password; another client is not locked out.
	for i := 0; i < accounts.RuleLoginAccountClient.Max; i++ {
		if _, err := accounts.Login(ctx, db, "owner@signin.example", "wrong", "192.0.2.2"); !errors.Is(err, accounts.ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	var te *fault.ThrottledError
	if _, err := accounts.Login(ctx, db, "owner@signin.example", "correct horse battery", "192.0.2.2"); !errors.As(err, &te) || te.RetryAfter <= 0 {
		t.Fatalf("after %d failures: %v, want throttled", accounts.RuleLoginAccountClient.Max, err)
	}
	if _, err := accounts.Login(ctx, db, "owner@signin.example", "correct horse battery", "192.0.2.3"); err != nil {
		t.Fatalf("another client is locked out: %v", err)
	}
}

// TestLoginThrottleIsAtomic: concurrent guesses from one client never slip
// under the account-and-client limit together.
func TestLoginThrottleIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	signup(t, db, "atomic")
	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := accounts.Login(ctx, db, "owner@atomic.example", "wrong password", "198.51.100.1")
			errs <- err
		}()
	}
	bad, throttled := 0, 0
	for range n {
		err := <-errs
		var te *fault.ThrottledError
		switch {
		case errors.Is(err, accounts.ErrBadCredentials):
			bad++
		case errors.As(err, &te):
			throttled++
		default:
			t.Errorf("unexpected %v", err)
		}
	}
	if bad != accounts.RuleLoginAccountClient.Max || throttled != n-bad {
		t.Errorf("%d passwords checked and %d throttled, want %d checked", bad, throttled, accounts.RuleLoginAccountClient.Max)
	}
}

// TestSignupAndResetThrottled: sign-ups and reset requests are counted per
// client and per address, before any hashing or mail.
func TestSignupAndResetThrottled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	var te *fault.ThrottledError
	in := func(i int, client string) accounts.SignupInput {
		return accounts.SignupInput{Company: "Co", Slug: fmt.Sprintf("thr-%s-%d", strings.ReplaceAll(client, ".", "-"), i), Name: "O",
			Email: fmt.Sprintf("o%d@%s.example", i, strings.ReplaceAll(client, ".", "-")), Password: "correct horse battery", Client: client}
	}
	for i := range accounts.RuleSignupClient.Max {
		if _, _, err := accounts.Signup(ctx, db, secret, in(i, "192.0.2.10")); err != nil {
			t.Fatalf("signup %d: %v", i, err)
		}
	}
	if _, _, err := accounts.Signup(ctx, db, secret, in(99, "192.0.2.10")); !errors.As(err, &te) {
		t.Fatalf("signup over the client limit: %v", err)
	}
	if _, _, err := accounts.Signup(ctx, db, secret, in(99, "192.0.2.11")); err != nil {
		t.Fatalf("another client: %v", err)
	}
	// One address, many clients: the per-address limit (the sign-up above
	// was the address's first attempt).
	for i := 1; i <= accounts.RuleSignupAccount.Max; i++ {
		x := in(99, "192.0.2.11")
		x.Client = fmt.Sprintf("203.0.113.%d", i)
		_, _, err := accounts.Signup(ctx, db, secret, x)
		if i < accounts.RuleSignupAccount.Max && !errors.Is(err, fault.ErrConflict) {
			t.Fatalf("attempt %d: %v, want conflict (address taken)", i, err)
		}
		if i == accounts.RuleSignupAccount.Max && !errors.As(err, &te) {
			t.Fatalf("attempt %d: %v, want throttled", i, err)
		}
	}

	for i := range accounts.RuleResetAccount.Max {
		if _, _, _, err := accounts.RequestReset(ctx, db, "o1@192-0-2-10.example", fmt.Sprintf("203.0.113.%d", i)); err != nil {
			t.Fatalf("reset %d: %v", i, err)
		}
	}
	if _, _, _, err := accounts.RequestReset(ctx, db, "o1@192-0-2-10.example", "203.0.113.99"); !errors.As(err, &te) {
		t.Fatalf("reset over the address limit: %v", err)
	}
	for i := range accounts.RuleResetClient.Max {
		if _, _, _, err := accounts.RequestReset(ctx, db, fmt.Sprintf("x%d@nobody.example", i), "198.51.100.9"); err != nil {
			t.Fatalf("reset %d: %v", i, err)
		}
	}
	if _, _, _, err := accounts.RequestReset(ctx, db, "y@nobody.example", "198.51.100.9"); !errors.As(err, &te) {
		t.Fatalf("reset over the client limit: %v", err)
	}
}

func TestRolesKeepAnOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	owner := signup(t, db, "roles")
	other := signup(t, db, "roles-other")
	inv, tok, err := accounts.CreateInvite(ctx, db, owner.Actor(), "Second@Roles.example", accounts.RoleAdmin)
	if err != nil || inv.Email != "second@roles.example" {
		t.Fatalf("invite = %+v, %v", inv, err)
	}
	if _, _, err := accounts.CreateInvite(ctx, db, owner.Actor(), "owner@roles-other.example", accounts.RoleViewer); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("inviting an existing account: %v, want conflict", err)
	}
	second, err := accounts.AcceptInvite(ctx, db, tok, "Second", "second password")
	if err != nil || second.Role != accounts.RoleAdmin || second.TenantID != owner.TenantID {
		t.Fatalf("accept = %+v, %v", second, err)
	}
	if _, err := accounts.AcceptInvite(ctx, db, tok, "Again", "second password"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("reused invite: %v", err)
	}
	for _, tc := range []struct {
		name    string
		run     func() error
		wantErr error
	}{
		{"demote the only owner", func() error { return accounts.SetRole(ctx, db, owner.Actor(), owner.ID, accounts.RoleAdmin) }, fault.ErrConflict},
		{"remove the only owner", func() error { return accounts.RemoveUser(ctx, db, owner.Actor(), owner.ID) }, fault.ErrConflict},
		{"bad role", func() error { return accounts.SetRole(ctx, db, owner.Actor(), second.ID, "god") }, nil},
		{"other tenant's user", func() error { return accounts.SetRole(ctx, db, owner.Actor(), other.ID, accounts.RoleViewer) }, fault.ErrNotFound},
		{"remove other tenant's user", func() error { return accounts.RemoveUser(ctx, db, owner.Actor(), other.ID) }, fault.ErrNotFound},
		{"promote second", func() error { return accounts.SetRole(ctx, db, owner.Actor(), second.ID, accounts.RoleOwner) }, nil},
		{"now the first may step down", func() error { return accounts.SetRole(ctx, db, owner.Actor(), owner.ID, accounts.RoleViewer) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if tc.name == "bad role" {
				var ve *fault.ValidationError
				if !errors.As(err, &ve) {
					t.Errorf("err = %v, want a validation error", err)
				}
				return
			}
			if (tc.wantErr == nil && err != nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestSSOLoginLinksAndProvisions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	a := verifiedOwner(t, db, "sso-a")
	b := verifiedOwner(t, db, "sso-b")
	if _, err := accounts.SaveSSODomains(ctx, db, b.Actor(), []string{"sso-b.example"}); err != nil {
		t.Fatal(err)
	}
	id := func(sub, email string, verified bool) accounts.Identity {
		return accounts.Identity{Issuer: "https://idp.example", Subject: sub, Email: email, EmailVerified: verified, Name: "N"}
	}
	for _, tc := range []struct {
		name      string
		id        accounts.Identity
		tenant    string
		wantUser  string
		wantRole  string
		wantNoAcc bool
	}{
		{name: "unverified email", id: id("s1", a.Email, false), wantNoAcc: true},
		{name: "platform IdP links by verified email", id: id("s1", a.Email, true), wantUser: a.ID},
		{name: "known subject wins over email", id: id("s1", "changed@else.example", true), wantUser: a.ID},
		{name: "platform IdP never provisions", id: id("s2", "new@else.example", true), wantNoAcc: true},
		{name: "tenant IdP cannot reach another tenant's user", id: id("s3", b.Email, true), tenant: a.TenantID, wantNoAcc: true},
		{name: "tenant IdP cannot reuse a linked subject of another tenant", id: id("s1", a.Email, true), tenant: b.TenantID, wantNoAcc: true},
		{name: "tenant IdP provisions a viewer at an allowed domain", id: id("s4", "new@sso-b.example", true), tenant: b.TenantID, wantRole: accounts.RoleViewer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := accounts.SSOLogin(ctx, db, tc.id, tc.tenant)
			if tc.wantNoAcc {
				if !errors.Is(err, accounts.ErrNoAccount) {
					t.Errorf("err = %v, want ErrNoAccount", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantUser != "" && u.ID != tc.wantUser {
				t.Errorf("user %s, want %s", u.ID, tc.wantUser)
			}
			if tc.wantRole != "" && (u.Role != tc.wantRole || u.TenantID != tc.tenant || u.HasPassword || !u.EmailVerified) {
				t.Errorf("provisioned %+v", u)
			}
		})
	}
}

// TestTenantSSOAdmission: a tenant's own IdP admits nobody without an
// invitation unless the owner allowed their domain; Google accounts need an
// allowed hosted domain.
func TestTenantSSOAdmission(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	owner := verifiedOwner(t, db, "corp")
	if _, _, err := accounts.CreateInvite(ctx, db, owner.Actor(), "Invited@Partner.example", accounts.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	okta := func(sub, email string) accounts.Identity {
		return accounts.Identity{Issuer: "https://corp.okta.example", Subject: sub, Email: email, EmailVerified: true}
	}
	google := func(sub, email, hd string) accounts.Identity {
		return accounts.Identity{Issuer: "https://accounts.google.com", Subject: sub, Email: email, EmailVerified: true, HostedDomain: hd}
	}
	steps := []struct {
		name     string
		domains  []string // set before the step when not nil
		id       accounts.Identity
		wantRole string // "" means refused
	}{
		{name: "outsider refused without allowed domains", id: okta("o1", "someone@gmail.example")},
		{name: "own domain refused without allowed domains", id: okta("o2", "employee@corp.example")},
		{name: "invited address admitted with the invited role", id: okta("o3", "invited@partner.example"), wantRole: accounts.RoleAdmin},
		{name: "another identity of the invited address links to the same user", id: okta("o3b", "INVITED@partner.example"),
			wantRole: accounts.RoleAdmin},
		{name: "allowed domain admitted as viewer", domains: []string{"@Corp.example", "corp.example"}, id: okta("o4", "employee@corp.example"),
			wantRole: accounts.RoleViewer},
		{name: "outsider still refused", id: okta("o5", "someone@gmail.example")},
		{name: "subdomain is another domain", id: okta("o6", "x@eu.corp.example")},
		{name: "google workspace account of an allowed domain", id: google("g1", "ada@corp.example", "corp.example"), wantRole: accounts.RoleViewer},
		{name: "google account without a hosted domain", id: google("g2", "bob@corp.example", "")},
		{name: "google hosted domain not allowed", id: google("g3", "eve@corp.example", "evil.example")},
		{name: "domains removed: invitation only again", domains: []string{}, id: okta("o7", "late@corp.example")},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.domains != nil {
				if _, err := accounts.SaveSSODomains(ctx, db, owner.Actor(), st.domains); err != nil {
					t.Fatal(err)
				}
			}
			u, err := accounts.SSOLogin(ctx, db, st.id, owner.TenantID)
			if st.wantRole == "" {
				if !errors.Is(err, accounts.ErrNoAccount) {
					t.Fatalf("admitted: %+v, %v", u, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Role != st.wantRole || u.TenantID != owner.TenantID || !u.EmailVerified {
				t.Errorf("user %+v, want role %s", u, st.wantRole)
			}
		})
	}
	var ve *fault.ValidationError
	if _, err := accounts.SaveSSODomains(ctx, db, owner.Actor(), []string{"not a domain"}); !errors.As(err, &ve) {
		t.Errorf("bad domain: %v", err)
	}
}

// TestSSOTakesOverUnverifiedAccount: someone who signs up with another
// person's address (never verifying it) loses the account, its password and
// sessions, when the address's owner signs in through single sign-on; a
// verified account is linked as it is.
func TestSSOTakesOverUnverifiedAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	squatter := signup(t, db, "victim") // owner@victim.example, unverified
	if squatter.EmailVerified {
		t.Fatalf("a fresh signup is verified")
	}
	s, err := accounts.StartSession(ctx, db, squatter)
	if err != nil {
		t.Fatal(err)
	}
	victim := accounts.Identity{Issuer: "https://idp.example", Subject: "v", Email: "owner@victim.example", EmailVerified: true}
	u, err := accounts.SSOLogin(ctx, db, victim, "")
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != squatter.ID || u.HasPassword || !u.EmailVerified {
		t.Errorf("after takeover: %+v", u)
	}
	if _, err := accounts.LookupSession(ctx, db, s.ID); !errors.Is(err, fault.ErrUnauthenticated) {
		t.Errorf("the squatter's session survived: %v", err)
	}
	if _, err := accounts.Login(ctx, db, "owner@victim.example", "correct horse battery", "192.0.2.1"); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Errorf("the squatter's password still works: %v", err)
	}

	// A verified account keeps its password when linked.
	owner := verifiedOwner(t, db, "keeps")
	if _, err := accounts.SSOLogin(ctx, db, accounts.Identity{Issuer: "https://idp.example", Subject: "k",
		Email: owner.Email, EmailVerified: true}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.Login(ctx, db, owner.Email, "correct horse battery", "192.0.2.1"); err != nil {
		t.Errorf("a verified account lost its password: %v", err)
	}
}

// TestEmailVerification: the signup link verifies once; invited users and
// password resets count as verified.
func TestEmailVerification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	u := signup(t, db, "verify")
	tok, err := accounts.NewVerification(ctx, db, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.VerifyEmail(ctx, db, "tgv_wrong", "192.0.2.1"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("wrong token: %v", err)
	}
	got, err := accounts.VerifyEmail(ctx, db, tok, "192.0.2.1")
	if err != nil || got.ID != u.ID || !got.EmailVerified {
		t.Fatalf("verify = %+v, %v", got, err)
	}
	if _, err := accounts.VerifyEmail(ctx, db, tok, "192.0.2.1"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("reused token: %v", err)
	}
	if _, err := accounts.NewVerification(ctx, db, got); !errors.Is(err, accounts.ErrAlreadyVerified) {
		t.Errorf("new link for a verified address: %v", err)
	}

	other := signup(t, db, "verify-reset")
	_, rt, _, err := accounts.RequestReset(ctx, db, other.Email, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := accounts.ResetPassword(ctx, db, rt, "a brand new password"); err != nil || !r.EmailVerified {
		t.Errorf("reset = %+v, %v; want the address verified", r, err)
	}
	_, it, err := accounts.CreateInvite(ctx, db, got.Actor(), "mate@verify.example", accounts.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := accounts.AcceptInvite(ctx, db, it, "Mate", "mate's password"); err != nil || !m.EmailVerified {
		t.Errorf("invited = %+v, %v; want the address verified", m, err)
	}
}

// TestTokensRevokedWithTheirAdmin: admin tokens made by a user (or by a
// token the user made) stop working when the user leaves the team or can no
// longer write; other tokens keep working.
func TestTokensRevokedWithTheirAdmin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	owner := verifiedOwner(t, db, "tokens")
	mk := func(role, email string) accounts.User {
		u, err := accounts.CreateUser(ctx, db, owner.Actor(), email, "U", role, "a long password")
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	leaver, demoted := mk(accounts.RoleAdmin, "leaver@tokens.example"), mk(accounts.RoleAdmin, "demoted@tokens.example")
	token := func(who audit.Actor) (tenancy.AdminToken, string) {
		at, tok, err := tenancy.CreateToken(ctx, db, secret, who, "t")
		if err != nil {
			t.Fatal(err)
		}
		return at, tok
	}
	leaverTok, leaverSecret := token(leaver.Actor())
	_, childSecret := token(leaverTok.Actor()) // made with the leaver's token
	_, demotedSecret := token(demoted.Actor())
	_, ownerSecret := token(owner.Actor())
	if err := accounts.RemoveUser(ctx, db, owner.Actor(), leaver.ID); err != nil {
		t.Fatal(err)
	}
	if err := accounts.SetRole(ctx, db, owner.Actor(), demoted.ID, accounts.RoleViewer); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tok string
		works     bool
	}{
		{"removed admin's token", leaverSecret, false},
		{"token made with the removed admin's token", childSecret, false},
		{"demoted admin's token", demotedSecret, false},
		{"owner's token", ownerSecret, true},
	} {
		_, err := tenancy.Authenticate(ctx, db, secret, tc.tok)
		if works := err == nil; works != tc.works {
			t.Errorf("%s: works = %v (%v), want %v", tc.name, works, err, tc.works)
		}
	}
}

// TestHashWaitIsBounded: when every hashing slot stays taken, a caller
// gives up after its context's deadline with ErrBusy (a throttling error)
// instead of queueing forever.
//
// Not parallel: it holds the package's hashing slots, which the parallel
// tests (paused until the sequential ones end) also need.
func TestHashWaitIsBounded(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewPool(t)
	u := verifiedOwner(t, db, "busy")
	release := accounts.HoldHashSlots()
	defer release()
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := accounts.Login(cctx, db, u.Email, "correct horse battery", "192.0.2.1")
	if !errors.Is(err, accounts.ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waited %s", d)
	}
	release()
	if _, err := accounts.Login(ctx, db, u.Email, "correct horse battery", "192.0.2.1"); err != nil {
		t.Errorf("after the slots are free: %v", err)
	}
}

// verifiedOwner is signup with the owner's address verified.
func verifiedOwner(t *testing.T, db *pgxpool.Pool, slug string) accounts.User {
	t.Helper()
	u := signup(t, db, slug)
	tok, err := accounts.NewVerification(context.Background(), db, u)
	if err != nil {
		t.Fatal(err)
	}
	u, err = accounts.VerifyEmail(context.Background(), db, tok, "192.0.2.250")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	u := signup(t, db, "reset")
	if _, _, ok, err := accounts.RequestReset(ctx, db, "nobody@reset.example", "192.0.2.1"); ok || err != nil {
		t.Fatalf("unknown email: ok=%v err=%v", ok, err)
	}
	s, _ := accounts.StartSession(ctx, db, u)
	_, tok, ok, err := accounts.RequestReset(ctx, db, "OWNER@reset.example", "192.0.2.1")
	if !ok || err != nil {
		t.Fatalf("request: %v %v", ok, err)
	}
	if valid, _ := accounts.ValidResetToken(ctx, db, tok); !valid {
		t.Fatalf("fresh token invalid")
	}
	var ve *fault.ValidationError
	if _, err := accounts.ResetPassword(ctx, db, tok, "short"); !errors.As(err, &ve) {
		t.Errorf("short password: %v", err)
	}
	if _, err := accounts.ResetPassword(ctx, db, tok, "a new password!"); err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.ResetPassword(ctx, db, tok, "a newer password"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("reused token: %v", err)
	}
	if _, err := accounts.LookupSession(ctx, db, s.ID); !errors.Is(err, fault.ErrUnauthenticated) {
		t.Errorf("session survived the reset: %v", err)
	}
	if _, err := accounts.Login(ctx, db, u.Email, "a new password!", "192.0.2.9"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := accounts.HashPassword("correct horse battery"); err != nil {
			b.Fatal(err)
		}
	}
}
