package mgmtapi

import (
	"time"

	"github.com/tollgate/tollgate/services/outbox"
)

// ConfigStatus is what the proxy workers serve of the tenant's config (GET
// /v1/config/status).
type ConfigStatus struct {
	Generation          int64      `json:"generation" doc:"the tenant's newest config change: each change of its upstreams, APIs, routes, plans or custom domains moves it by one"`
	PublishedGeneration int64      `json:"published_generation" doc:"the generation the proxy workers serve; 0 before the first publish"`
	Status              string     `json:"status" enum:"ok,error" doc:"error: the newest change was refused (see error) and the workers keep serving published_generation; ok otherwise (generation above published_generation is on its way)"`
	Error               *string    `json:"error" doc:"why the newest change was refused; null when status is ok"`
	PublishedAt         *time.Time `json:"published_at" doc:"when published_generation was published; null before the first publish"`
	Capability          int        `json:"capability" doc:"the capability version of the proxy workers that the published config needs (the features it uses); 0 before the first publish"`
	Workers             int        `json:"workers" doc:"proxy workers heartbeating now"`
	WorkersTooOld       int        `json:"workers_too_old" doc:"of those, the workers too old for the published config: they answer 503 for the tenant's hosts until upgraded"`
}

func (ConfigStatus) schemaDoc() string {
	return "Which of the tenant's config changes the proxy workers serve, and why a newer one is not."
}

func configStatusOf(s outbox.ConfigStatus) ConfigStatus {
	out := ConfigStatus{Generation: s.Generation, PublishedGeneration: s.PublishedGeneration, Status: s.Status,
		Capability: s.Capability, Workers: s.Workers, WorkersTooOld: s.WorkersTooOld}
	if s.Error != "" {
		e := s.Error
		out.Error = &e
	}
	if !s.PublishedAt.IsZero() {
		t := s.PublishedAt.UTC()
		out.PublishedAt = &t
	}
	return out
}
