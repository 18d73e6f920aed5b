package portal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/web/portal/view"
)

func (p *Portal) teamPage(w http.ResponseWriter, r *http.Request, q *req, f view.Form, status int) {
	ctx := r.Context()
	users, err := p.opts.Team.ListUsers(ctx, q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	invites, err := p.opts.Team.ListInvites(ctx, q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m := view.TeamPage{C: q.chrome("Team", "team"), Form: f}
	for _, u := range users {
		m.Users = append(m.Users, view.UserRow{ID: u.ID, Name: u.Name, Email: u.Email, Role: u.Role, Self: u.ID == q.user.ID, CreatedAt: u.CreatedAt})
	}
	for _, i := range invites {
		st := "pending"
		switch {
		case i.AcceptedAt != nil:
			st = "accepted"
		case i.RevokedAt != nil:
			st = "withdrawn"
		case time.Now().After(i.ExpiresAt):
			st = "expired"
		}
		m.Invites = append(m.Invites, view.InviteRow{ID: i.ID, Email: i.Email, Role: i.Role, Status: st, CreatedAt: i.CreatedAt})
	}
	p.renderStatus(w, r, status, view.Team(m))
}

func (p *Portal) team(w http.ResponseWriter, r *http.Request, q *req) {
	f := blankForm()
	f.Values.Set("role", accounts.RoleViewer)
	p.teamPage(w, r, q, f, http.StatusOK)
}

func (p *Portal) inviteCreate(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	inv, tok, err := p.opts.Team.CreateInvite(r.Context(), q.user.Actor(), f.Get("email"), f.Get("role"))
	if err != nil {
		if !applyError(&f, err, "email", "role") {
			p.internal(w, r, err)
			return
		}
		p.teamPage(w, r, q, f, http.StatusUnprocessableEntity)
		return
	}
	link := p.absURL("/invite", url.Values{"token": {tok}})
	body := fmt.Sprintf("Hello,\n\n%s invited you to join %s on Tollgate as %s.\n\nAccept the invitation here (valid for 7 days):\n\n%s\n",
		q.user.Name, q.tenant.Name, inv.Role, link)
	if err := p.sendMail(r.Context(), inv.Email, "You are invited to "+q.tenant.Name+" on Tollgate", body); err != nil {
		p.internal(w, r, err)
		return
	}
	p.redirect(w, r, "/team", "Invitation sent to "+inv.Email+".")
}

func (p *Portal) inviteRevoke(w http.ResponseWriter, r *http.Request, q *req) {
	if err := p.opts.Team.RevokeInvite(r.Context(), q.user.Actor(), r.PathValue("id")); err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, "/team", "Invitation withdrawn.")
}

func (p *Portal) userRole(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	err := p.opts.Team.SetRole(r.Context(), q.user.Actor(), r.PathValue("id"), f.Get("role"))
	var ce *fault.ConflictError
	var ve *fault.ValidationError
	switch {
	case errors.As(err, &ce):
		p.redirect(w, r, "/team", ce.Message)
	case errors.As(err, &ve):
		p.redirect(w, r, "/team", "Choose owner, admin or viewer.")
	case err != nil:
		p.fail(w, r, q, err)
	default:
		p.redirect(w, r, "/team", "Role changed.")
	}
}

func (p *Portal) userRemove(w http.ResponseWriter, r *http.Request, q *req) {
	id := r.PathValue("id")
	if id == q.user.ID {
		p.redirect(w, r, "/team", "You cannot remove yourself; ask another owner.")
		return
	}
	err := p.opts.Team.RemoveUser(r.Context(), q.user.Actor(), id)
	var ce *fault.ConflictError
	if errors.As(err, &ce) {
		p.redirect(w, r, "/team", ce.Message)
		return
	}
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, "/team", "Removed from the team.")
}

func (p *Portal) tokensPage(w http.ResponseWriter, r *http.Request, q *req, f view.Form, newTok string, status int) {
	toks, err := all(func(pg store.Page) ([]tenancy.AdminToken, string, error) {
		return p.opts.Tokens.ListTokens(r.Context(), q.tenant.ID, pg)
	})
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m := view.TokensPage{C: q.chrome("Admin API tokens", "tokens"), Form: f, NewToken: newTok, APIURL: p.absURL("", nil)}
	for i := len(toks) - 1; i >= 0; i-- {
		t := toks[i]
		m.Tokens = append(m.Tokens, view.TokenRow{ID: t.ID, Name: t.Name, Prefix: t.Prefix, CreatedAt: t.CreatedAt, RevokedAt: t.RevokedAt})
	}
	p.renderStatus(w, r, status, view.Tokens(m))
}

func (p *Portal) tokens(w http.ResponseWriter, r *http.Request, q *req) {
	p.tokensPage(w, r, q, blankForm(), "", http.StatusOK)
}

func (p *Portal) tokenCreate(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	_, tok, err := p.opts.Tokens.CreateToken(r.Context(), q.user.Actor(), f.Get("name"))
	if err != nil {
		if !applyError(&f, err, "name") {
			p.internal(w, r, err)
			return
		}
		p.tokensPage(w, r, q, f, "", http.StatusUnprocessableEntity)
		return
	}
	p.tokensPage(w, r, q, blankForm(), tok, http.StatusOK)
}

func (p *Portal) tokenRevoke(w http.ResponseWriter, r *http.Request, q *req) {
	err := p.opts.Tokens.RevokeToken(r.Context(), q.user.Actor(), r.PathValue("id"))
	var ce *fault.ConflictError
	if errors.As(err, &ce) {
		p.redirect(w, r, "/tokens", ce.Message)
		return
	}
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, "/tokens", "Token revoked.")
}

func (p *Portal) auditLog(w http.ResponseWriter, r *http.Request, q *req) {
	entries, next, err := p.opts.Audit.List(r.Context(), q.tenant.ID, store.Page{After: r.URL.Query().Get("after"), Limit: 100})
	if errors.Is(err, store.ErrBadCursor) {
		entries, next, err = p.opts.Audit.List(r.Context(), q.tenant.ID, store.Page{Limit: 100})
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m := view.AuditPage{C: q.chrome("Audit log", "audit"), Next: next}
	for _, e := range entries {
		data := string(e.Data)
		if data == "{}" || data == "null" {
			data = ""
		} else if len(data) > 300 {
			var v any
			if json.Unmarshal(e.Data, &v) == nil {
				data = data[:300] + "…"
			}
		}
		m.Entries = append(m.Entries, view.AuditRow{At: e.At, Actor: actorText(e.Actor), Action: e.Action, Resource: e.ResourceType,
			ResourceID: e.ResourceID, Data: data})
	}
	p.render(w, r, view.Audit(m))
}

// actorText shortens an audit actor for display: "user:<id>:<email>" shows
// the email, "admin_token:<id>:<prefix>" the token's prefix.
func actorText(a string) string {
	kind, rest, ok := strings.Cut(a, ":")
	if !ok {
		return a
	}
	_, tail, ok := strings.Cut(rest, ":")
	if !ok {
		return a
	}
	switch kind {
	case "user":
		return tail
	case "admin_token":
		return "API token " + tail + "…"
	}
	return a
}
