import { createRedactor, type Redactor } from './redaction';
import { utf8Length } from './redaction/bytes';
import type { RunSpec } from './runSpec';
import { MIN_SECRET_BYTES } from './secret';

/**
 * The launch guard (DESIGN.md §1.5): a pure decision over a *requested standing env*, that is every env var a
 * sandbox or command asks for other than lease deliveries. It refuses when a name is a workspace secret's
 * name or a well-known provider key name, or when a value equals, contains or encodes a managed value.
 * A refusal names the key and, for a value hit, the secret's name; it never carries a value.
 */

export type GuardReason = 'name-is-secret' | 'well-known-provider-key' | 'value-matches-secret' | 'reserved-name';

/**
 * Env var names that change how a process loads code, finds programs, trusts TLS or reaches the network, or
 * that the platform sets itself (git's config env, npm's config env, the gateway's). Neither a RunSpec's
 * standing env nor a lease's `as` may use them. A commit's author and committer are only names, so they stay free. Compared case-insensitively (`npm_config_*` is npm's own spelling).
 */
const RESERVED_ENV_NAME =
  /^(LD_.*|DYLD_.*|GIT_(?!(AUTHOR|COMMITTER)_(NAME|EMAIL|DATE)$).*|NPM_CONFIG_.*|YARN_.*|NODE_OPTIONS|NODE_PATH|NODE_EXTRA_CA_CERTS|NODE_TLS_REJECT_UNAUTHORIZED|NODE_REPL_EXTERNAL_MODULE|PATH|HOME|TMPDIR|SHELL|BASH_ENV|ENV|IFS|SHELLOPTS|BASHOPTS|PS4|PROMPT_COMMAND|PYTHONSTARTUP|PYTHONPATH|PYTHONHOME|PYTHONINSPECT|PERL5OPT|PERL5LIB|PERLLIB|RUBYOPT|RUBYLIB|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|JDK_JAVA_OPTIONS|SSL_CERT_FILE|SSL_CERT_DIR|CURL_CA_BUNDLE|REQUESTS_CA_BUNDLE|OPENSSL_CONF|SSLKEYLOGFILE|HTTP_PROXY|HTTPS_PROXY|ALL_PROXY|NO_PROXY|GATEWAY_URL|GATEWAY_TOKEN|DP_LAUNCH_TICKET)$/i;

export function isReservedEnvName(name: string): boolean {
  return RESERVED_ENV_NAME.test(name);
}

export type GuardDecision =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly offendingKey: string;
      readonly reason: GuardReason;
      /** For `name-is-secret` and `value-matches-secret`: which workspace secret, by name. */
      readonly secretName?: string;
    };

export type GuardRefusal = Extract<GuardDecision, { ok: false }>;

export interface ManagedValue {
  readonly name: string;
  readonly value: string;
}

export interface GuardPolicy {
  /** Names of the workspace's secrets (current ones; a deleted name is harmless but may be included). */
  readonly secretNames: readonly string[];
  /** Current values and previous values within the rotation window. */
  readonly managedValues: readonly ManagedValue[];
  /** Defaults to WELL_KNOWN_KEY_NAMES; compared case-insensitively. */
  readonly wellKnownKeyNames?: readonly string[];
}

