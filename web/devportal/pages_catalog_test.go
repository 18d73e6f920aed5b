package devportal_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/catalog"
)

// TestPageCatalog: the front page and the catalogue list the published
// APIs only, with their operation count, auth and plans.
func TestPageCatalog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	c := e.client("acme")
	home := c.page("GET", "/", nil).must(t, 200)
	home.contains(t, `id="hero"`, "Acme Inc Developers", `id="cta-browse"`, `id="cta-signup"`, `id="cta-login"`,
		`id="api-pets"`, "3 operations").lacks(t, "Internal")
	cat := c.page("GET", "/apis", nil).must(t, 200)
	cat.contains(t, `id="api-list"`, `id="api-pets"`, `href="/apis/pets"`, ">Pets<", "3 operations", "v1.2.0", "API key",
		"Pets of the store.", "http://acme.gw.test:", "/pets</code>", "Free", "Partner", "Pro").lacks(t, "internal", f.Hidden.ID)
	// Another tenant's catalogue is its own.
	e.client("globex").page("GET", "/apis", nil).must(t, 200).contains(t, "http://globex.gw.test:").lacks(t, "acme.gw.test")

	// A portal with nothing published shows its empty state.
	for _, a := range []catalog.API{f.API} {
		if _, err := e.cat.UpdateAPI(context.Background(), f.Actor, a.ID, func(in *catalog.APIInput) error {
			in.Published = false
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	c.page("GET", "/apis", nil).must(t, 200).contains(t, `id="apis-empty"`, "No APIs published yet")
	c.page("GET", "/apis/pets", nil).must(t, 404)
}

// TestPageAPIReference: an API's page renders its reference from the
// document (operations by their ids, the console off for a visitor who is
// signed out), plans, SDK links; a signed-in developer with a key gets the
// console, and can fill a key into the samples; an API without a document
// still gets a page.
func TestPageAPIReference(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	anon := e.client("acme")
	for _, ref := range []string{"pets", f.API.ID} {
		r := anon.page("GET", "/apis/"+ref, nil).must(t, 200)
		r.contains(t, `id="reference"`, `class="ref"`, `id="op-listpets"`, `id="op-createpet"`, `id="op-getpet"`,
			"List pets", "Add a pet", "Get a pet", `href="/static/docs.css"`, `src="/static/tryit.js"`,
			`id="api-access"`, `id="plan-card-`+f.FreePlan.ID+`"`, `id="plan-card-`+f.ApprovalPlan.ID+`"`, "approval required",
			`id="sdk-go" download`, `href="/api/apis/`+f.API.ID+`/sdk/go"`, `href="/api/apis/`+f.API.ID+`/sdk/typescript"`,
			"X-API-Key", "YOUR_API_KEY", "Sign in to try it", `href="/login?next=%2Fapis%2Fpets"`)
		r.lacks(t, `data-relay=`, "ref-try-form", f.PrivatePlan.ID)
	}

	// Signed in, confirmed, no key yet: no console, a way to get a key.
	c, _ := e.pageSignedIn("acme", "reader@example.com", true)
	c.page("GET", "/apis/pets", nil).must(t, 200).contains(t, "You need a key for a plan that includes this API",
		`id="key-form"`).lacks(t, `data-relay=`)
	appID := c.pageNewApp("Reader")
	key := c.pageSubscribe(appID, f.FreePlan.ID).must(t, 200).find(t, pageKeyRE)
	prefix := pageKeys(t, e, "acme", appID)[0].Prefix

	// With a working key: the console posts to the relay with the session's
	// CSRF token, and the key's prefix is offered.
	r := c.page("GET", "/apis/pets", nil).must(t, 200)
	r.contains(t, `data-relay="/api/try/`+f.API.ID+`"`, `data-csrf="`, "ref-try-form", `id="key-choices"`, prefix+"…",
		"(Reader · Free)").lacks(t, key)
	// The console's token works with the relay, as tryit.js sends it.
	relayed := pageRelay(t, c, r.find(t, `data-relay="([^"]+)"`), r.find(t, `data-csrf="([^"]+)"`), key)
	if !strings.Contains(relayed, `"status":200`) || !strings.Contains(relayed, key) {
		t.Errorf("relay answer: %s", relayed)
	}
	// Fill the key in: samples and consoles carry it, in this answer only.
	filled := c.submit("/apis/pets", "/apis/pets", url.Values{"key": {key}}).must(t, 200)
	filled.contains(t, "X-API-Key: "+key, `value="`+key+`"`, "Your key is filled into the code samples")
	if strings.Count(filled.body, key) < 6 {
		t.Errorf("the key appears %d times on the filled page", strings.Count(filled.body, key))
	}
	c.submit("/apis/pets", "/apis/pets", url.Values{"key": {`"><script>`}}).must(t, 422).
		contains(t, "That does not look like a key").lacks(t, `"><script>`)
	c.page("GET", "/apis/pets", nil).must(t, 200).lacks(t, key)

	// An API without a document: base URL, auth, plans, "no reference yet".
	bare, err := e.cat.CreateAPI(context.Background(), f.Actor, catalog.APIInput{Name: "Weather", Slug: "weather",
		BasePath: "/weather", UpstreamID: f.API.UpstreamID, Auth: "none", Published: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.UpdatePlan(context.Background(), f.Actor, f.FreePlan.ID, func(in *catalog.PlanInput) error {
		in.APIIDs = append(in.APIIDs, bare.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	anon.page("GET", "/apis/weather", nil).must(t, 200).contains(t, `id="api-basics"`, `id="base-url"`,
		"http://acme.gw.test:", "/weather</code>", "calls need no credentials", `id="reference-empty"`, "No reference yet",
		`id="plan-card-`+f.FreePlan.ID+`"`, `id="sdk-none"`).lacks(t, `class="ref"`)
	anon.page("GET", "/apis", nil).must(t, 200).contains(t, `id="api-weather"`, "No reference yet", "Open")
}

// pageRelay sends a console request to the relay like tryit.js: JSON with
// the page's CSRF token in X-CSRF-Token, the session cookie alongside.
func pageRelay(t *testing.T, c *client, relay, csrf, key string) string {
	t.Helper()
	body := `{"method":"GET","path":"/pets","headers":{"X-API-Key":"` + key + `"}}`
	req, err := http.NewRequest("POST", "http://"+host(c.slug)+":"+c.e.port()+relay, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", html.UnescapeString(csrf))
	resp, err := c.transport().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("relay: %d %s", resp.StatusCode, out)
	}
	return out
}
