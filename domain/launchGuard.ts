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

/**
 * A value hit is the redactor's: the guard refuses exactly what the redactor would mask (domain/redaction:
 * the value, its lines and every encoded form it knows), so the two never disagree about what counts as a
 * managed value. One redactor per managed value, so a refusal can name the secret; cached per policy array
 * because the launcher checks the same policy at every launch of a sandbox.
 */
const redactorCache = new WeakMap<readonly ManagedValue[], (Redactor | undefined)[]>();

function redactorsFor(managed: readonly ManagedValue[]): (Redactor | undefined)[] {
  let redactors = redactorCache.get(managed);
  if (!redactors) {
    // The vault refuses values below the minimum; a shorter one given here is still looked for, at its length.
    redactors = managed.map((m) => {
      const bytes = utf8Length(m.value);
      return bytes === 0 ? undefined : createRedactor([m], { minLength: Math.min(bytes, MIN_SECRET_BYTES) });
    });
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
  return checkValues(env, policy);
}

/**
 * The value half of the guard, for what has no env name: a command's arguments (keyed `argv[i]`) and a
 * sandbox's template files (keyed `file <path>`). Arguments are readable by every process that can list
 * the command, and template files by the agent, so a managed value may not travel in either.
 */
export function checkValues(entries: Readonly<Record<string, string>>, policy: GuardPolicy): GuardDecision {
  const redactors = redactorsFor(policy.managedValues);
  for (const [key, value] of Object.entries(entries)) {
    const hit = redactors.findIndex((redactor) => redactor?.matches(value) === true);
    const managed = policy.managedValues[hit];
    if (managed) return { ok: false, offendingKey: key, reason: 'value-matches-secret', secretName: managed.name };
  }
  return { ok: true };
}

/**
 * The request-time check of what a RunSpec would pass as values (the launcher and the host check them again):
 * its template files and every command's arguments, keyed by where they are (`install[0].command[2]`).
 */
export function checkRunSpecValues(spec: Pick<RunSpec, 'template' | 'install' | 'mcp' | 'turns'>, policy: GuardPolicy): GuardDecision {
  const entries: Record<string, string> = templateFileEntries(spec.template.files);
  const commands: [string, readonly string[]][] = [
    ...(spec.install ?? []).map((step, i): [string, readonly string[]] => [`install[${i}].command`, step.command]),
    ...(spec.mcp ?? []).map((server, i): [string, readonly string[]] => [`mcp[${i}].command`, server.command]),
    ...spec.turns.map((turn, i): [string, readonly string[]] => [`turns[${i}].command`, turn.command]),
  ];
  for (const [where, argv] of commands) argv.forEach((arg, j) => (entries[`${where}[${j}]`] = arg));
  return checkValues(entries, policy);
}

export const argvEntries = (argv: readonly string[]): Record<string, string> => Object.fromEntries(argv.map((arg, i) => [`argv[${i}]`, arg]));
export const templateFileEntries = (files: Readonly<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(Object.entries(files).map(([name, content]) => [`file ${name}`, content]));

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
      return `${/^(argv\[|file |install\[|mcp\[|turns\[)/.test(refusal.offendingKey) ? '' : 'standing env var '}${refusal.offendingKey} is refused: its value equals, contains or encodes workspace secret ${refusal.secretName ?? 'a managed value'}`;
  }
}
