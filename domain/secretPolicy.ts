import type { Channel, Phase } from './run';
import type { Role } from './workspace';
import { LEASE_ERROR, SECRET_ERROR } from './catalogue';
import type { Decision, RefusalCode } from './decision';

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

/**
 * What an owner lets a secret be used for (DESIGN.md §1.4). `model`, `mcp` and `command` hand the value to a
 * process whose code the RunSpec's author wrote, so whoever may write that command can read the value; the
 * owner decides who that may be. `git`, `npm` and `http` keep the value in a platform-run credential process
 * or the gateway, sent only to the secret's `allowedHosts`.
 */
export const SECRET_USE_KINDS = ['model', 'mcp', 'command', 'git', 'npm', 'http'] as const;
export type SecretUseKind = (typeof SECRET_USE_KINDS)[number];

/** Who may ask for a use: every member (owners included), owners only, or the named users (while members). */
export type UseAudience = 'members' | 'owners' | readonly string[];
export type SecretUses = Readonly<Partial<Record<SecretUseKind, UseAudience>>>;

/** A new secret, and one recorded before uses existed: only the uses that keep the value on the platform's side. */
export const DEFAULT_SECRET_USES: SecretUses = { git: 'members', npm: 'members', http: 'members' };

/** How a process or operation wants the credential: a RunSpec reference's `use`, or the gateway's `http`. */
export type LeaseDelivery = 'git' | 'npm' | 'file' | 'stdin' | 'env' | 'http';

/** One credential someone asks for: where in the run, which process holds it, how it is delivered. */
export interface LeaseAsk {
  readonly context: PolicyContext;
  readonly holder: LeaseHolder;
  /** Untrusted text from a RunSpec; anything but a `LeaseDelivery` is refused. */
  readonly delivery: string;
  readonly secretName: string;
}

/** The secret as its own log folds it: whether it exists and which uses its owner allows. */
export interface SecretUsePolicy {
  readonly exists: boolean;
  readonly uses: SecretUses;
}

/** The run's requester and the role they hold now (undefined: no longer a member). */
export interface LeaseRequester {
  readonly userId: string;
  readonly role: Role | undefined;
}

export const LEASE_REFUSAL = {
  HOLDER_NOT_ALLOWED: LEASE_ERROR.HOLDER_NOT_ALLOWED,
  NO_CHANNEL: LEASE_ERROR.NO_CHANNEL,
  SECRET_NOT_FOUND: LEASE_ERROR.SECRET_NOT_FOUND,
  USE_NOT_ALLOWED: SECRET_ERROR.USE_NOT_ALLOWED,
  USE_EXCLUDES_CALLER: SECRET_ERROR.USE_EXCLUDES_CALLER,
} as const;

/** A refusal names the use it checked once the delivery has one. */
export type LeaseDecision = Decision<{ readonly use: SecretUseKind; readonly channel: Channel }, RefusalCode<typeof LEASE_REFUSAL>, { readonly use?: SecretUseKind }>;

/** The use a delivery to a holder needs: the platform's own transports by name, a value handed over by who holds it. */
export function requiredUse(holder: LeaseHolder, delivery: string): SecretUseKind | undefined {
  if (delivery === 'git' || delivery === 'npm') return delivery;
  if (delivery === 'http') return holder === 'operation' ? 'http' : undefined;
  if (delivery !== 'env' && delivery !== 'file' && delivery !== 'stdin') return undefined;
  const byHolder: Readonly<Record<LeaseHolder, SecretUseKind | undefined>> = {
    'install-command': 'command',
    'mcp-server': 'mcp',
    'agent-runtime': 'model',
    operation: undefined,
  };
  return byHolder[holder];
}

/** Whether a use's audience admits the requester with the role they hold now (secrets' uses and identities' alike). */
export function useAdmits(audience: UseAudience, requester: LeaseRequester): boolean {
  if (requester.role === undefined) return false;
  if (audience === 'members') return true;
  if (audience === 'owners') return requester.role === 'owner';
  return audience.includes(requester.userId);
}

export function describeAudience(audience: UseAudience): string {
  if (audience === 'members') return 'members';
  if (audience === 'owners') return 'owners';
  return 'named members';
}

/** The uses a secret allows, read without trusting a prototype key as a use. */
export function allowedAudience(uses: SecretUses, use: SecretUseKind): UseAudience | undefined {
  return Object.prototype.hasOwnProperty.call(uses, use) ? uses[use] : undefined;
}

/**
 * The one lease decision, made when a run is requested and again at every lease: the context's table above
 * (who may hold a credential in this phase), the channel the delivery needs, and the use the secret's owner
 * allows, for this requester. A refusal names the secret and the use, never a value.
 */
export function decideLease(ask: LeaseAsk, secret: SecretUsePolicy, requester: LeaseRequester): LeaseDecision {
  const name = ask.secretName;
  if (!mayLease(ask.context, ask.holder))
    return { ok: false, code: LEASE_REFUSAL.HOLDER_NOT_ALLOWED, reason: `${name}: a ${ask.holder} may hold no credential in ${ask.context}` };
  const channel: Channel = ask.delivery === 'http' ? 'gateway-header' : channelFor(ask.delivery);
  const use = requiredUse(ask.holder, ask.delivery);
  if (channel === 'refused' || use === undefined)
    return { ok: false, code: LEASE_REFUSAL.NO_CHANNEL, reason: `${name}: use "${ask.delivery}" has no channel for a ${ask.holder}` };
  if (!secret.exists) return { ok: false, code: LEASE_REFUSAL.SECRET_NOT_FOUND, use, reason: `secret ${name} does not exist in this workspace` };
  const audience = allowedAudience(secret.uses, use);
  if (audience === undefined)
    return { ok: false, code: LEASE_REFUSAL.USE_NOT_ALLOWED, use, reason: `secret ${name} does not allow use "${use}"; an owner can allow it` };
  if (!useAdmits(audience, requester))
    return {
      ok: false,
      code: LEASE_REFUSAL.USE_EXCLUDES_CALLER,
      use,
      reason: `secret ${name} allows use "${use}" to ${describeAudience(audience)} only, which excludes ${requester.userId}`,
    };
  return { ok: true, use, channel };
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
