package accounts

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/tenancy"
)

// Service is the accounts of the tenant portal bound to their database and
// keys, built once in cmd, so that the web packages call it through
// interfaces of their own and never hold a database handle. Its methods
// are the package's functions of the same names; their documentation is
// there. Throttling (services/throttle) is counted in the same database.
type Service struct {
	// DB is the control plane's database. Required.
	DB *pgxpool.Pool
	// DigestKey keys the digest of the first admin token a sign-up
	// creates: the installation's digest key (secrets.ControlDigestKey).
	// Required for Signup.
	DigestKey []byte
}

// Signup is the package's Signup with s's digest key.
func (s *Service) Signup(ctx context.Context, in SignupInput) (tenancy.Tenant, User, error) {
	return Signup(ctx, s.DB, s.DigestKey, in)
}

// Login is the package's Login.
func (s *Service) Login(ctx context.Context, email, password, client string) (User, error) {
	return Login(ctx, s.DB, email, password, client)
}

// SSOLogin is the package's SSOLogin.
func (s *Service) SSOLogin(ctx context.Context, id Identity, provisionTenant string) (User, error) {
	return SSOLogin(ctx, s.DB, id, provisionTenant)
}

// NewVerification is the package's NewVerification.
func (s *Service) NewVerification(ctx context.Context, u User) (string, error) {
	return NewVerification(ctx, s.DB, u)
}

// VerifyEmail is the package's VerifyEmail.
func (s *Service) VerifyEmail(ctx context.Context, tok, client string) (User, error) {
	return VerifyEmail(ctx, s.DB, tok, client)
}

// RequestReset is the package's RequestReset.
func (s *Service) RequestReset(ctx context.Context, email, client string) (u User, tok string, ok bool, err error) {
	return RequestReset(ctx, s.DB, email, client)
}

// ValidResetToken is the package's ValidResetToken.
func (s *Service) ValidResetToken(ctx context.Context, tok string) (bool, error) {
	return ValidResetToken(ctx, s.DB, tok)
}

// ResetPassword is the package's ResetPassword.
func (s *Service) ResetPassword(ctx context.Context, tok, password string) (User, error) {
	return ResetPassword(ctx, s.DB, tok, password)
}

// StartSession is the package's StartSession.
func (s *Service) StartSession(ctx context.Context, u User) (Session, error) {
	return StartSession(ctx, s.DB, u)
}

// LookupSession is the package's LookupSession.
func (s *Service) LookupSession(ctx context.Context, id string) (Session, error) {
	return LookupSession(ctx, s.DB, id)
}

// EndSession is the package's EndSession.
func (s *Service) EndSession(ctx context.Context, id string) error {
	return EndSession(ctx, s.DB, id)
}

// PruneSessions is the package's PruneSessions.
func (s *Service) PruneSessions(ctx context.Context) error {
	return PruneSessions(ctx, s.DB)
}

// GetUser is the package's GetUser.
func (s *Service) GetUser(ctx context.Context, tenantID, id string) (User, error) {
	return GetUser(ctx, s.DB, tenantID, id)
}

// ListUsers is the package's ListUsers.
func (s *Service) ListUsers(ctx context.Context, tenantID string) ([]User, error) {
	return ListUsers(ctx, s.DB, tenantID)
}

// CreateUser is the package's CreateUser.
func (s *Service) CreateUser(ctx context.Context, who audit.Actor, email, name, role, password string) (User, error) {
	return CreateUser(ctx, s.DB, who, email, name, role, password)
}

// SetRole is the package's SetRole.
func (s *Service) SetRole(ctx context.Context, who audit.Actor, id, role string) error {
	return SetRole(ctx, s.DB, who, id, role)
}

// RemoveUser is the package's RemoveUser.
func (s *Service) RemoveUser(ctx context.Context, who audit.Actor, id string) error {
	return RemoveUser(ctx, s.DB, who, id)
}

// CreateInvite is the package's CreateInvite.
func (s *Service) CreateInvite(ctx context.Context, who audit.Actor, email, role string) (Invite, string, error) {
	return CreateInvite(ctx, s.DB, who, email, role)
}

// ListInvites is the package's ListInvites.
func (s *Service) ListInvites(ctx context.Context, tenantID string) ([]Invite, error) {
	return ListInvites(ctx, s.DB, tenantID)
}

// RevokeInvite is the package's RevokeInvite.
func (s *Service) RevokeInvite(ctx context.Context, who audit.Actor, id string) error {
	return RevokeInvite(ctx, s.DB, who, id)
}

// LookupInvite is the package's LookupInvite.
func (s *Service) LookupInvite(ctx context.Context, tok string) (Invite, error) {
	return LookupInvite(ctx, s.DB, tok)
}

// AcceptInvite is the package's AcceptInvite.
func (s *Service) AcceptInvite(ctx context.Context, tok, name, password string) (User, error) {
	return AcceptInvite(ctx, s.DB, tok, name, password)
}

// SSODomains is the package's SSODomains.
func (s *Service) SSODomains(ctx context.Context, tenantID string) ([]string, error) {
	return SSODomains(ctx, s.DB, tenantID)
}

// SaveSSODomains is the package's SaveSSODomains.
func (s *Service) SaveSSODomains(ctx context.Context, who audit.Actor, list []string) ([]string, error) {
	return SaveSSODomains(ctx, s.DB, who, list)
}