/** Env var names under which provider SDKs and CLIs look for credentials (compared case-insensitively). */
export const WELL_KNOWN_KEY_NAMES: readonly string[] = [
  // model providers
  'OPENAI_API_KEY', 'OPENAI_ORG_ID', 'ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'CLAUDE_API_KEY',
  'AZURE_OPENAI_API_KEY', 'AZURE_OPENAI_KEY', 'AZURE_API_KEY', 'AZURE_CLIENT_SECRET', 'AZURE_STORAGE_KEY',
  'AZURE_STORAGE_CONNECTION_STRING', 'AZUREWEBJOBSSTORAGE', 'AZURE_STORAGE_SAS_TOKEN',
  'GOOGLE_API_KEY', 'GEMINI_API_KEY', 'GOOGLE_APPLICATION_CREDENTIALS', 'VERTEX_API_KEY',
  'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HUGGINGFACEHUB_API_TOKEN', 'COHERE_API_KEY', 'CO_API_KEY',
  'MISTRAL_API_KEY', 'GROQ_API_KEY', 'TOGETHER_API_KEY', 'FIREWORKS_API_KEY', 'DEEPSEEK_API_KEY',
  'PERPLEXITY_API_KEY', 'PPLX_API_KEY', 'XAI_API_KEY', 'OPENROUTER_API_KEY', 'REPLICATE_API_TOKEN',
  'VOYAGE_API_KEY', 'AI21_API_KEY', 'ELEVENLABS_API_KEY',
  // code hosts and registries
  'GH_TOKEN', 'GITHUB_TOKEN', 'GH_ENTERPRISE_TOKEN', 'GITHUB_ENTERPRISE_TOKEN', 'GITHUB_PAT',
  'GITLAB_TOKEN', 'GITLAB_PRIVATE_TOKEN', 'CI_JOB_TOKEN', 'BITBUCKET_TOKEN', 'BITBUCKET_APP_PASSWORD',
  'NPM_TOKEN', 'NODE_AUTH_TOKEN', 'NPM_CONFIG__AUTH', 'NPM_CONFIG__AUTHTOKEN', 'YARN_NPM_AUTH_TOKEN',
  'PYPI_TOKEN', 'TWINE_PASSWORD', 'CARGO_REGISTRY_TOKEN', 'GEM_HOST_API_KEY', 'NUGET_API_KEY',
  'DOCKER_PASSWORD', 'DOCKERHUB_TOKEN', 'CR_PAT',
  // clouds and platforms
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'DIGITALOCEAN_TOKEN',
  'CLOUDFLARE_API_TOKEN', 'CLOUDFLARE_API_KEY', 'HEROKU_API_KEY', 'VERCEL_TOKEN', 'NETLIFY_AUTH_TOKEN',
  'FLY_API_TOKEN', 'SUPABASE_SERVICE_ROLE_KEY', 'DATABASE_URL',
  // SaaS
  'SLACK_TOKEN', 'SLACK_BOT_TOKEN', 'SLACK_USER_TOKEN', 'SLACK_WEBHOOK_URL', 'STRIPE_SECRET_KEY',
  'STRIPE_API_KEY', 'TWILIO_AUTH_TOKEN', 'SENDGRID_API_KEY', 'MAILGUN_API_KEY', 'DATADOG_API_KEY',
  'DD_API_KEY', 'SENTRY_AUTH_TOKEN', 'LINEAR_API_KEY', 'NOTION_API_KEY', 'NOTION_TOKEN', 'JIRA_API_TOKEN',
  'ATLASSIAN_API_TOKEN', 'DISCORD_TOKEN', 'TELEGRAM_BOT_TOKEN', 'PINECONE_API_KEY', 'LANGCHAIN_API_KEY',
  'LANGSMITH_API_KEY', 'TAVILY_API_KEY', 'SERPAPI_API_KEY', 'BRAVE_API_KEY',
];

/** UTF-8 bytes without TextEncoder (the domain has no DOM or Node globals). */
function utf8(text: string): number[] {
  let encoded: string;
  try {
    encoded = encodeURIComponent(text);
  } catch {
    // A lone surrogate cannot be URI-encoded; its code units are still a usable pattern.
    return Array.from(text, (c) => c.charCodeAt(0) & 0xff);
  }
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    if (encoded[i] === '%') {
      bytes.push(parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(encoded.charCodeAt(i));
  }
  return bytes;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function base64(bytes: readonly number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const [a = 0, b = 0, c = 0] = [bytes[i], bytes[i + 1], bytes[i + 2]];
    const n = (a << 16) | (b << 8) | c;
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let k = 0; k < chars; k++) out += B64[(n >> (18 - 6 * k)) & 63];
  }
  return out;
}

/**
 * The base64 characters that depend only on the value's bytes, for each of the three alignments it can
 * have inside a longer encoded text (for example `Basic base64(user:token)`): the characters mixed with
 * neighbouring bytes at either end are dropped.
 */
function base64Cores(bytes: readonly number[]): string[] {
  const cores: string[] = [];
  for (const shift of [0, 1, 2]) {
    const encoded = base64([...new Array<number>(shift).fill(0), ...bytes]);
    const skip = [0, 2, 3][shift] ?? 0;
    const trailing = (shift + bytes.length) % 3 === 0 ? 0 : 1;
    cores.push(encoded.slice(skip, encoded.length - trailing));
  }
  return cores;
}

