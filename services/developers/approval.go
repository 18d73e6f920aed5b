package developers

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
)

// Decide approves (approve true) or rejects a pending developer and mails
// the outcome. A rejected developer's sessions end.
func (s *Service) Decide(ctx context.Context, who audit.Actor, t tenancy.Tenant, id string, approve bool) (Developer, error) {
	if !store.ValidID(id) {
		return Developer{}, fault.ErrNotFound
	}
	next := StatusRejected
	if approve {
		next = StatusActive
	}
	var dev Developer
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		cur, err := scanDev(tx.QueryRow(ctx, `SELECT `+devCols+` FROM developers WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
			who.TenantID, id))
		if err != nil {
			return notFound(err)
		}
		if cur.Status != StatusPending {
			return fault.Conflict("status", "only a pending developer can be approved or rejected; this one is %s", cur.Status)
		}
		dev, err = scanDev(tx.QueryRow(ctx, `UPDATE developers SET status = $3, updated_at = now()
			WHERE tenant_id = $1 AND id = $2 RETURNING `+devCols, who.TenantID, id, next))
		if err != nil {
			return fmt.Errorf("update developer: %w", err)
		}
		if !approve {
			if _, err := tx.Exec(ctx, `DELETE FROM developer_sessions WHERE developer_id = $1`, id); err != nil {
				return fmt.Errorf("end sessions: %w", err)
			}
		}
		return audit.Record(ctx, tx, who, "developer."+map[bool]string{true: "approve", false: "reject"}[approve],
			"developer", id, map[string]any{"email": dev.Email})
	})
	if err != nil {
		return Developer{}, fmt.Errorf("decide developer: %w", err)
	}
	if p, err := settings.GetPortal(ctx, s.DB, t.ID); err == nil {
		k := mailDeveloperRejected
		if approve {
			k = mailDeveloperApproved
		}
		s.send(ctx, t, p, dev.Email, k, mailData{Name: dev.Name})
	}
	return dev, nil
}

// DecideSubscription approves or rejects a pending subscription (through
// the catalog, which owns it) and mails the developer behind it, if any.
func (s *Service) DecideSubscription(ctx context.Context, who audit.Actor, t tenancy.Tenant, id string, approve bool) (catalog.Subscription, error) {
	var sub catalog.Subscription
	var err error
	if approve {
		sub, err = s.Catalog.ApproveSubscription(ctx, who, id)
	} else {
		sub, err = s.Catalog.SetSubscriptionStatus(ctx, who, "", id, catalog.SubRejected, catalog.SubPending)
	}
	if err != nil {
		return catalog.Subscription{}, err
	}
	var dev Developer
	dev, err = scanDev(s.DB.QueryRow(ctx, `SELECT `+devCols+` FROM developers WHERE tenant_id = $1 AND consumer_id = $2`,
		who.TenantID, sub.ConsumerID))
	if err != nil {
		// A consumer without a portal account gets no mail.
		return sub, nil
	}
	plan, perr := s.Catalog.GetPlan(ctx, who.TenantID, sub.PlanID)
	p, serr := settings.GetPortal(ctx, s.DB, t.ID)
	if perr == nil && serr == nil {
		k := mailSubscriptionRejected
		if approve {
			k = mailSubscriptionApproved
		}
		s.send(ctx, t, p, dev.Email, k, mailData{Name: dev.Name, Detail: plan.Name, Link: s.link(t, "/apps/"+sub.AppID)})
	}
	return sub, nil
}

// Subscribe puts one of the developer's apps on a public plan. The address
// must be verified (403 email-unverified) and the developer approved (403
// developer-pending).
func (s *Service) Subscribe(ctx context.Context, dev Developer, appID, planID string) (catalog.Subscribed, error) {
	if err := CanSubscribe(dev); err != nil {
		return catalog.Subscribed{}, err
	}
	return s.Catalog.Subscribe(ctx, dev.Actor(), dev.ConsumerID, catalog.SubscribeInput{AppID: appID, PlanID: planID})
}

// CanSubscribe tells whether the developer may subscribe and get keys.
func CanSubscribe(dev Developer) error {
	switch {
	case !dev.EmailVerified:
		return fault.Denied("email-unverified", "confirm your email address first: open the link we mailed you")
	case dev.Status == StatusPending:
		return fault.Denied("developer-pending", "your account waits for the API provider's approval")
	case dev.Status != StatusActive:
		return fault.Denied("developer-rejected", "this account was not approved by the API provider")
	}
	return nil
}
