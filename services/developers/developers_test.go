package developers_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/services/throttle"
)

var secret = []byte("developers-test-secret-0123456789")

type env struct {
	t    *testing.T
	db   *pgxpool.Pool
	sink *mail.Sink
	svc  *developers.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := storetest.NewPool(t)
	sink := &mail.Sink{}
	svc := &developers.Service{DB: db, Catalog: catalog.New(db, secret, true), Mailer: sink, Secret: secret,
		Throttle: &throttle.Limiter{DB: db}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		PortalURL: func(t tenancy.Tenant) string { return "http://" + t.Slug + ".developers.test" }}
	return &env{t: t, db: db, sink: sink, svc: svc}
}

// tenant makes a tenant with its portal on, in the signup mode given.
func (e *env) tenant(slug, mode string, domains ...string) tenancy.Tenant {
	e.t.Helper()
	ten, _, err := tenancy.Create(context.Background(), e.db, secret, slug+" Inc", slug)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := settings.SavePortal(context.Background(), e.db, audit.Actor{TenantID: ten.ID, Name: "test"},
		func(p *settings.Portal) error {
			p.Enabled, p.Signup, p.AllowedEmailDomains, p.DisplayName = true, mode, domains, slug+" Developers"
			return nil
		}); err != nil {
		e.t.Fatal(err)
	}
	return ten
}

// token returns the token of the newest mail to addr whose subject has sub.
func (e *env) token(addr, sub string) string {
	e.t.Helper()
	msgs := e.sink.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if m := msgs[i]; m.To == addr && strings.Contains(m.Subject, sub) {
			_, after, ok := strings.Cut(m.Body, "token=")
			if !ok {
				_, after, ok = strings.Cut(m.Body, "invite=")
			}
			if ok {
				return strings.FieldsFunc(after, func(r rune) bool { return r == '&' || r == '\n' || r == ' ' })[0]
			}
		}
	}
	e.t.Fatalf("no mail %q to %s", sub, addr)
	return ""
}

func (e *env) mails(addr string) []mail.Message {
	var out []mail.Message
	for _, m := range e.sink.Messages() {
		if m.To == addr {
			out = append(out, m)
		}
	}
	return out
}

const pw = "correct horse battery"

func TestSignupVerifyLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	acme := e.tenant("acme", settings.SignupOpen)
	globex := e.tenant("globex", settings.SignupOpen)

	if err := e.svc.Signup(ctx, acme, developers.SignupInput{Email: "Ada@Example.com", Password: pw, Name: "Ada"}, "c1"); err != nil {
		t.Fatal(err)
	}
	m := e.mails("ada@example.com")
	if len(m) != 1 || !strings.Contains(m[0].Subject, "Confirm") || m[0].HTML == "" || !strings.Contains(m[0].Body, "acme Developers") ||
		m[0].FromName != "acme Developers" {
		t.Fatalf("verification mail: %+v", m)
	}
	// Signed in but unverified: may not subscribe.
	dev, err := e.svc.Login(ctx, acme, "ada@example.com", pw, "c1")
	if err != nil {
		t.Fatal(err)
	}
	var de *fault.DeniedError
	if err := developers.CanSubscribe(dev); !errors.As(err, &de) || de.Code != "email-unverified" {
		t.Fatalf("unverified CanSubscribe: %v", err)
	}
	// A token of acme does not verify in globex; a used token is spent.
	tok := e.token("ada@example.com", "Confirm")
	if _, err := e.svc.Verify(ctx, globex, tok, "c1"); err == nil {
		t.Fatal("acme's token verified in globex")
	}
	dev, err = e.svc.Verify(ctx, acme, tok, "c1")
	if err != nil || !dev.EmailVerified {
		t.Fatalf("verify: %+v %v", dev, err)
	}
	if _, err := e.svc.Verify(ctx, acme, tok, "c1"); err == nil {
		t.Fatal("a used token verified again")
	}
	if err := developers.CanSubscribe(dev); err != nil {
		t.Fatalf("verified CanSubscribe: %v", err)
	}
	// An expired token is refused.
	if err := e.svc.Signup(ctx, acme, developers.SignupInput{Email: "late@example.com", Password: pw, Name: "Late"}, "c1"); err != nil {
		t.Fatal(err)
	}
	late := e.token("late@example.com", "Confirm")
	if _, err := e.db.Exec(ctx, `UPDATE developer_tokens SET expires_at = now() - interval '1 second' WHERE kind = 'verify'`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Verify(ctx, acme, late, "c1"); err == nil {
		t.Fatal("expired token verified")
	}

	// The same address is a separate account in another tenant's portal.
	if err := e.svc.Signup(ctx, globex, developers.SignupInput{Email: "ada@example.com", Password: "another password 1", Name: "Ada G"}, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Login(ctx, globex, "ada@example.com", pw, "c1"); !errors.Is(err, fault.ErrUnauthenticated) {
		t.Fatalf("acme's password signed in to globex: %v", err)
	}

	// No enumeration: a known address signs up "fine" and gets a notice.
	before := len(e.mails("ada@example.com"))
	if err := e.svc.Signup(ctx, acme, developers.SignupInput{Email: "ada@example.com", Password: pw, Name: "Eve"}, "c2"); err != nil {
		t.Fatalf("known address signup: %v", err)
	}
	m = e.mails("ada@example.com")
	if len(m) != before+1 || !strings.Contains(m[len(m)-1].Subject, "already have an account") {
		t.Fatalf("account-exists mail: %+v", m[len(m)-1])
	}
	// Wrong password and unknown address fail the same way.
	_, err1 := e.svc.Login(ctx, acme, "ada@example.com", "wrong password!", "c3")
	_, err2 := e.svc.Login(ctx, acme, "nobody@example.com", "wrong password!", "c3")
	if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
		t.Fatalf("login errors differ: %v / %v", err1, err2)
	}

	// Sessions are tenant-scoped.
	s, err := e.svc.StartSession(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.LookupSession(ctx, globex.ID, s.ID); !errors.Is(err, fault.ErrUnauthenticated) {
		t.Fatalf("acme's session valid in globex: %v", err)
	}
	got, err := e.svc.LookupSession(ctx, acme.ID, s.ID)
	if err != nil || got.Developer.ID != dev.ID || got.CSRF == "" {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	if err := e.svc.EndSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.LookupSession(ctx, acme.ID, s.ID); err == nil {
		t.Fatal("ended session still valid")
	}
}

func TestSignupRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	closed := e.tenant("closed", settings.SignupInvite, "example.com")
	approval := e.tenant("approval", settings.SignupApproval)
	off, _, err := tenancy.Create(ctx, e.db, secret, "Off Inc", "off")
	if err != nil {
		t.Fatal(err)
	}

	// A tenant without a portal has none.
	if err := e.svc.Signup(ctx, off, developers.SignupInput{Email: "a@example.com", Password: pw, Name: "A"}, "c"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("signup on a disabled portal: %v", err)
	}
	// Field errors name the fields.
	var ve *fault.ValidationError
	if err := e.svc.Signup(ctx, closed, developers.SignupInput{Email: "nope", Password: "short", Name: ""}, "c"); !errors.As(err, &ve) || len(ve.Errors) != 3 {
		t.Fatalf("bad input: %v", err)
	}
	// Allowed domains.
	if err := e.svc.Signup(ctx, closed, developers.SignupInput{Email: "a@other.org", Password: pw, Name: "A"}, "c"); !errors.As(err, &ve) || ve.Errors[0].Field != "email" {
		t.Fatalf("outside domain: %v", err)
	}
	// Invite-only: no invitation, no account.
	var de *fault.DeniedError
	if err := e.svc.Signup(ctx, closed, developers.SignupInput{Email: "a@example.com", Password: pw, Name: "A"}, "c"); !errors.As(err, &de) || de.Code != "invite-required" {
		t.Fatalf("uninvited signup: %v", err)
	}
	who := audit.Actor{TenantID: closed.ID, Name: "test"}
	if err := e.svc.Invite(ctx, who, closed, "a@example.com"); err != nil {
		t.Fatal(err)
	}
	inv := e.token("a@example.com", "invited")
	// An invitation is for its address only.
	if err := e.svc.Signup(ctx, closed, developers.SignupInput{Email: "b@example.com", Password: pw, Name: "B", Invite: inv}, "c"); !errors.As(err, &de) {
		t.Fatalf("invitation used by another address: %v", err)
	}
	inv = func() string {
		if err := e.svc.Invite(ctx, who, closed, "a@example.com"); err != nil {
			t.Fatal(err)
		}
		return e.token("a@example.com", "invited")
	}()
	if err := e.svc.Signup(ctx, closed, developers.SignupInput{Email: "a@example.com", Password: pw, Name: "A", Invite: inv}, "c"); err != nil {
		t.Fatal(err)
	}
	dev, err := e.svc.Login(ctx, closed, "a@example.com", pw, "c")
	if err != nil || !dev.EmailVerified || dev.Status != developers.StatusActive {
		t.Fatalf("invited developer: %+v %v", dev, err)
	}

	// Approval: pending until the tenant decides; rejected cannot sign in.
	for _, addr := range []string{"p1@example.com", "p2@example.com"} {
		if err := e.svc.Signup(ctx, approval, developers.SignupInput{Email: addr, Password: pw, Name: "P"}, "c"); err != nil {
			t.Fatal(err)
		}
	}
	p1, err := e.svc.Login(ctx, approval, "p1@example.com", pw, "c")
	if err != nil || p1.Status != developers.StatusPending {
		t.Fatalf("pending developer: %+v %v", p1, err)
	}
	p1, _ = e.svc.Verify(ctx, approval, e.token("p1@example.com", "Confirm"), "c")
	if err := developers.CanSubscribe(p1); !errors.As(err, &de) || de.Code != "developer-pending" {
		t.Fatalf("pending CanSubscribe: %v", err)
	}
	list, _, err := e.svc.List(ctx, approval.ID, developers.StatusPending, pageAll())
	if err != nil || len(list) != 2 {
		t.Fatalf("pending list: %v %v", list, err)
	}
	aw := audit.Actor{TenantID: approval.ID, Name: "test"}
	if _, err := e.svc.Decide(ctx, aw, approval, p1.ID, true); err != nil {
		t.Fatal(err)
	}
	p2, _ := e.svc.Login(ctx, approval, "p2@example.com", pw, "c")
	if _, err := e.svc.Decide(ctx, aw, approval, p2.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Login(ctx, approval, "p2@example.com", pw, "c"); !errors.As(err, &de) || de.Code != "developer-rejected" {
		t.Fatalf("rejected login: %v", err)
	}
	// Another tenant cannot decide.
	if _, err := e.svc.Decide(ctx, who, closed, p2.ID, true); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("cross-tenant decide: %v", err)
	}
}

func TestThrottling(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	acme := e.tenant("acme", settings.SignupOpen)
	if err := e.svc.Signup(ctx, acme, developers.SignupInput{Email: "ada@example.com", Password: pw, Name: "Ada"}, "c0"); err != nil {
		t.Fatal(err)
	}
	var te *fault.ThrottledError
	n := 0
	for i := range 20 {
		_, err := e.svc.Login(ctx, acme, "ada@example.com", "wrong password!", "c1")
		if errors.As(err, &te) {
			n = i
			break
		}
	}
	if n != developers.RuleLoginAccount.Max || te.RetryAfter <= 0 {
		t.Fatalf("throttled after %d attempts (retry %v), want %d", n, te, developers.RuleLoginAccount.Max)
	}
	// Even the right password waits out the throttle from this client...
	if _, err := e.svc.Login(ctx, acme, "ada@example.com", pw, "c1"); !errors.As(err, &te) {
		t.Fatalf("right password while throttled: %v", err)
	}
	// ...but another client is not locked out by this one.
	if _, err := e.svc.Login(ctx, acme, "ada@example.com", pw, "c2"); err != nil {
		t.Fatalf("other client: %v", err)
	}
	// Resets and signups are throttled per account too.
	for range developers.RuleResetAccount.Max {
		if err := e.svc.RequestReset(ctx, acme, "ada@example.com", "c3"); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.svc.RequestReset(ctx, acme, "ada@example.com", "c4"); !errors.As(err, &te) {
		t.Fatalf("reset throttle: %v", err)
	}
}

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	acme := e.tenant("acme", settings.SignupOpen)
	if err := e.svc.Signup(ctx, acme, developers.SignupInput{Email: "ada@example.com", Password: pw, Name: "Ada"}, "c"); err != nil {
		t.Fatal(err)
	}
	dev, _ := e.svc.Login(ctx, acme, "ada@example.com", pw, "c")
	s, _ := e.svc.StartSession(ctx, dev)
	// Unknown address: same answer, no mail.
	if err := e.svc.RequestReset(ctx, acme, "nobody@example.com", "c"); err != nil {
		t.Fatal(err)
	}
	if len(e.mails("nobody@example.com")) != 0 {
		t.Fatal("mail to an unknown address")
	}
	if err := e.svc.RequestReset(ctx, acme, "ada@example.com", "c"); err != nil {
		t.Fatal(err)
	}
	tok := e.token("ada@example.com", "Reset")
	if _, err := e.svc.ResetPassword(ctx, acme, tok, "short", "c"); err == nil {
		t.Fatal("short password accepted")
	}
	dev, err := e.svc.ResetPassword(ctx, acme, tok, "a brand new password", "c")
	if err != nil || !dev.EmailVerified {
		t.Fatalf("reset: %+v %v", dev, err)
	}
	if _, err := e.svc.ResetPassword(ctx, acme, tok, "yet another password", "c"); err == nil {
		t.Fatal("reset token used twice")
	}
	if _, err := e.svc.LookupSession(ctx, acme.ID, s.ID); err == nil {
		t.Fatal("session survived a password reset")
	}
	if _, err := e.svc.Login(ctx, acme, "ada@example.com", "a brand new password", "c"); err != nil {
		t.Fatal(err)
	}
}

func TestOIDCLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	acme := e.tenant("acme", settings.SignupOpen, "example.com")
	idp := "https://idp.example.com"

	// An attacker registers the victim's address without proving it.
	if err := e.svc.Signup(ctx, acme, developers.SignupInput{Email: "victim@example.com", Password: pw, Name: "Mallory"}, "c"); err != nil {
		t.Fatal(err)
	}
	attacker, _ := e.svc.Login(ctx, acme, "victim@example.com", pw, "c")
	as, _ := e.svc.StartSession(ctx, attacker)

	// An unverified address from the IdP is refused.
	var de *fault.DeniedError
	if _, err := e.svc.OIDCLogin(ctx, acme, developers.Identity{Issuer: idp, Subject: "1", Email: "victim@example.com"}); !errors.As(err, &de) {
		t.Fatalf("unverified idp email: %v", err)
	}
	// The victim signs in through the IdP: the account is theirs, the
	// attacker's password and session are gone.
	dev, err := e.svc.OIDCLogin(ctx, acme, developers.Identity{Issuer: idp, Subject: "1", Email: "victim@example.com", EmailVerified: true, Name: "Victim"})
	if err != nil || dev.ID != attacker.ID || !dev.EmailVerified || dev.HasPassword {
		t.Fatalf("claim: %+v %v", dev, err)
	}
	if _, err := e.svc.LookupSession(ctx, acme.ID, as.ID); err == nil {
		t.Fatal("the attacker's session survived")
	}
	if _, err := e.svc.Login(ctx, acme, "victim@example.com", pw, "c"); err == nil {
		t.Fatal("the attacker's password still works")
	}
	// The identity signs in again; a new identity creates a developer.
	again, err := e.svc.OIDCLogin(ctx, acme, developers.Identity{Issuer: idp, Subject: "1", Email: "changed@example.com", EmailVerified: true})
	if err != nil || again.ID != dev.ID {
		t.Fatalf("known identity: %+v %v", again, err)
	}
	fresh, err := e.svc.OIDCLogin(ctx, acme, developers.Identity{Issuer: idp, Subject: "2", Email: "new@example.com", EmailVerified: true, Name: "New"})
	if err != nil || fresh.ID == dev.ID || !fresh.EmailVerified || fresh.Status != developers.StatusActive {
		t.Fatalf("new identity: %+v %v", fresh, err)
	}
	if _, err := e.svc.OIDCLogin(ctx, acme, developers.Identity{Issuer: idp, Subject: "3", Email: "x@other.org", EmailVerified: true}); !errors.As(err, &de) {
		t.Fatalf("outside allowed domains: %v", err)
	}
}

func TestSubscriptionsAndKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	acme := e.tenant("acme", settings.SignupOpen)
	who := audit.Actor{TenantID: acme.ID, Name: "test"}
	cat := e.svc.Catalog
	up, err := cat.CreateUpstream(ctx, who, catalog.UpstreamInput{Name: "b", Algorithm: "round_robin",
		Targets: []catalog.Target{{URL: "http://127.0.0.1:9"}}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := cat.CreateAPI(ctx, who, catalog.APIInput{Name: "A", Slug: "a", BasePath: "/a", UpstreamID: up.ID, Published: true})
	if err != nil {
		t.Fatal(err)
	}
	free, _ := cat.CreatePlan(ctx, who, catalog.PlanInput{Name: "Free", Public: true, APIIDs: []string{api.ID}})
	private, _ := cat.CreatePlan(ctx, who, catalog.PlanInput{Name: "Private", APIIDs: []string{api.ID}})
	priced, _ := cat.CreatePlan(ctx, who, catalog.PlanInput{Name: "Pro", Public: true, Price: &catalog.Price{AmountCents: 900, Currency: "usd"}})

	if err := e.svc.Signup(ctx, acme, developers.SignupInput{Email: "ada@example.com", Password: pw, Name: "Ada"}, "c"); err != nil {
		t.Fatal(err)
	}
	dev, _ := e.svc.Verify(ctx, acme, e.token("ada@example.com", "Confirm"), "c")
	app, err := cat.CreateApp(ctx, dev.Actor(), dev.ConsumerID, catalog.AppInput{Name: "App"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Subscribe(ctx, dev, app.ID, private.ID); err == nil {
		t.Fatal("subscribed to a private plan")
	}
	sub, err := e.svc.Subscribe(ctx, dev, app.ID, free.ID)
	if err != nil || sub.Subscription.Status != catalog.SubActive || sub.Key == nil || !strings.HasPrefix(sub.Secret, "tg_") {
		t.Fatalf("free subscription: %+v %v", sub, err)
	}
	if _, err := e.svc.Subscribe(ctx, dev, app.ID, free.ID); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("second live subscription: %v", err)
	}
	paid, err := e.svc.Subscribe(ctx, dev, app.ID, priced.ID)
	if err != nil || paid.Subscription.Status != catalog.SubPaymentRequired || paid.Key != nil {
		t.Fatalf("priced subscription: %+v %v", paid, err)
	}
	if _, _, err := cat.CreateSubscriptionKey(ctx, dev.Actor(), dev.ConsumerID, paid.Subscription.ID); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("key of an unpaid subscription: %v", err)
	}

	// Rotation: the old key works until the overlap ends; both share the subscription.
	rot, err := cat.RotateKey(ctx, dev.Actor(), dev.ConsumerID, sub.Key.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(rot.PreviousExpiresAt); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("previous key expires in %v", d)
	}
	var rec struct {
		Status, Sub string
		Exp         int64
	}
	if err := e.db.QueryRow(ctx, `SELECT record->>'status', record->>'subscription_id', (record->>'expires_at')::bigint
		FROM key_outbox WHERE record->>'id' = $1 ORDER BY id DESC LIMIT 1`, sub.Key.ID).Scan(&rec.Status, &rec.Sub, &rec.Exp); err != nil {
		t.Fatal(err)
	}
	if rec.Status != "active" || rec.Sub != sub.Subscription.ID || rec.Exp != rot.PreviousExpiresAt.Unix() {
		t.Fatalf("rotated key record: %+v", rec)
	}
	if _, err := cat.RotateKey(ctx, dev.Actor(), dev.ConsumerID, sub.Key.ID, 31*24*time.Hour); err == nil {
		t.Fatal("overlap over 30 days accepted")
	}
	// Rotation with no overlap revokes at once.
	rot2, err := cat.RotateKey(ctx, dev.Actor(), dev.ConsumerID, rot.Key.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := cat.GetConsumerKey(ctx, acme.ID, dev.ConsumerID, rot.Key.ID)
	if old.Status != "revoked" {
		t.Fatalf("0-overlap rotation left the key %s", old.Status)
	}
	// At most MaxKeysPerSubscription working keys.
	for range catalog.MaxKeysPerSubscription - 2 {
		if _, _, err := cat.CreateSubscriptionKey(ctx, dev.Actor(), dev.ConsumerID, sub.Subscription.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := cat.CreateSubscriptionKey(ctx, dev.Actor(), dev.ConsumerID, sub.Subscription.ID); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("key over the limit: %v", err)
	}
	// Another developer of the tenant sees none of it.
	if err := e.svc.Signup(ctx, acme, developers.SignupInput{Email: "eve@example.com", Password: pw, Name: "Eve"}, "c"); err != nil {
		t.Fatal(err)
	}
	eve, _ := e.svc.Verify(ctx, acme, e.token("eve@example.com", "Confirm"), "c")
	if _, err := cat.GetApp(ctx, acme.ID, eve.ConsumerID, app.ID); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("eve reads ada's app: %v", err)
	}
	if _, err := cat.RotateKey(ctx, eve.Actor(), eve.ConsumerID, rot2.Key.ID, 0); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("eve rotates ada's key: %v", err)
	}
	if _, err := e.svc.Subscribe(ctx, eve, app.ID, free.ID); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("eve subscribes ada's app: %v", err)
	}
	// Canceling: every key's record says canceled (403 at the proxy).
	if _, err := cat.SetSubscriptionStatus(ctx, dev.Actor(), dev.ConsumerID, sub.Subscription.ID, catalog.SubCanceled); err != nil {
		t.Fatal(err)
	}
	if err := e.db.QueryRow(ctx, `SELECT record->>'status' FROM key_outbox WHERE record->>'id' = $1 ORDER BY id DESC LIMIT 1`,
		rot2.Key.ID).Scan(&rec.Status); err != nil || rec.Status != "canceled" {
		t.Fatalf("canceled key record: %q %v", rec.Status, err)
	}
	if _, _, err := cat.CreateSubscriptionKey(ctx, dev.Actor(), dev.ConsumerID, sub.Subscription.ID); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("key of a canceled subscription: %v", err)
	}
	// A new subscription to the same plan is allowed after a cancel.
	if _, err := e.svc.Subscribe(ctx, dev, app.ID, free.ID); err != nil {
		t.Fatalf("resubscribe: %v", err)
	}
}

func pageAll() store.Page { return store.Page{Limit: 200} }
