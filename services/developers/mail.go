package developers

import (
	"bytes"
	"context"
	htmltemplate "html/template"
	"net/url"
	texttemplate "text/template"

	mailpkg "github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/tenancy"
)

// The portal's mails: each has a plain-text part and an HTML part, both
// branded with the tenant's portal name, accent colour and logo.

type mailKind struct {
	subject string
	// text is the plain-text body; html the body of the HTML part's card.
	text, html string
}

// mailData fills a mail's templates.
type mailData struct {
	Name   string
	Link   string
	Detail string
}

var (
	mailVerify = mailKind{
		subject: "Confirm your email address",
		text: `Hello {{.Name}},

please confirm your email address for {{.Portal}} by opening this link
within 24 hours:

{{.Link}}

Until you do, you can browse the documentation but not get API keys.
If you did not sign up, ignore this mail.`,
		html: `<p>Hello {{.Name}},</p><p>please confirm your email address for {{.Portal}}.
The link works for 24 hours.</p>{{button .Link "Confirm my address"}}
<p class="muted">Until you do, you can browse the documentation but not get API keys.
If you did not sign up, ignore this mail.</p>`,
	}
	mailAccountExists = mailKind{
		subject: "You already have an account",
		text: `Hello,

someone (probably you) tried to sign up for {{.Portal}} with this address,
which already has an account. Sign in at:

{{.Login}}

If you forgot your password, reset it at:

{{.Forgot}}

If it was not you, ignore this mail.`,
		html: `<p>Hello,</p><p>someone (probably you) tried to sign up for {{.Portal}} with this address,
which already has an account.</p>{{button .Login "Sign in"}}
<p class="muted">Forgot your password? <a href="{{.Forgot}}">Reset it</a>. If it was not you, ignore this mail.</p>`,
	}
	mailReset = mailKind{
		subject: "Reset your password",
		text: `Hello {{.Name}},

to choose a new password for {{.Portal}}, open this link within an hour:

{{.Link}}

If you did not ask for it, ignore this mail: your password stays as it is.`,
		html: `<p>Hello {{.Name}},</p><p>to choose a new password for {{.Portal}}, use the button below
within an hour.</p>{{button .Link "Choose a new password"}}
<p class="muted">If you did not ask for it, ignore this mail: your password stays as it is.</p>`,
	}
	mailInvite = mailKind{
		subject: "You are invited to the developer portal",
		text: `Hello,

you are invited to {{.Portal}}, where you can read the API documentation,
subscribe to plans and get API keys. Create your account within 7 days:

{{.Link}}`,
		html: `<p>Hello,</p><p>you are invited to {{.Portal}}, where you can read the API documentation,
subscribe to plans and get API keys. The invitation works for 7 days.</p>{{button .Link "Create my account"}}`,
	}
	mailPendingApproval = mailKind{
		subject: "Your account waits for approval",
		text: `Hello {{.Name}},

thanks for signing up for {{.Portal}}. The API provider approves each new
developer; we will write to you as soon as it has decided. Meanwhile you
can browse the documentation.`,
		html: `<p>Hello {{.Name}},</p><p>thanks for signing up for {{.Portal}}. The API provider approves each new
developer; we will write to you as soon as it has decided. Meanwhile you can browse the documentation.</p>`,
	}
	mailDeveloperApproved = mailKind{
		subject: "Your account is approved",
		text: `Hello {{.Name}},

your account at {{.Portal}} is approved: you can now subscribe to plans
and get API keys.

{{.Home}}`,
		html: `<p>Hello {{.Name}},</p><p>your account at {{.Portal}} is approved: you can now subscribe to plans
and get API keys.</p>{{button .Home "Open the portal"}}`,
	}
	mailDeveloperRejected = mailKind{
		subject: "Your account was not approved",
		text: `Hello {{.Name}},

the API provider did not approve your account at {{.Portal}}.{{if .Support}}
Questions go to {{.Support}}.{{end}}`,
		html: `<p>Hello {{.Name}},</p><p>the API provider did not approve your account at {{.Portal}}.
{{if .Support}}Questions go to <a href="mailto:{{.Support}}">{{.Support}}</a>.{{end}}</p>`,
	}
	mailSubscriptionApproved = mailKind{
		subject: "Your subscription is approved",
		text: `Hello {{.Name}},

your subscription to {{.Detail}} at {{.Portal}} is approved. Get your key at:

{{.Link}}`,
		html: `<p>Hello {{.Name}},</p><p>your subscription to <strong>{{.Detail}}</strong> at {{.Portal}} is approved.</p>
{{button .Link "Get my key"}}`,
	}
	mailSubscriptionRejected = mailKind{
		subject: "Your subscription was not approved",
		text: `Hello {{.Name}},

the API provider did not approve your subscription to {{.Detail}} at {{.Portal}}.{{if .Support}}
Questions go to {{.Support}}.{{end}}`,
		html: `<p>Hello {{.Name}},</p><p>the API provider did not approve your subscription to <strong>{{.Detail}}</strong>
at {{.Portal}}.{{if .Support}} Questions go to <a href="mailto:{{.Support}}">{{.Support}}</a>.{{end}}</p>`,
	}
)

