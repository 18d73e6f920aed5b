package mgmtapi

import (
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/usage"
)

// KeyRequest issues a key (POST /v1/keys).
type KeyRequest struct {
	ConsumerID string `json:"consumer_id" format:"uuid" required:"true"`
	PlanID     string `json:"plan_id" format:"uuid" required:"true"`
}

func (KeyRequest) schemaDoc() string {
	return "The consumer a key is issued to and the plan it is issued under."
}

// Key describes an API key; the key itself is only shown once (KeyCreated).
type Key struct {
	ID             string     `json:"id" format:"uuid"`
	ConsumerID     string     `json:"consumer_id" format:"uuid"`
	PlanID         string     `json:"plan_id" format:"uuid"`
	Prefix         string     `json:"prefix" doc:"the key's first characters, to recognise it"`
	Status         string     `json:"status" enum:"active,revoked"`
	CreatedAt      time.Time  `json:"created_at"`
	RevokedAt      *time.Time `json:"revoked_at"`
	SubscriptionID *string    `json:"subscription_id" format:"uuid" doc:"set on keys issued in the developer portal"`
	AppID          *string    `json:"app_id" format:"uuid" doc:"set on keys issued in the developer portal"`
	ExpiresAt      *time.Time `json:"expires_at" doc:"when a rotated key stops working; null: never"`
	ReplacedBy     *string    `json:"replaced_by" format:"uuid" doc:"the key that replaced this one in a rotation"`
}

func (Key) schemaDoc() string {
	return "An API key. The key itself is never stored: only its digest and prefix."
}

// KeyCreated is a new key with the key itself, shown only in this answer.
type KeyCreated struct {
	Key
	Secret *string `json:"key" doc:"the API key; shown only here, null in a replay of this answer (Idempotency-Key)"`
}

func (KeyCreated) schemaDoc() string {
	return "A new API key, with the key itself: it is shown only in this answer."
}

func (k KeyCreated) withoutSecret() any {
	k.Secret = nil
	return k
}

// KeyQuota is a key's quota in the current period.
type KeyQuota struct {
	KeyID       string    `json:"key_id" format:"uuid"`
	PlanID      string    `json:"plan_id" format:"uuid"`
	Scope       string    `json:"scope" enum:"key,consumer" doc:"consumer: all the consumer's keys of the plan share the quota"`
	Limit       int64     `json:"limit" doc:"0: no quota"`
	Period      string    `json:"period" enum:"day,month"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
	Used        int64     `json:"used" doc:"the counter the proxies enforce"`
	Left        int64     `json:"left" doc:"limit - used, not below 0"`
}

func (KeyQuota) schemaDoc() string {
	return "A key's quota in the current billing period: used and left."
}

func (r KeyRequest) input() catalog.KeyInput {
	return catalog.KeyInput{ConsumerID: r.ConsumerID, PlanID: r.PlanID}
}

func keyOf(k catalog.Key) Key {
	return Key{ID: k.ID, ConsumerID: k.ConsumerID, PlanID: k.PlanID, Prefix: k.Prefix, Status: k.Status,
		CreatedAt: k.CreatedAt, RevokedAt: clonePtr(k.RevokedAt), SubscriptionID: clonePtr(k.SubscriptionID),
		AppID: clonePtr(k.AppID), ExpiresAt: clonePtr(k.ExpiresAt), ReplacedBy: clonePtr(k.ReplacedBy)}
}

func keyQuotaOf(q usage.KeyQuota) KeyQuota {
	return KeyQuota{KeyID: q.KeyID, PlanID: q.PlanID, Scope: q.Scope, Limit: q.Limit, Period: q.Period,
		PeriodStart: q.PeriodStart, PeriodEnd: q.PeriodEnd, Used: q.Used, Left: q.Left}
}
