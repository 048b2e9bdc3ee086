import { DomainError } from './errors';
import type { Channel } from './run';
import { NPM_CREDENTIAL_FLAGS } from './secretPolicy';
import { GATEWAY_ERROR } from './catalogue';

/**
 * The gateway's pure decisions (DESIGN.md §1 promise 8): where an operation may send a credential, and
 * what exactly it runs. The edge parses URLs into a `Destination`; nothing here does I/O.
 */

export type GitAction = 'clone' | 'fetch' | 'push';
export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type AuthScheme = 'Bearer' | 'token' | 'Basic' | 'raw';

/** Scheme, host and effective port of a URL, as the WHATWG URL parser normalised them. */
export interface Destination {
  readonly protocol: 'http' | 'https';
  /** Lower case; an IPv6 literal keeps its brackets, as `URL.hostname` gives it. */
  readonly hostname: string;
  /** The effective port: the URL's, or the scheme's default. */
  readonly port: number;
}

interface OperationBase {
  readonly secret: string;
  readonly destination: Destination;
  /** What the event log records: scheme, host and path, never a query. */
  readonly target: string;
}

export type GatewayOperation =
  | (OperationBase & { readonly kind: 'git'; readonly action: GitAction; readonly remote: string; readonly dir?: string; readonly ref?: string })
  | (OperationBase & {
      readonly kind: 'http';
      readonly method: HttpMethod;
      readonly url: string;
      readonly header: string;
      readonly scheme: AuthScheme;
      readonly headers: Readonly<Record<string, string>>;
      readonly body?: string;
    })
  | (OperationBase & {
      readonly kind: 'npm-install';
      readonly registry: string;
      readonly command: 'install' | 'ci';
      readonly args: readonly string[];
      readonly dir?: string;
    });

export const DEFAULT_PORTS: Readonly<Record<Destination['protocol'], number>> = { http: 80, https: 443 };

export { GATEWAY_ERROR };

function invalid(message: string): DomainError {
  return new DomainError(GATEWAY_ERROR.INVALID_OPERATION, message, 'invalid');
}

const ALLOWED_ENTRY = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/;

/**
 * Whether `destination` is one of `allowedHosts`: exact host match, case-insensitive, port-aware. An entry
 * without a port allows only the scheme's default port (`example.com` allows https://example.com, not
 * https://example.com:8443); no wildcards, no suffix matching; an empty list allows nowhere.
 */
export function hostAllowed(allowedHosts: readonly string[], destination: Destination): boolean {
  return allowedHosts.some((entry) => {
    const match = ALLOWED_ENTRY.exec(entry.trim());
    if (!match?.[1]) return false;
    const port = match[2] === undefined ? DEFAULT_PORTS[destination.protocol] : Number(match[2]);
    return match[1].toLowerCase() === destination.hostname.toLowerCase() && port === destination.port;
  });
}

/** `host[:port]` as a person writes it: the port only when it is not the scheme's default. */
export function describeHost(destination: Destination): string {
  return destination.port === DEFAULT_PORTS[destination.protocol] ? destination.hostname : `${destination.hostname}:${destination.port}`;
}

const SAFE_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._@+-]{0,254}$/;

/**
 * A directory inside the sandbox workspace: relative, `/`-separated, no `.`/`..` segments, no segment
 * starting with `-` (it would read as an option) or holding anything a shell or git would interpret.
 */
export function assertWorkspaceDir(dir: string): string {
  const segments = dir.split('/');
  if (dir.length > 1024 || segments.some((s) => !SAFE_SEGMENT.test(s) || s === '.' || s === '..'))
    throw invalid('dir must be a relative path inside the workspace (letters, digits, . _ @ + -; no "..")');
  return dir;
}

const GIT_REF = /^[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}$/;

function assertRefPart(part: string): void {
  if (!GIT_REF.test(part) || part.includes('..') || part.endsWith('.lock') || part.endsWith('/') || part.includes('//'))
    throw invalid('ref must be a branch or tag name, or src:dst of two (no leading "+", no "..")');
}

/** `main`, `HEAD:main`, `refs/tags/v1:refs/tags/v1`; never a forced (`+`) or deleting (`:dst`) refspec. */
export function assertGitRef(ref: string): string {
  const parts = ref.split(':');
  if (parts.length > 2) throw invalid('ref has more than one ":"');
  parts.forEach(assertRefPart);
  return ref;
}

/** The directory `git clone` creates when none is given: the remote path's last segment without `.git`. */
export function defaultCloneDir(remotePath: string): string {
  const last = remotePath.split('/').filter(Boolean).pop() ?? '';
  const name = last.endsWith('.git') ? last.slice(0, -4) : last;
  if (!SAFE_SEGMENT.test(name)) throw invalid('cannot derive a directory from the remote; give dir');
  return name;
}