// mailView is what the templates see.
type mailView struct {
	mailData
	Portal, Home, Login, Forgot, Support, Color, Logo string
}

const htmlFrame = `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Subject}}</title></head>
<body style="margin:0;padding:24px;background:#f5f6f8;font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;color:#1f2330">
<table role="presentation" width="100%" cellspacing="0" cellpadding="0"><tr><td align="center">
<table role="presentation" width="560" cellspacing="0" cellpadding="0" style="max-width:560px;background:#fff;border-radius:10px;border-top:4px solid {{.V.Color}}">
<tr><td style="padding:24px 28px 8px">{{if .V.Logo}}<img src="{{.V.Logo}}" alt="" height="32" style="height:32px;vertical-align:middle;margin-right:8px">{{end}}<strong style="font-size:16px">{{.V.Portal}}</strong></td></tr>
<tr><td style="padding:8px 28px 24px;font-size:15px;line-height:1.55">{{.Body}}</td></tr>
</table>
<p style="font-size:12px;color:#6b7080">Sent by {{.V.Portal}}{{if .V.Support}} · <a href="mailto:{{.V.Support}}" style="color:#6b7080">{{.V.Support}}</a>{{end}}</p>
</td></tr></table></body></html>`

var frameTmpl = htmltemplate.Must(htmltemplate.New("frame").Parse(htmlFrame))

func buttonFunc(color string) func(link, label string) htmltemplate.HTML {
	return func(link, label string) htmltemplate.HTML {
		var b bytes.Buffer
		t := htmltemplate.Must(htmltemplate.New("b").Parse(
			`<p style="margin:24px 0"><a href="{{.L}}" style="display:inline-block;padding:11px 20px;border-radius:6px;background:{{.C}};color:#fff;text-decoration:none;font-weight:600">{{.T}}</a></p>` +
				`<p style="font-size:12px;color:#6b7080;word-break:break-all">{{.L}}</p>`))
		_ = t.Execute(&b, struct{ L, C, T string }{link, color, label})
		return htmltemplate.HTML(b.String())
	}
}

// render builds the message of kind for the tenant's portal.
func (s *Service) render(t tenancy.Tenant, p settings.Portal, to string, k mailKind, d mailData) (mailpkg.Message, error) {
	v := mailView{mailData: d, Portal: p.DisplayName, Support: p.SupportEmail, Color: p.AccentColor, Logo: p.LogoURL}
	if v.Portal == "" {
		v.Portal = t.Name + " developer portal"
	}
	if v.Color == "" {
		v.Color = "#4f46e5"
	}
	v.Home = s.link(t, "/")
	v.Login = s.link(t, "/login")
	v.Forgot = s.link(t, "/forgot")
	var text bytes.Buffer
	if err := texttemplate.Must(texttemplate.New("text").Parse(k.text)).Execute(&text, v); err != nil {
		return mailpkg.Message{}, err
	}
	text.WriteString("\n\n-- \n" + v.Portal + "\n" + v.Home + "\n")
	var body bytes.Buffer
	bt := htmltemplate.Must(htmltemplate.New("body").Funcs(htmltemplate.FuncMap{"button": buttonFunc(v.Color)}).Parse(k.html))
	if err := bt.Execute(&body, v); err != nil {
		return mailpkg.Message{}, err
	}
	var page bytes.Buffer
	if err := frameTmpl.Execute(&page, struct {
		Subject string
		V       mailView
		Body    htmltemplate.HTML
	}{k.subject, v, htmltemplate.HTML(body.String())}); err != nil {
		return mailpkg.Message{}, err
	}
	return mailpkg.Message{To: to, Subject: k.subject + " · " + v.Portal, Body: text.String(), HTML: page.String(),
		FromName: v.Portal, ReplyTo: p.SupportEmail}, nil
}

// send renders and delivers a mail; a failure is logged, not returned, so
// that the answer never depends on whether an address has an account.
func (s *Service) send(ctx context.Context, t tenancy.Tenant, p settings.Portal, to string, k mailKind, d mailData) {
	m, err := s.render(t, p, to, k, d)
	if err == nil {
		err = s.Mailer.Send(ctx, m)
	}
	if err != nil {
		s.log().Error("developer portal mail not sent", "tenant", t.Slug, "subject", k.subject, "err", err)
	}
}

// link is an absolute URL of the tenant's portal.
func (s *Service) link(t tenancy.Tenant, path string) string {
	return s.PortalURL(t) + path
}

func queryEscape(v string) string { return url.QueryEscape(v) }
