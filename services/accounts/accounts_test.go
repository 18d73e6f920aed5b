package accounts_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/storetest"
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
	u := signup(t, db, "login")
	got, err := accounts.Login(ctx, db, " Owner@Login.example ", "correct horse battery", "192.0.2.1")
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

	if _, err := accounts.Login(ctx, db, "nobody@login.example", "whatever", "192.0.2.1"); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Errorf("unknown email: %v", err)
	}
	for i := 0; i < accounts.MaxFailuresPerEmail; i++ {
		if _, err := accounts.Login(ctx, db, "owner@login.example", "wrong", "192.0.2.2"); !errors.Is(err, accounts.ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	var te *accounts.ThrottledError
	if _, err := accounts.Login(ctx, db, "owner@login.example", "correct horse battery", "192.0.2.3"); !errors.As(err, &te) || te.RetryAfter <= 0 {
		t.Fatalf("after %d failures: %v, want throttled", accounts.MaxFailuresPerEmail, err)
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
	a := signup(t, db, "sso-a")
	b := signup(t, db, "sso-b")
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
		{name: "tenant IdP provisions a viewer", id: id("s4", "new@sso-b.example", true), tenant: b.TenantID, wantRole: accounts.RoleViewer},
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
			if tc.wantRole != "" && (u.Role != tc.wantRole || u.TenantID != tc.tenant || u.HasPassword) {
				t.Errorf("provisioned %+v", u)
			}
		})
	}
}

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	u := signup(t, db, "reset")
	if _, _, ok, err := accounts.RequestReset(ctx, db, "nobody@reset.example"); ok || err != nil {
		t.Fatalf("unknown email: ok=%v err=%v", ok, err)
	}
	s, _ := accounts.StartSession(ctx, db, u)
	_, tok, ok, err := accounts.RequestReset(ctx, db, "OWNER@reset.example")
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
