package mgmtapi

import (
	"time"

	"github.com/tollgate/tollgate/services/catalog"
)

// ConsumerRequest creates a consumer (POST /v1/consumers); PATCH merges
// the fields it names into the consumer's current ones.
type ConsumerRequest struct {
	Name   string `json:"name" maxLength:"200"`
	Email  string `json:"email" format:"email"`
	Status string `json:"status,omitempty" enum:"active,suspended" default:"active" doc:"a suspended consumer's keys are refused by every worker (403 consumer-suspended)"`
}

func (ConsumerRequest) schemaDoc() string { return "What a caller sets on a consumer." }

// Consumer is a developer or application that holds API keys.
type Consumer struct {
	ID          string    `json:"id" format:"uuid"`
	Name        string    `json:"name"`
	Email       string    `json:"email" format:"email"`
	Status      string    `json:"status" enum:"active,suspended"`
	DeveloperID *string   `json:"developer_id" format:"uuid" doc:"the consumer's developer-portal account, if any"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func (Consumer) schemaDoc() string {
	return "A developer or application that holds API keys; a developer of the portal appears as one."
}

func (r ConsumerRequest) input() catalog.ConsumerInput {
	return catalog.ConsumerInput{Name: r.Name, Email: r.Email, Status: r.Status}
}

func consumerRequestOf(in catalog.ConsumerInput) ConsumerRequest {
	return ConsumerRequest{Name: in.Name, Email: in.Email, Status: in.Status}
}

func consumerOf(c catalog.Consumer) Consumer {
	return Consumer{ID: c.ID, Name: c.Name, Email: c.Email, Status: c.Status, DeveloperID: clonePtr(c.DeveloperID),
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}
