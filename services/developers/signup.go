package developers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
)

// SignupInput is what a developer fills in to sign up. Invite is the token
// of an invitation link (required when the portal is invite-only).
type SignupInput struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	Invite   string `json:"invite,omitempty"`
}

// Signup creates a developer account (and its consumer) and mails a
// verification link. It answers the same whether or not the address has an
// account: a known address gets a mail saying so instead. client is the
// caller's address, for throttling. Field errors name email, password, name
// and invite.
func (s *Service) Signup(ctx context.Context, t tenancy.Tenant, in SignupInput, client string) error {
	p, err := s.portal(ctx, t.ID)
	if err != nil {
		return err
	}
	v := &fault.ValidationError{}
	email := normalizeEmail(v, "email", in.Email)
	name := strings.TrimSpace(in.Name)
	checkName(v, "name", name)
	checkPassword(v, "password", in.Password)
	if email != "" && len(v.Errors) == 0 && !p.EmailAllowed(email) {
		v.Add("email", "sign-up is limited to addresses at %s", strings.Join(p.AllowedEmailDomains, ", "))
	}
	if err := v.Err(); err != nil {
		return err
	}
	if err := s.hit(ctx, "dev-signup:client:"+client, RuleSignupClient,
		"dev-signup:account:"+t.ID+":"+email, RuleSignupAccount); err != nil {
		return err
	}
	hash, err := accounts.HashPassword(in.Password)
	if err != nil {
		return fmt.Errorf("signup: %w", err)
	}
	var dev Developer
	var verifyTok string
	exists := false
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		// The invitation is checked before the address, so that the answer
		// of an invite-only portal never tells whether an address has an
		// account.
		verified := false
		if p.Signup == settings.SignupInvite || in.Invite != "" {
			inv, err := useToken(ctx, tx, t.ID, "invite", in.Invite)
			if err != nil || inv.Email != email {
				return fault.Denied("invite-required",
					"sign-up needs an invitation for this address: use the link in your invitation mail")
			}
			// The invitation link proves the address.
			verified = true
		}
		var known bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM developers WHERE tenant_id = $1 AND lower(email) = $2)`,
			t.ID, email).Scan(&known); err != nil {
			return fmt.Errorf("check email: %w", err)
		}
		if known {
			exists = true
			return nil
		}
		status := StatusActive
		if p.Signup == settings.SignupApproval {
			status = StatusPending
		}
		dev, err = s.createDeveloper(ctx, tx, t, email, name, &hash, verified, status)
		if err != nil {
			return err
		}
		if !verified {
			verifyTok, err = newToken(ctx, tx, t.ID, "verify", dev.ID, email, VerifyTTL)
			return err
		}
		return nil
	})
	if errors.Is(err, errEmailTaken) {
		exists, err = true, nil
	}
	if err != nil {
		return fmt.Errorf("signup: %w", err)
	}
	switch {
	case exists:
		s.send(ctx, t, p, email, mailAccountExists, mailData{})
	case verifyTok != "":
		s.send(ctx, t, p, email, mailVerify, mailData{Name: dev.Name, Link: s.link(t, "/verify?token="+verifyTok)})
	}
	if dev.Status == StatusPending {
		s.send(ctx, t, p, email, mailPendingApproval, mailData{Name: dev.Name})
	}
	return nil
}

var errEmailTaken = errors.New("email taken")

// createDeveloper inserts a consumer and its developer account in tx.
func (s *Service) createDeveloper(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, email, name string, hash *string,
	verified bool, status string) (Developer, error) {
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM developers WHERE tenant_id = $1`, t.ID).Scan(&n); err != nil {
		return Developer{}, fmt.Errorf("count developers: %w", err)
	}
	if n >= MaxDevelopersPerTenant {
		return Developer{}, fault.Conflict("", "this portal has reached its limit of %d developers", MaxDevelopersPerTenant)
	}
	who := audit.Actor{TenantID: t.ID, Name: "developer-signup"}
	c, err := s.Catalog.CreateConsumerTx(ctx, tx, who, catalog.ConsumerInput{Name: name, Email: email})
	if err != nil {
		return Developer{}, err
	}
	dev, err := scanDev(tx.QueryRow(ctx, `INSERT INTO developers (tenant_id, consumer_id, email, name, password_hash,
		email_verified_at, status) VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END, $7) RETURNING `+devCols,
		t.ID, c.ID, email, name, hash, verified, status))
	if c, ok := store.UniqueViolation(err); ok && c == "developers_email_key" {
		return Developer{}, errEmailTaken
	}
	if err != nil {
		return Developer{}, fmt.Errorf("insert developer: %w", err)
	}
	if err := audit.Record(ctx, tx, audit.Actor{TenantID: t.ID, Name: "developer:" + dev.ID}, "developer.signup",
		"developer", dev.ID, map[string]any{"email": email, "status": status, "consumer_id": c.ID}); err != nil {
		return Developer{}, err
	}
	return dev, nil
}

