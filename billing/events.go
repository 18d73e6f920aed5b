package billing

import (
	"encoding/json"
	"time"
)

// The objects of the webhook events billing handles, decoded from the raw
// payload with only the fields it reads. stripe-go's types follow its
// pinned API version (2023-10-16); events may come in newer versions (an
// endpoint's version, stripe-mock's), so every field that moved is read
// from both places.

// ref is an id that Stripe sends as a string or, expanded, as an object.
type ref string

func (r *ref) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*r = ref(o.ID)
		return nil
	}
	if string(b) == "null" {
		*r = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*r = ref(s)
	return nil
}

// checkoutSession is a checkout.session.* object.
type checkoutSession struct {
	ID                string            `json:"id"`
	ClientReferenceID string            `json:"client_reference_id"`
	Customer          ref               `json:"customer"`
	Subscription      ref               `json:"subscription"`
	Mode              string            `json:"mode"`
	Status            string            `json:"status"`
	PaymentStatus     string            `json:"payment_status"`
	Metadata          map[string]string `json:"metadata"`
}

// subscriptionObject is a customer.subscription.* object.
type subscriptionObject struct {
	ID                 string            `json:"id"`
	Status             string            `json:"status"`
	Customer           ref               `json:"customer"`
	Metadata           map[string]string `json:"metadata"`
	CancelAtPeriodEnd  bool              `json:"cancel_at_period_end"`
	CurrentPeriodStart int64             `json:"current_period_start"`
	CurrentPeriodEnd   int64             `json:"current_period_end"`
	Items              struct {
		Data []struct {
			ID    string `json:"id"`
			Price struct {
				ID string `json:"id"`
			} `json:"price"`
			CurrentPeriodStart int64 `json:"current_period_start"`
			CurrentPeriodEnd   int64 `json:"current_period_end"`
		} `json:"data"`
	} `json:"items"`
}

// period returns the subscription's current period: top-level in API
// versions up to 2025-03, on each item since (the items share one period
// unless the subscription mixes intervals; the earliest end wins).
func (o subscriptionObject) period() (start, end *time.Time) {
	s, e := o.CurrentPeriodStart, o.CurrentPeriodEnd
	if e == 0 {
		for _, it := range o.Items.Data {
			if it.CurrentPeriodEnd != 0 && (e == 0 || it.CurrentPeriodEnd < e) {
				s, e = it.CurrentPeriodStart, it.CurrentPeriodEnd
			}
		}
	}
	if e == 0 {
		return nil, nil
	}
	ts, te := time.Unix(s, 0).UTC(), time.Unix(e, 0).UTC()
	return &ts, &te
}

// priceIDs are the prices of the subscription's items.
func (o subscriptionObject) priceIDs() []string {
	var ids []string
	for _, it := range o.Items.Data {
		if it.Price.ID != "" {
			ids = append(ids, it.Price.ID)
		}
	}
	return ids
}

// invoiceObject is an invoice.* object.
type invoiceObject struct {
	ID               string `json:"id"`
	Status           string `json:"status"`
	Currency         string `json:"currency"`
	AmountDue        int64  `json:"amount_due"`
	AmountPaid       int64  `json:"amount_paid"`
	PeriodStart      int64  `json:"period_start"`
	PeriodEnd        int64  `json:"period_end"`
	Created          int64  `json:"created"`
	HostedInvoiceURL string `json:"hosted_invoice_url"`
	Customer         ref    `json:"customer"`
	// Subscription is where API versions up to 2025-03 name it.
	Subscription        ref `json:"subscription"`
	SubscriptionDetails *struct {
		Metadata map[string]string `json:"metadata"`
	} `json:"subscription_details"`
	// Parent is where newer versions name it.
	Parent *struct {
		SubscriptionDetails *struct {
			Subscription ref               `json:"subscription"`
			Metadata     map[string]string `json:"metadata"`
		} `json:"subscription_details"`
	} `json:"parent"`
	Lines struct {
		Data []struct {
			Subscription ref `json:"subscription"`
			Period       struct {
				Start int64 `json:"start"`
				End   int64 `json:"end"`
			} `json:"period"`
			Parent *struct {
				SubscriptionItemDetails *struct {
					Subscription ref `json:"subscription"`
				} `json:"subscription_item_details"`
			} `json:"parent"`
		} `json:"data"`
	} `json:"lines"`
}

// subscription returns the Stripe subscription the invoice bills and the
// Tollgate subscription id from its metadata, from whichever shape.
func (o invoiceObject) subscription() (stripeID, tollgateID string) {
	stripeID = string(o.Subscription)
	if o.SubscriptionDetails != nil {
		tollgateID = o.SubscriptionDetails.Metadata["tollgate_subscription_id"]
	}
	if o.Parent != nil && o.Parent.SubscriptionDetails != nil {
		if stripeID == "" {
			stripeID = string(o.Parent.SubscriptionDetails.Subscription)
		}
		if tollgateID == "" {
			tollgateID = o.Parent.SubscriptionDetails.Metadata["tollgate_subscription_id"]
		}
	}
	for _, l := range o.Lines.Data {
		if stripeID != "" {
			break
		}
		stripeID = string(l.Subscription)
		if stripeID == "" && l.Parent != nil && l.Parent.SubscriptionItemDetails != nil {
			stripeID = string(l.Parent.SubscriptionItemDetails.Subscription)
		}
	}
	return stripeID, tollgateID
}

// period is the service period the invoice bills: its lines' (the
// top-level period of a subscription invoice is the previous one's usage
// window), else its own.
func (o invoiceObject) period() (start, end *time.Time) {
	s, e := o.PeriodStart, o.PeriodEnd
	for _, l := range o.Lines.Data {
		if l.Period.End != 0 {
			s, e = l.Period.Start, l.Period.End
			break
		}
	}
	if e == 0 {
		return nil, nil
	}
	ts, te := time.Unix(s, 0).UTC(), time.Unix(e, 0).UTC()
	return &ts, &te
}
