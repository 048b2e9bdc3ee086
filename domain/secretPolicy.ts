import type { Channel, Phase } from './run';

/**
 * The secret policy of DESIGN.md §1.3-4 as data: per context, who may hold a credential and how. The answer
 * to "may a managed key be a standing env var of the sandbox?" is no in every context; a credential reaches
 * one process under a lease, through the narrowest channel its use allows.
 */
export type PolicyContext = Phase | 'sidecar';

/** Who may hold a lease in a context. */
export type LeaseHolder = 'install-command' | 'mcp-server' | 'agent-runtime' | 'operation';

export interface ContextPolicy {
  readonly context: PolicyContext;
  readonly whatHappens: string;
  /** Always false: the sandbox's standing env never carries a managed key. */
  readonly managedKeyAsStandingEnv: false;
  /** Which processes may hold a workspace credential, each its own lease in its own process. */
  readonly leaseHolders: readonly LeaseHolder[];
  /** What is allowed, in words, for the docs and for refusals. */
  readonly allowed: string;
  /** Only the platform's own sidecar holds platform secrets; a sandbox never does. */
  readonly platformSecrets: boolean;
}

export const SECRET_POLICY: Readonly<Record<PolicyContext, ContextPolicy>> = {
  seed: {
    context: 'seed',
    whatHappens: 'sandbox created from its template, before agent or gateway exist',
    managedKeyAsStandingEnv: false,
    leaseHolders: [],
    allowed: 'no credential at all',
    platformSecrets: false,
  },
  install: {
    context: 'install',
    whatHappens: 'dependencies installed inside the sandbox',
    managedKeyAsStandingEnv: false,
    leaseHolders: ['install-command'],
    allowed: 'a lease per install command, to that command process only, released when it exits',
    platformSecrets: false,
  },
  mcp: {
    context: 'mcp',
    whatHappens: "a connected tool's server cold-starts",
    managedKeyAsStandingEnv: false,
    leaseHolders: ['mcp-server'],
    allowed: "only that tool's own lease, in its own process, for that process's lifetime",
    platformSecrets: false,
  },
  turn: {
    context: 'turn',
    whatHappens: 'the agent runs, calls tools, returns',
    managedKeyAsStandingEnv: false,
    leaseHolders: ['agent-runtime', 'operation'],
    allowed: 'the model key as the agent runtime process lease; otherwise only a lease for one operation',
    platformSecrets: false,
  },
  teardown: {
    context: 'teardown',
    whatHappens: 'processes stopped, disk removed',
    managedKeyAsStandingEnv: false,
    leaseHolders: [],
    allowed: 'no credential at all',
    platformSecrets: false,
  },
  sidecar: {
    context: 'sidecar',
    whatHappens: "the platform's own gateway and control plane",
    managedKeyAsStandingEnv: false,
    leaseHolders: [],
    allowed: "platform secrets, never the agent's or the workspace's",
    platformSecrets: true,
  },
};

export function policyFor(context: PolicyContext): ContextPolicy {
  return SECRET_POLICY[context];
}

/** Whether `holder` may hold a workspace credential lease in `context`. */
export function mayLease(context: PolicyContext, holder: LeaseHolder): boolean {
  return SECRET_POLICY[context].leaseHolders.includes(holder);
}

const CHANNEL_BY_USE: Readonly<Record<string, Channel>> = {
  git: 'git-credential-helper',
  npm: 'package-manager-config',
  file: 'temp-file',
  stdin: 'stdin',
  env: 'process-env',
};

/** The narrowest channel for a use; an unknown use (including a typo or a prototype key) is refused. */
export function channelFor(use: string): Channel {
  return Object.prototype.hasOwnProperty.call(CHANNEL_BY_USE, use) ? (CHANNEL_BY_USE[use] ?? 'refused') : 'refused';
}

/**
 * Appended to every authenticated install. npm reads the project's `.npmrc`, which the agent writes, and it
 * outranks the channel's `--userconfig`: a `proxy` there received the token, and `git` names a program the
 * credential process would run for a git dependency (whose own prepare step would run code too). Flags on the
 * command line outrank every config file, so these switch that off: no proxy (the platform's own env proxy
 * aside), TLS verified, no git dependencies at all, no log files.
 */
export const NPM_CREDENTIAL_FLAGS: readonly string[] = ['--no-proxy', '--no-https-proxy', '--strict-ssl', '--allow-git=none', '--git=false', '--logs-max=0'];