// Verify consumes a verification link's token and marks the address verified.
func (s *Service) Verify(ctx context.Context, t tenancy.Tenant, tok, client string) (Developer, error) {
	if _, err := s.portal(ctx, t.ID); err != nil {
		return Developer{}, err
	}
	if err := s.hit(ctx, "dev-verify:client:"+client, RuleVerifyClient); err != nil {
		return Developer{}, err
	}
	var dev Developer
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		r, err := useToken(ctx, tx, t.ID, "verify", tok)
		if err != nil {
			return err
		}
		if r.DeveloperID == nil {
			return fault.Invalid("token", "the link is invalid, already used or expired; ask for a new one")
		}
		dev, err = scanDev(tx.QueryRow(ctx, `UPDATE developers SET email_verified_at = coalesce(email_verified_at, now()),
			updated_at = now() WHERE tenant_id = $1 AND id = $2 AND lower(email) = lower($3) RETURNING `+devCols,
			t.ID, *r.DeveloperID, r.Email))
		if err != nil {
			return notFound(err)
		}
		return audit.Record(ctx, tx, dev.Actor(), "developer.verify", "developer", dev.ID, nil)
	})
	if err != nil {
		return Developer{}, fmt.Errorf("verify: %w", err)
	}
	return dev, nil
}

// ResendVerification mails a fresh verification link to a signed-in,
// unverified developer.
func (s *Service) ResendVerification(ctx context.Context, t tenancy.Tenant, dev Developer, client string) error {
	if dev.EmailVerified {
		return nil
	}
	p, err := s.portal(ctx, t.ID)
	if err != nil {
		return err
	}
	if err := s.hit(ctx, "dev-signup:account:"+t.ID+":"+dev.Email, RuleSignupAccount,
		"dev-signup:client:"+client, RuleSignupClient); err != nil {
		return err
	}
	var tok string
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		tok, err = newToken(ctx, tx, t.ID, "verify", dev.ID, dev.Email, VerifyTTL)
		return err
	})
	if err != nil {
		return fmt.Errorf("resend verification: %w", err)
	}
	s.send(ctx, t, p, dev.Email, mailVerify, mailData{Name: dev.Name, Link: s.link(t, "/verify?token="+tok)})
	return nil
}

// Invite mails an invitation to sign up to an address (the way in when
// signup is invite-only; it also skips verification). Field name: email.
func (s *Service) Invite(ctx context.Context, who audit.Actor, t tenancy.Tenant, email string) error {
	p, err := settings.GetPortal(ctx, s.DB, t.ID)
	if err != nil {
		return err
	}
	v := &fault.ValidationError{}
	email = normalizeEmail(v, "email", email)
	if err := v.Err(); err != nil {
		return err
	}
	var tok string
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM developer_tokens WHERE tenant_id = $1 AND kind = 'invite'
			AND used_at IS NULL AND expires_at > now()`, t.ID).Scan(&n); err != nil {
			return fmt.Errorf("count invitations: %w", err)
		}
		if n >= 10_000 {
			return fault.Conflict("", "too many open invitations; let some expire first")
		}
		tok, err = newToken(ctx, tx, t.ID, "invite", "", email, InviteTTL)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, who, "developer.invite", "developer_invite", email, map[string]any{"email": email})
	})
	if err != nil {
		return fmt.Errorf("invite developer: %w", err)
	}
	s.send(ctx, t, p, email, mailInvite, mailData{Link: s.link(t, "/signup?invite="+tok+"&email="+queryEscape(email))})
	return nil
}
