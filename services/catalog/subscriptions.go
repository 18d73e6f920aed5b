package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/token"
)

// Subscription states. A subscription's keys work while it is active (and
// while a past-due one is in its grace period); every other state refuses
// them on every worker.
const (
	// SubPending waits for the tenant's approval.
	SubPending = "pending"
	// SubActive works.
	SubActive = "active"
	// SubPaymentRequired waits for the developer to pay (priced plans).
	SubPaymentRequired = "payment_required"
	// SubPastDue has a failed payment; keys work until the grace period ends.
	SubPastDue = "past_due"
	// SubSuspended is stopped by the tenant or for non-payment.
	SubSuspended = "suspended"
	// SubCanceled has ended.
	SubCanceled = "canceled"
	// SubRejected was refused by the tenant.
	SubRejected = "rejected"
)

// Limits of the developer portal's objects: the defaults of the operator's
// limits subscriptions_per_app and keys_per_subscription (services/limits).
const (
	MaxSubscriptionsPerApp = limits.DefaultSubscriptionsPerApp
	MaxKeysPerSubscription = limits.DefaultKeysPerSubscription
	// MaxRotationOverlap is the longest a rotated key may keep working.
	MaxRotationOverlap = 30 * 24 * time.Hour
)

// Subscription puts an app on a plan.
type Subscription struct {
	ID         string     `json:"id"`
	AppID      string     `json:"app_id"`
	ConsumerID string     `json:"consumer_id"`
	PlanID     string     `json:"plan_id"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	DecidedAt  *time.Time `json:"decided_at"`
}

// Live reports whether the subscription is neither canceled nor rejected.
func (s Subscription) Live() bool { return s.Status != SubCanceled && s.Status != SubRejected }

const subCols = `id, app_id, consumer_id, plan_id, status, created_at, updated_at, decided_at`

func scanSub(row pgx.Row) (Subscription, error) {
	var s Subscription
	err := row.Scan(&s.ID, &s.AppID, &s.ConsumerID, &s.PlanID, &s.Status, &s.CreatedAt, &s.UpdatedAt, &s.DecidedAt)
	return s, err
}

func getSub(ctx context.Context, q querier, tenantID, consumerID, id, lock string) (Subscription, error) {
	if !store.ValidID(id) || (consumerID != "" && !store.ValidID(consumerID)) {
		return Subscription{}, fault.ErrNotFound
	}
	cond, args := consumerCond(consumerID, 3)
	s, err := scanSub(q.QueryRow(ctx, `SELECT `+subCols+` FROM subscriptions WHERE tenant_id = $1 AND id = $2`+cond+` `+lock,
		append([]any{tenantID, id}, args...)...))
	return s, notFound(err)
}

// GetSubscription returns one subscription of the tenant; when consumerID
// is not "" only one of that consumer's.
func (s *Service) GetSubscription(ctx context.Context, tenantID, consumerID, id string) (Subscription, error) {
	sub, err := getSub(ctx, s.DB, tenantID, consumerID, id, "")
	if err != nil {
		return Subscription{}, fmt.Errorf("get subscription: %w", err)
	}
	return sub, nil
}

// SubscriptionFilter narrows ListSubscriptions; empty fields match all.
type SubscriptionFilter struct {
	ConsumerID string
	AppID      string
	Status     string
}

// ListSubscriptions returns one page of the tenant's subscriptions.
func (s *Service) ListSubscriptions(ctx context.Context, tenantID string, f SubscriptionFilter, page store.Page) ([]Subscription, string, error) {
	q := `SELECT ` + subCols + ` FROM subscriptions WHERE tenant_id = $1`
	args := []any{tenantID}
	for _, c := range []struct{ col, val string }{{"consumer_id", f.ConsumerID}, {"app_id", f.AppID}} {
		if c.val == "" {
			continue
		}
		if !store.ValidID(c.val) {
			return []Subscription{}, "", nil
		}
		args = append(args, c.val)
		q += fmt.Sprintf(" AND %s = $%d", c.col, len(args))
	}
	if f.Status != "" {
		args = append(args, f.Status)
		q += fmt.Sprintf(" AND status = $%d", len(args))
	}
	list, next, err := listQuery(ctx, s.DB, page, q+` %s`, args, scanSub,
		func(s Subscription) (time.Time, string) { return s.CreatedAt, s.ID })
	if err != nil {
		return nil, "", fmt.Errorf("list subscriptions: %w", err)
	}
	return list, next, nil
}

// SubscribeInput is a request to put an app on a plan.
type SubscribeInput struct {
	AppID  string `json:"app_id"`
	PlanID string `json:"plan_id"`
	// AllowPrivate lets the tenant itself subscribe to a plan that is not
	// public; developers never set it.
	AllowPrivate bool `json:"-"`
}

// Subscribed is the outcome of Subscribe: the subscription and, when it is
// active at once, its first key (shown once).
type Subscribed struct {
	Subscription Subscription
	Key          *Key
	Secret       string
}

// Subscribe puts the consumer's app on a plan. A free plan is active at
// once with a first key; a plan that requires approval waits for the
// tenant (pending); a priced plan waits for payment (payment_required).
func (s *Service) Subscribe(ctx context.Context, who audit.Actor, consumerID string, in SubscribeInput) (Subscribed, error) {
	var out Subscribed
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		lim, err := s.beginLimits(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		c, err := getConsumer(ctx, tx, who.TenantID, consumerID, "FOR SHARE")
		if err != nil {
			return err
		}
		if c.Status == ConsumerSuspended {
			return fault.Denied("consumer-suspended", "your access has been suspended by the API provider")
		}
		v := &fault.ValidationError{}
		app, err := getApp(ctx, tx, who.TenantID, consumerID, in.AppID, "FOR UPDATE")
		if errors.Is(err, fault.ErrNotFound) {
			return err
		} else if err != nil {
			return err
		}
		plan, err := getPlan(ctx, tx, who.TenantID, in.PlanID, false)
		if errors.Is(err, fault.ErrNotFound) || (err == nil && !plan.Public && !in.AllowPrivate) {
			v.Add("plan_id", "no such plan")
			return v
		} else if err != nil {
			return err
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE tenant_id = $1 AND app_id = $2
			AND status NOT IN ('canceled', 'rejected')`, who.TenantID, app.ID).Scan(&n); err != nil {
			return fmt.Errorf("count subscriptions: %w", err)
		}
		if err := lim.Check(limits.SubscriptionsPerApp, n+1, "plan_id"); err != nil {
			return err
		}
		if plan.Price != nil && plan.Price.PerRequest() != nil {
			// Metered usage is reported per Stripe customer, which is the
			// app's: two metered subscriptions of one app would each bill
			// the other's requests.
			var metered bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subscriptions s JOIN plans p ON p.id = s.plan_id
				WHERE s.tenant_id = $1 AND s.app_id = $2 AND s.status NOT IN ('canceled', 'rejected')
				AND p.per_request_decimal > 0)`, who.TenantID, app.ID).Scan(&metered); err != nil {
				return fmt.Errorf("check metered subscriptions: %w", err)
			}
			if metered {
				return fault.Conflict("plan_id", "this app already has a plan priced per request; use another app for this one")
			}
		}
		status := SubActive
		switch {
		case plan.ApprovalRequired:
			status = SubPending
		case plan.Priced():
			status = SubPaymentRequired
		}
		sub, err := scanSub(tx.QueryRow(ctx, `INSERT INTO subscriptions (tenant_id, app_id, consumer_id, plan_id, status)
			VALUES ($1, $2, $3, $4, $5) RETURNING `+subCols, who.TenantID, app.ID, consumerID, plan.ID, status))
		if c, ok := store.UniqueViolation(err); ok && c == "subscriptions_live_key" {
			return fault.Conflict("plan_id", "this app is already subscribed to this plan")
		} else if err != nil {
			return fmt.Errorf("insert subscription: %w", err)
		}
		out.Subscription = sub
		if err := audit.Record(ctx, tx, who, "subscription.create", "subscription", sub.ID, map[string]any{
			"app_id": app.ID, "plan_id": plan.ID, "status": status}); err != nil {
			return err
		}
		if status == SubActive {
			k, secret, err := s.issueSubscriptionKey(ctx, tx, who, lim, sub)
			if err != nil {
				return err
			}
			out.Key, out.Secret = &k, secret
		}
		return nil
	})
	if err != nil {
		return Subscribed{}, fmt.Errorf("subscribe: %w", err)
	}
	return out, nil
}

// issueSubscriptionKey creates a key of an active subscription in tx, which
// holds the tenant's limits lock (lim, from beginLimits).
func (s *Service) issueSubscriptionKey(ctx context.Context, tx pgx.Tx, who audit.Actor, lim limits.Limits, sub Subscription) (Key, string, error) {
	var n int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM keys WHERE tenant_id = $1 AND subscription_id = $2
		AND status = 'active' AND (expires_at IS NULL OR expires_at > now())`, who.TenantID, sub.ID).Scan(&n); err != nil {
		return Key{}, "", fmt.Errorf("count keys: %w", err)
	}
	if err := lim.Check(limits.KeysPerSubscription, n+1, ""); err != nil {
		return Key{}, "", err
	}
	if err := checkAdd(ctx, tx, lim, who.TenantID, limits.Keys, 1, ""); err != nil {
		return Key{}, "", err
	}
	secret, err := token.New(KeyKind)
	if err != nil {
		return Key{}, "", fmt.Errorf("new key: %w", err)
	}
	k, err := scanKeyRow(tx.QueryRow(ctx, `INSERT INTO keys (tenant_id, consumer_id, plan_id, digest, prefix,
		subscription_id, app_id) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+keyCols,
		who.TenantID, sub.ConsumerID, sub.PlanID, proxycfg.Digest(s.Secret, secret), token.Prefix(secret), sub.ID, sub.AppID))
	if err != nil {
		return Key{}, "", fmt.Errorf("insert key: %w", err)
	}
	if err := audit.Record(ctx, tx, who, "key.create", "key", k.ID, map[string]any{
		"consumer_id": k.ConsumerID, "plan_id": k.PlanID, "subscription_id": sub.ID, "prefix": k.Prefix}); err != nil {
		return Key{}, "", err
	}
	if err := s.enqueueKey(ctx, tx, k); err != nil {
		return Key{}, "", err
	}
	return k.Key, secret, nil
}

// CreateSubscriptionKey issues another key of the consumer's subscription.
// It is a conflict unless the subscription is active.
func (s *Service) CreateSubscriptionKey(ctx context.Context, who audit.Actor, consumerID, subID string) (Key, string, error) {
	var k Key
	var secret string
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		lim, err := s.beginLimits(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		sub, err := getSub(ctx, tx, who.TenantID, consumerID, subID, "FOR UPDATE")
		if err != nil {
			return err
		}
		if err := s.checkConsumerActive(ctx, tx, who.TenantID, sub.ConsumerID); err != nil {
			return err
		}
		if sub.Status != SubActive {
			return fault.Conflict("", "the subscription is %s; keys can only be issued while it is active", sub.Status)
		}
		k, secret, err = s.issueSubscriptionKey(ctx, tx, who, lim, sub)
		return err
	})
	if err != nil {
		return Key{}, "", fmt.Errorf("create subscription key: %w", err)
	}
	return k, secret, nil
}

func (s *Service) checkConsumerActive(ctx context.Context, tx pgx.Tx, tenantID, consumerID string) error {
	c, err := getConsumer(ctx, tx, tenantID, consumerID, "FOR SHARE")
	if err != nil {
		return err
	}
	if c.Status == ConsumerSuspended {
		return fault.Denied("consumer-suspended", "your access has been suspended by the API provider")
	}
	return nil
}

// ListSubscriptionKeys returns the keys of one of the consumer's
// subscriptions (at most MaxKeysPerSubscription working ones, plus the
// revoked and expired history, newest first, bounded).
func (s *Service) ListSubscriptionKeys(ctx context.Context, tenantID, consumerID, subID string) ([]Key, error) {
	if _, err := getSub(ctx, s.DB, tenantID, consumerID, subID, ""); err != nil {
		return nil, fmt.Errorf("list subscription keys: %w", err)
	}
	rows, err := s.DB.Query(ctx, `SELECT `+keyCols+` FROM keys WHERE tenant_id = $1 AND subscription_id = $2
		ORDER BY created_at DESC, id LIMIT 100`, tenantID, subID)
	if err != nil {
		return nil, fmt.Errorf("list subscription keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Key, error) { return scanKey(r) })
	if err != nil {
		return nil, fmt.Errorf("list subscription keys: %w", err)
	}
	return keys, nil
}

// GetConsumerKey returns one key of the consumer.
func (s *Service) GetConsumerKey(ctx context.Context, tenantID, consumerID, id string) (Key, error) {
	if !store.ValidID(id) || !store.ValidID(consumerID) {
		return Key{}, fmt.Errorf("get key: %w", fault.ErrNotFound)
	}
	k, err := scanKey(s.DB.QueryRow(ctx, `SELECT `+keyCols+` FROM keys WHERE tenant_id = $1 AND id = $2 AND consumer_id = $3`,
		tenantID, id, consumerID))
	if err != nil {
		return Key{}, fmt.Errorf("get key: %w", notFound(err))
	}
	return k, nil
}

// Rotated is the outcome of RotateKey.
type Rotated struct {
	Key    Key
	Secret string
	// PreviousExpiresAt is when the old key stops working.
	PreviousExpiresAt time.Time
}

// RotateKey issues a new key in place of one of the consumer's keys of a
// subscription and lets the old one work for overlap more (0 to
// MaxRotationOverlap; 0 ends it at once). Both keys count against the same
// subscription, so a rotation never gives more quota.
func (s *Service) RotateKey(ctx context.Context, who audit.Actor, consumerID, id string, overlap time.Duration) (Rotated, error) {
	if overlap < 0 || overlap > MaxRotationOverlap {
		return Rotated{}, fault.Invalid("grace_seconds", "must be between 0 and %d (30 days)", int(MaxRotationOverlap/time.Second))
	}
	var out Rotated
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		if !store.ValidID(id) || !store.ValidID(consumerID) {
			return fault.ErrNotFound
		}
		lim, err := s.beginLimits(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		old, err := scanKeyRow(tx.QueryRow(ctx, `SELECT `+keyCols+` FROM keys WHERE tenant_id = $1 AND id = $2
			AND consumer_id = $3 FOR UPDATE`, who.TenantID, id, consumerID))
		if err != nil {
			return notFound(err)
		}
		now := time.Now()
		if !old.Usable(now) {
			return fault.Conflict("", "the key is revoked or expired; only a working key can be rotated")
		}
		if old.SubscriptionID == nil {
			return fault.Conflict("", "only keys of a subscription can be rotated here")
		}
		sub, err := getSub(ctx, tx, who.TenantID, consumerID, *old.SubscriptionID, "FOR UPDATE")
		if err != nil {
			return err
		}
		if err := s.checkConsumerActive(ctx, tx, who.TenantID, consumerID); err != nil {
			return err
		}
		if sub.Status != SubActive && sub.Status != SubPastDue {
			return fault.Conflict("", "the subscription is %s; keys can only be rotated while it is active", sub.Status)
		}
		// The old key expires at the end of the overlap; the count of working
		// keys in issueSubscriptionKey includes it until then, which bounds
		// rotations too.
		expires := now.Add(overlap).Truncate(time.Second)
		if overlap == 0 {
			if err := s.revoke(ctx, tx, who, old); err != nil {
				return err
			}
		}
		nk, secret, err := s.issueSubscriptionKey(ctx, tx, who, lim, sub)
		if err != nil {
			return err
		}
		if overlap > 0 {
			if err := tx.QueryRow(ctx, `UPDATE keys SET expires_at = $3, replaced_by = $4 WHERE tenant_id = $1 AND id = $2
				RETURNING expires_at, replaced_by`, who.TenantID, old.ID, expires, nk.ID).Scan(&old.ExpiresAt, &old.ReplacedBy); err != nil {
				return fmt.Errorf("expire rotated key: %w", err)
			}
			if err := s.enqueueKey(ctx, tx, old); err != nil {
				return err
			}
		} else if _, err := tx.Exec(ctx, `UPDATE keys SET replaced_by = $3 WHERE tenant_id = $1 AND id = $2`,
			who.TenantID, old.ID, nk.ID); err != nil {
			return fmt.Errorf("link rotated key: %w", err)
		}
		if err := audit.Record(ctx, tx, who, "key.rotate", "key", old.ID, map[string]any{
			"new_key_id": nk.ID, "overlap_seconds": int(overlap / time.Second), "expires_at": expires}); err != nil {
			return err
		}
		out = Rotated{Key: nk, Secret: secret, PreviousExpiresAt: expires}
		return nil
	})
	if err != nil {
		return Rotated{}, fmt.Errorf("rotate key: %w", err)
	}
	return out, nil
}

// RevokeConsumerKey revokes one of the consumer's keys at once.
func (s *Service) RevokeConsumerKey(ctx context.Context, who audit.Actor, consumerID, id string) error {
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		if !store.ValidID(id) || !store.ValidID(consumerID) {
			return fault.ErrNotFound
		}
		k, err := scanKeyRow(tx.QueryRow(ctx, `SELECT `+keyCols+` FROM keys WHERE tenant_id = $1 AND id = $2
			AND consumer_id = $3 FOR UPDATE`, who.TenantID, id, consumerID))
		if err != nil {
			return notFound(err)
		}
		if k.Status == proxycfg.KeyRevoked {
			return nil
		}
		return s.revoke(ctx, tx, who, k)
	})
	if err != nil {
		return fmt.Errorf("revoke key: %w", err)
	}
	return nil
}

// SetSubscriptionStatus moves a subscription to status and re-queues its
// keys' records, so every worker enforces the new state. from, when not
// empty, lists the states it may move from (anything else is a conflict).
// It is how the tenant approves, rejects and suspends, the developer
// cancels, and billing follows Stripe.
func (s *Service) SetSubscriptionStatus(ctx context.Context, who audit.Actor, consumerID, id, status string, from ...string) (Subscription, error) {
	var sub Subscription
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		var err error
		sub, err = s.setSubStatus(ctx, tx, who, consumerID, id, status, from...)
		return err
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("set subscription status: %w", err)
	}
	return sub, nil
}

func (s *Service) setSubStatus(ctx context.Context, tx pgx.Tx, who audit.Actor, consumerID, id, status string, from ...string) (Subscription, error) {
	cur, err := getSub(ctx, tx, who.TenantID, consumerID, id, "FOR UPDATE")
	if err != nil {
		return Subscription{}, err
	}
	if cur.Status == status {
		return cur, nil
	}
	if len(from) > 0 && !contains(from, cur.Status) {
		return Subscription{}, fault.Conflict("status", "the subscription is %s", cur.Status)
	}
	sub, err := scanSub(tx.QueryRow(ctx, `UPDATE subscriptions SET status = $3, updated_at = now(),
		decided_at = CASE WHEN $4 THEN now() ELSE decided_at END,
		decided_by = CASE WHEN $4 THEN $5 ELSE decided_by END
		WHERE tenant_id = $1 AND id = $2 RETURNING `+subCols,
		who.TenantID, id, status, cur.Status == SubPending, who.Name))
	if c, ok := store.UniqueViolation(err); ok && c == "subscriptions_live_key" {
		return Subscription{}, fault.Conflict("status", "the app already has a live subscription to this plan")
	} else if err != nil {
		return Subscription{}, fmt.Errorf("update subscription: %w", err)
	}
	// Workers learn the new state of every key (a canceled subscription's
	// keys answer 403 subscription-canceled from then on).
	if _, err := s.requeueKeys(ctx, tx, who.TenantID, `k.subscription_id = $2`, id); err != nil {
		return Subscription{}, err
	}
	if err := audit.Record(ctx, tx, who, "subscription."+status, "subscription", id, map[string]any{
		"from": cur.Status, "to": status, "app_id": sub.AppID, "plan_id": sub.PlanID}); err != nil {
		return Subscription{}, err
	}
	return sub, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// ApproveSubscription lets a pending subscription go ahead: active for a
// free plan, payment_required for a priced one.
func (s *Service) ApproveSubscription(ctx context.Context, who audit.Actor, id string) (Subscription, error) {
	var sub Subscription
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		cur, err := getSub(ctx, tx, who.TenantID, "", id, "FOR UPDATE")
		if err != nil {
			return err
		}
		if cur.Status != SubPending {
			return fault.Conflict("status", "only a pending subscription can be approved; this one is %s", cur.Status)
		}
		plan, err := getPlan(ctx, tx, who.TenantID, cur.PlanID, false)
		if err != nil {
			return err
		}
		next := SubActive
		if plan.Priced() {
			next = SubPaymentRequired
		}
		sub, err = s.setSubStatus(ctx, tx, who, "", id, next, SubPending)
		return err
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("approve subscription: %w", err)
	}
	return sub, nil
}