/** Forms compared exactly (case-sensitive) and forms compared case-insensitively (hex, percent-escapes). */
export function encodedForms(value: string): { exact: string[]; caseless: string[] } {
  const bytes = utf8(value);
  const cores = base64Cores(bytes);
  const exact = [value, JSON.stringify(value).slice(1, -1), ...cores, ...cores.map((c) => c.replace(/\+/g, '-').replace(/\//g, '_'))];
  const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  let uri = value;
  try {
    uri = encodeURIComponent(value);
  } catch {
    // keep the raw form only
  }
  const caseless = [uri.toLowerCase(), hex, escape(value).toLowerCase()];
  return { exact: [...new Set(exact)].filter((f) => f.length > 0), caseless: [...new Set(caseless)].filter((f) => f.length > 0) };
}

/** Whether `text` equals, contains or encodes `value` in any of the forms above. */
export function containsManagedValue(text: string, value: string): boolean {
  if (value.length === 0) return false;
  const { exact, caseless } = encodedForms(value);
  if (exact.some((form) => text.includes(form))) return true;
  const lower = text.toLowerCase();
  return caseless.some((form) => lower.includes(form));
}

/**
 * The redactor knows more encodings than `encodedForms` (XML, backslash escapes, more base64 variants), so a
 * value hit is either. One redactor per managed value, so a refusal can name the secret; cached per policy
 * array because the launcher checks the same policy at every launch of a sandbox.
 */
const redactorCache = new WeakMap<readonly ManagedValue[], (Redactor | undefined)[]>();

function redactorsFor(managed: readonly ManagedValue[]): (Redactor | undefined)[] {
  let redactors = redactorCache.get(managed);
  if (!redactors) {
    // Values the vault would refuse as too short are still caught by the forms above.
    redactors = managed.map((m) => (utf8Length(m.value) >= MIN_SECRET_BYTES ? createRedactor([m]) : undefined));
    redactorCache.set(managed, redactors);
  }
  return redactors;
}

/** Checks one requested standing env. Names are checked before values, keys in the order given. */
export function checkStandingEnv(env: Readonly<Record<string, string>>, policy: GuardPolicy): GuardDecision {
  const secretNames = new Map(policy.secretNames.map((n) => [n.toUpperCase(), n]));
  const wellKnown = new Set((policy.wellKnownKeyNames ?? WELL_KNOWN_KEY_NAMES).map((n) => n.toUpperCase()));
  for (const key of Object.keys(env)) {
    const secretName = secretNames.get(key.toUpperCase());
    if (secretName !== undefined) return { ok: false, offendingKey: key, reason: 'name-is-secret', secretName };
    if (wellKnown.has(key.toUpperCase())) return { ok: false, offendingKey: key, reason: 'well-known-provider-key' };
  }
  const redactors = redactorsFor(policy.managedValues);
  for (const [key, value] of Object.entries(env)) {
    const hit = policy.managedValues.findIndex((managed, i) => containsManagedValue(value, managed.value) || redactors[i]?.matches(value) === true);
    const managed = policy.managedValues[hit];
    if (managed) return { ok: false, offendingKey: key, reason: 'value-matches-secret', secretName: managed.name };
  }
  return { ok: true };
}

/**
 * The check `POST .../runs` makes before any orchestration exists, and the host again when it creates the
 * sandbox: the RunSpec's top-level `env`, which may also not use a reserved name.
 */
export function checkRunSpecEnv(spec: Pick<RunSpec, 'env'>, policy: GuardPolicy): GuardDecision {
  const env = spec.env ?? {};
  const reserved = Object.keys(env).find(isReservedEnvName);
  if (reserved !== undefined) return { ok: false, offendingKey: reserved, reason: 'reserved-name' };
  return checkStandingEnv(env, policy);
}

/** A sentence for errors and events: names the key (and the secret's name), never a value. */
export function describeRefusal(refusal: GuardRefusal): string {
  switch (refusal.reason) {
    case 'name-is-secret':
      return `standing env var ${refusal.offendingKey} is refused: it is the name of workspace secret ${refusal.secretName ?? refusal.offendingKey}; request it as a lease`;
    case 'well-known-provider-key':
      return `standing env var ${refusal.offendingKey} is refused: it is a well-known provider key name; request it as a lease`;
    case 'reserved-name':
      return `standing env var ${refusal.offendingKey} is refused: the name is reserved (it changes how processes load code, find programs or reach the network, or the platform sets it)`;
    case 'value-matches-secret':
      return `standing env var ${refusal.offendingKey} is refused: its value equals, contains or encodes workspace secret ${refusal.secretName ?? 'a managed value'}`;
  }
}