/** The git command and its working directory (relative to the workspace; undefined = the workspace). */
export interface GitPlan {
  readonly argv: readonly string[];
  readonly cwd?: string;
  /**
   * For a clone: git runs in a private directory (nothing the agent writes while it runs can reach the new
   * repository's config), and what it made goes into this workspace directory afterwards (`.`: the root).
   */
  readonly handOverInto?: string;
}

/**
 * The exact git command for an operation. The remote is a full URL (never a configured remote name, which a
 * hostile `.git/config` could point elsewhere) and always follows `--` or a fixed position, never an option.
 */
export function planGit(op: Extract<GatewayOperation, { kind: 'git' }>, remotePath: string): GitPlan {
  switch (op.action) {
    case 'clone': {
      if (op.ref !== undefined) throw invalid('clone takes no ref');
      const dir = assertWorkspaceDir(op.dir ?? defaultCloneDir(remotePath));
      const slash = dir.lastIndexOf('/');
      return { argv: ['git', 'clone', '--quiet', '--', op.remote, dir.slice(slash + 1)], handOverInto: slash < 0 ? '.' : dir.slice(0, slash) };
    }
    case 'fetch':
      return { argv: ['git', 'fetch', '--quiet', op.remote, ...(op.ref !== undefined ? [assertGitRef(op.ref)] : [])], ...dirOf(op.dir) };
    case 'push':
      return { argv: ['git', 'push', '--quiet', op.remote, assertGitRef(op.ref ?? 'HEAD')], ...dirOf(op.dir) };
  }
}

function dirOf(dir: string | undefined): { cwd?: string } {
  return dir === undefined ? {} : { cwd: assertWorkspaceDir(dir) };
}

/** Flags an install through the gateway may carry; anything else (a config, a script, a registry) is refused. */
export const NPM_FLAGS: ReadonlySet<string> = new Set([
  '--no-audit', '--no-fund', '--save', '--no-save', '--save-dev', '-D', '--save-exact', '-E', '--save-optional', '-O',
  '--save-peer', '--omit=dev', '--omit=optional', '--omit=peer', '--include=dev', '--include=optional', '--include=peer',
  '--legacy-peer-deps', '--prefer-offline', '--prefer-online', '--no-package-lock', '--package-lock-only', '--production',
]);
/** `name` or `@scope/name`, optionally `@<version or range or tag>`: a package from the registry, nothing else. */
const NPM_SPEC = /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*(@[A-Za-z0-9.^~<>=*|_ +-]{1,100})?$/;


/** The npm command: only registry packages and allow-listed flags, so the install cannot leave the registry. */
export function planNpm(op: Extract<GatewayOperation, { kind: 'npm-install' }>): GitPlan {
  for (const arg of op.args) {
    if (arg.startsWith('-')) {
      if (!NPM_FLAGS.has(arg)) throw invalid(`npm flag ${arg.split('=')[0]} is not allowed through the gateway`);
    } else if (op.command === 'ci') throw invalid('npm ci takes no package arguments');
    else if (!NPM_SPEC.test(arg)) throw invalid('npm arguments must be registry package names, optionally @version');
  }
  return { argv: ['npm', op.command, ...op.args, ...NPM_CREDENTIAL_FLAGS], ...dirOf(op.dir) };
}

/** The channel each kind uses: git and npm deliver into one sandbox process; http never enters the sandbox. */
export function channelOf(op: GatewayOperation): Channel {
  switch (op.kind) {
    case 'git':
      return 'git-credential-helper';
    case 'npm-install':
      return 'package-manager-config';
    case 'http':
      return 'gateway-header';
  }
}

/** The operation's name in events: `git:push`, `http:POST`, `npm-install:install`. */
export function operationName(op: GatewayOperation): string {
  switch (op.kind) {
    case 'git':
      return `git:${op.action}`;
    case 'http':
      return `http:${op.method}`;
    case 'npm-install':
      return `npm-install:${op.command}`;
  }
}

/** A lease lasts for the operation at most, and never beyond the run's deadline. */
export function leaseExpiry(nowIso: string, timeoutMs: number, deadlineIso: string): string {
  const end = Math.min(Date.parse(nowIso) + timeoutMs, Date.parse(deadlineIso));
  return new Date(end).toISOString();
}

/** The header value for a scheme. `Basic` expects the secret to be `user:password` and encodes it. */
export function authorizationValue(scheme: AuthScheme, value: string, base64: (text: string) => string): string {
  switch (scheme) {
    case 'Bearer':
      return `Bearer ${value}`;
    case 'token':
      return `token ${value}`;
    case 'Basic':
      return `Basic ${base64(value)}`;
    case 'raw':
      return value;
  }
}
