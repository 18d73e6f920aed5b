package sdk

import "text/template"

// The fixed parts of a TypeScript SDK: its tsconfig.json, the code every
// index.ts shares, and the README template.

const tsConfig = `{
  "compilerOptions": {
    "target": "ES2022",
    "module": "ES2022",
    "moduleResolution": "bundler",
    "lib": ["ES2022", "DOM"],
    "strict": true,
    "declaration": true,
    "outDir": "dist",
    "skipLibCheck": true
  },
  "files": ["index.ts"]
}
`

// tsRuntime is the part of index.ts that is the same for every API.
const tsRuntime = `/** A fetch implementation: the global fetch by default. */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** Options of a Client. */
export interface ClientOptions {
  /** The API's base URL; DEFAULT_BASE_URL when omitted. */
  baseUrl?: string;
  /** An API key, sent in the X-API-Key header of every request. */
  apiKey?: string;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** The fetch to use; the global fetch when omitted. */
  fetch?: FetchLike;
}

/** Options of one request. */
export interface RequestOptions {
  /** Headers added to this request. */
  headers?: Record<string, string>;
  /** Aborts the request. */
  signal?: AbortSignal;
}

/** The error a method rejects with when the API answers with a status other than 2xx. */
export class ApiError extends Error {
  /** The HTTP status code. */
  readonly status: number;
  /** The response body: parsed JSON (for example an RFC 9457 problem) when it is JSON, else text. */
  readonly body: unknown;
  /** The response headers (Retry-After on 429, for one). */
  readonly headers: Headers;

  constructor(status: number, message: string, body: unknown, headers: Headers) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

/** Serialises query parameters: arrays as repeated keys, objects as key[name]. */
function encodeQuery(query: object | undefined): string {
  if (query === undefined || query === null) {
    return "";
  }
  const parts: string[] = [];
  const add = (key: string, value: unknown) => {
    if (value !== undefined && value !== null) {
      parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(String(value)));
    }
  };
  for (const [key, value] of Object.entries(query)) {
    if (Array.isArray(value)) {
      for (const v of value) {
        add(key, v);
      }
    } else if (value !== null && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) {
        add(key + "[" + k + "]", v);
      }
    } else {
      add(key, value);
    }
  }
  return parts.join("&");
}

/** Reads a response body as JSON when it says it is JSON, else as text. */
async function readBody(res: Response): Promise<unknown> {
  const text = await res.text();
  if (text !== "" && /json/i.test(res.headers.get("Content-Type") ?? "")) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

interface Call {
  method: string;
  path: string;
  query?: object;
  headers?: object;
  body?: unknown;
  bodyKind?: "json" | "raw";
  contentType?: string;
  responseKind: "json" | "text" | "blob" | "none";
}
`

const tsClientFields = `  readonly #baseUrl: string;
  readonly #apiKey: string | undefined;
  readonly #headers: Record<string, string>;
  readonly #fetch: FetchLike;

  constructor(options: ClientOptions = {}) {
    this.#baseUrl = (options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
    this.#apiKey = options.apiKey;
    this.#headers = { ...options.headers };
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
  }
`

const tsClientRequest = `
  async #request<T>(call: Call, options?: RequestOptions): Promise<T> {
    let url = this.#baseUrl + call.path;
    const query = encodeQuery(call.query);
    if (query !== "") {
      url += (url.includes("?") ? "&" : "?") + query;
    }
    const headers = new Headers(this.#headers);
    if (this.#apiKey !== undefined) {
      headers.set("X-API-Key", this.#apiKey);
    }
    for (const [k, v] of Object.entries(call.headers ?? {})) {
      if (v !== undefined && v !== null) {
        headers.set(k, String(v));
      }
    }
    for (const [k, v] of Object.entries(options?.headers ?? {})) {
      headers.set(k, v);
    }
    let body: BodyInit | undefined;
    if (call.body !== undefined) {
      if (call.bodyKind === "json") {
        body = JSON.stringify(call.body);
      } else {
        body = call.body as BodyInit;
      }
      if (call.contentType !== undefined) {
        headers.set("Content-Type", call.contentType);
      }
    }
    if (call.responseKind === "json" && !headers.has("Accept")) {
      headers.set("Accept", "application/json");
    }
    const res = await this.#fetch(url, { method: call.method, headers, body, signal: options?.signal });
    if (!res.ok) {
      throw new ApiError(res.status, (res.status + " " + res.statusText).trim(), await readBody(res), res.headers);
    }
    switch (call.responseKind) {
      case "none":
        await res.body?.cancel();
        return undefined as T;
      case "text":
        return (await res.text()) as T;
      case "blob":
        return (await res.blob()) as T;
    }
    const text = await res.text();
    if (text === "") {
      return undefined as T;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(res.status, "the response is not valid JSON", text, res.headers);
    }
  }
`

var tsReadme = template.Must(template.New("README.md").Parse(`# {{.Name}}: TypeScript SDK

A typed, fetch-based TypeScript client for the {{.Name}} API, generated by Tollgate from the
API's OpenAPI document (version {{.APIVersion}}). No dependencies; it runs wherever ` + "`fetch`" + `
does (browsers, Node 18+, Deno, Bun).

- SDK version: ` + "`{{.Version}}`" + ` (also in ` + "`VERSION` and `SDK_VERSION`" + `; npm version ` + "`{{.NpmVersion}}`" + `)
- Gateway: {{.BaseURL}}
- ` + "`CHECKSUM.sha256`" + ` lists the SHA-256 of every file (` + "`sha256sum -c CHECKSUM.sha256`" + `).

## Install

Copy ` + "`index.ts`" + ` into your project, or build the package (TypeScript {{.TypeScript}}):

` + "```sh" + `
npm install && npm run build   # writes dist/index.js and dist/index.d.ts
` + "```" + `

## Use

` + "```ts" + `
import { Client, ApiError } from "{{.Package}}";

const client = new Client({ apiKey: process.env.API_KEY });
{{- with index .Methods 0}}
try {
  const result = await client.{{.Name}}(/* arguments */);
  console.log(result);
} catch (err) {
  if (err instanceof ApiError) {
    console.error(err.status, err.body); // 401 without a valid key, 429 over your plan's rate
  }
}
{{- end}}
` + "```" + `

The client calls {{.BaseURL}}; pass ` + "`baseUrl`" + ` for another address and ` + "`fetch`" + ` for your own
implementation. Path parameters are arguments; then the JSON body; then query parameters and
header parameters as objects; last, ` + "`{ headers, signal }`" + ` for one request. Query arrays are
sent as repeated keys.

## Operations
{{range .Methods}}
- ` + "`{{.Name}}`" + `: ` + "`{{.Method}} {{.Path}}`" + `
{{- end}}
`))
