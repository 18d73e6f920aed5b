package devportal

import (
	"net/http"
	"time"

	"github.com/tollgate/tollgate/services/developers"
)

// The account endpoints: signup, verification, sign-in and out, password
// reset, and the signed-in developer. None of them tells whether an address
// has an account: signup and forgot-password answer 202 with a fixed body
// either way, and a wrong password answers like an unknown address.

// apiAccepted is the fixed body of 202 answers.
type apiAccepted struct {
	Detail string `json:"detail"`
}

const (
	apiSignupAccepted = "if the address can be used, a mail with a confirmation link is on its way; open it within 24 hours"
	apiResetAccepted  = "if the address has an account, a mail with a link to choose a new password is on its way; it works for an hour"
	apiResendAccepted = "a new confirmation link is on its way"
)

func (p *Portal) apiSignup(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	var in developers.SignupInput
	if err := apiDecode(w, r, &in); err != nil {
		return err
	}
	if err := p.opts.Developers.Signup(r.Context(), c.tenant, in, p.clientIP(r)); err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusAccepted, apiAccepted{apiSignupAccepted})
}

type apiTokenInput struct {
	Token string `json:"token"`
}

func (p *Portal) apiVerify(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	var in apiTokenInput
	if err := apiDecode(w, r, &in); err != nil {
		return err
	}
	dev, err := p.opts.Developers.Verify(r.Context(), c.tenant, in.Token, p.clientIP(r))
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, dev)
}

func (p *Portal) apiResendVerification(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	if err := p.opts.Developers.ResendVerification(r.Context(), c.tenant, c.dev(), p.clientIP(r)); err != nil {
		return err
	}
	detail := apiResendAccepted
	if c.dev().EmailVerified {
		detail = "the address is already confirmed"
	}
	return apiWriteJSON(w, http.StatusAccepted, apiAccepted{detail})
}

type apiLoginInput struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// apiLoginResult is the answer of POST /api/login: a bearer token for the JSON
// API (no cookie is set).
type apiLoginResult struct {
	Token     string               `json:"token"`
	TokenType string               `json:"token_type"`
	ExpiresAt time.Time            `json:"expires_at"`
	Developer developers.Developer `json:"developer"`
}

func (p *Portal) apiLogin(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	var in apiLoginInput
	if err := apiDecode(w, r, &in); err != nil {
		return err
	}
	dev, err := p.opts.Developers.Login(r.Context(), c.tenant, in.Email, in.Password, p.clientIP(r))
	if err != nil {
		return err
	}
	s, err := p.opts.Developers.StartSession(r.Context(), dev)
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, apiLoginResult{Token: s.ID, TokenType: "Bearer", ExpiresAt: s.ExpiresAt, Developer: dev})
}

// apiLogout ends the session the call came with (the bearer token, or the
// cookie session, whose cookie it also clears).
func (p *Portal) apiLogout(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	if err := p.opts.Developers.EndSession(r.Context(), c.session.ID); err != nil {
		return err
	}
	if !c.bearer {
		p.setCookie(w, p.cookies.session, "", -1)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type apiForgotInput struct {
	Email string `json:"email"`
}

func (p *Portal) apiForgotPassword(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	var in apiForgotInput
	if err := apiDecode(w, r, &in); err != nil {
		return err
	}
	if err := p.opts.Developers.RequestReset(r.Context(), c.tenant, in.Email, p.clientIP(r)); err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusAccepted, apiAccepted{apiResetAccepted})
}

type apiResetInput struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

// apiResetPassword sets a new password; every session of the developer
// ends, so the answer holds no token: sign in again.
func (p *Portal) apiResetPassword(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	var in apiResetInput
	if err := apiDecode(w, r, &in); err != nil {
		return err
	}
	dev, err := p.opts.Developers.ResetPassword(r.Context(), c.tenant, in.Token, in.Password, p.clientIP(r))
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, dev)
}

func (p *Portal) apiMe(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	return apiWriteJSON(w, http.StatusOK, c.dev())
}
