package developers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
)

// Identity is what the tenant's developer IdP vouches for after a verified
// sign-in (ID token checked by services/sso).
type Identity struct {
	Issuer        string
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
}

// OIDCLogin signs a developer in with the tenant's IdP:
//   - an identity seen before signs its developer in;
//   - else an address the IdP verified links to the developer with that
//     address (an unverified account of that address loses its password and
//     sessions first: whoever registered it without proving the address
//     does not keep access, the pre-account takeover);
//   - else a new developer is made, under the portal's signup rules (mode,
//     allowed domains; invite-only needs an open invitation of the address).
func (s *Service) OIDCLogin(ctx context.Context, t tenancy.Tenant, id Identity) (Developer, error) {
	p, err := s.portal(ctx, t.ID)
	if err != nil {
		return Developer{}, err
	}
	if id.Issuer == "" || id.Subject == "" {
		return Developer{}, errors.New("oidc login: identity without issuer or subject")
	}
	email := strings.ToLower(strings.TrimSpace(id.Email))
	var dev Developer
	created := false
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		d, err := scanDev(tx.QueryRow(ctx, `SELECT `+prefixed("d")+` FROM developer_identities i
			JOIN developers d ON d.id = i.developer_id
			WHERE i.tenant_id = $1 AND i.issuer = $2 AND i.subject = $3`, t.ID, id.Issuer, id.Subject))
		if err == nil {
			dev = d
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("find identity: %w", err)
		}
		if email == "" || !id.EmailVerified {
			return fault.Denied("email-unverified", "your identity provider did not confirm an email address")
		}
		d, err = scanDev(tx.QueryRow(ctx, `SELECT `+devCols+` FROM developers WHERE tenant_id = $1 AND lower(email) = $2
			FOR UPDATE`, t.ID, email))
		switch {
		case err == nil:
			if !d.EmailVerified {
				if _, err := tx.Exec(ctx, `UPDATE developers SET password_hash = NULL, email_verified_at = now(),
					updated_at = now() WHERE id = $1`, d.ID); err != nil {
					return fmt.Errorf("claim account: %w", err)
				}
				if _, err := tx.Exec(ctx, `DELETE FROM developer_sessions WHERE developer_id = $1`, d.ID); err != nil {
					return fmt.Errorf("end sessions: %w", err)
				}
				d.EmailVerified, d.HasPassword = true, false
			}
			dev = d
		case errors.Is(err, pgx.ErrNoRows):
			if !p.EmailAllowed(email) {
				return fault.Denied("email-domain", "sign-up is limited to addresses at %s", strings.Join(p.AllowedEmailDomains, ", "))
			}
			if p.Signup == settings.SignupInvite {
				var tag string
				if err := tx.QueryRow(ctx, `UPDATE developer_tokens SET used_at = now() WHERE digest = (
					SELECT digest FROM developer_tokens WHERE tenant_id = $1 AND kind = 'invite' AND lower(email) = $2
					AND used_at IS NULL AND expires_at > now() ORDER BY created_at LIMIT 1) RETURNING kind`,
					t.ID, email).Scan(&tag); err != nil {
					if errors.Is(err, pgx.ErrNoRows) {
						return fault.Denied("invite-required", "this portal is invitation-only and %s has no invitation", email)
					}
					return fmt.Errorf("use invitation: %w", err)
				}
			}
			status := StatusActive
			if p.Signup == settings.SignupApproval {
				status = StatusPending
			}
			name := strings.TrimSpace(id.Name)
			if name == "" {
				name = email
			}
			dev, err = s.createDeveloper(ctx, tx, t, email, name, nil, true, status)
			if err != nil {
				return err
			}
			created = true
		default:
			return fmt.Errorf("find developer: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO developer_identities (tenant_id, issuer, subject, developer_id)
			VALUES ($1, $2, $3, $4)`, t.ID, id.Issuer, id.Subject, dev.ID); err != nil {
			return fmt.Errorf("link identity: %w", err)
		}
		return audit.Record(ctx, tx, dev.Actor(), "developer.link_identity", "developer", dev.ID,
			map[string]any{"issuer": id.Issuer})
	})
	if err != nil {
		return Developer{}, fmt.Errorf("oidc login: %w", err)
	}
	if dev.Status == StatusRejected {
		return Developer{}, fault.Denied("developer-rejected", "this account was not approved by the API provider")
	}
	if created && dev.Status == StatusPending {
		s.send(ctx, t, p, dev.Email, mailPendingApproval, mailData{Name: dev.Name})
	}
	return dev, nil
}

// prefixed is devCols with every column qualified by alias.
func prefixed(alias string) string {
	return alias + `.id, ` + alias + `.tenant_id, ` + alias + `.consumer_id, ` + alias + `.email, ` + alias + `.name, ` +
		alias + `.status, ` + alias + `.email_verified_at IS NOT NULL, ` + alias + `.password_hash IS NOT NULL, ` +
		alias + `.created_at`
}
