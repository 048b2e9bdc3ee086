import { type CommandContext, type CommandResult, fold, handleCommand } from '../commandHandler';
import { DomainError } from '../errors';
import { HOST_ERROR } from '../catalogue';
import type { HostCredentials } from '../ports/hostCredentials';
import type { EventStore, ProjectionWrite } from '../ports/eventStore';
import {
  type HostMessageRefusal,
  type SandboxHostCommand,
  type SandboxHostEvent,
  type SandboxHostState,
  type SandboxHostView,
  sandboxHostDecider,
  sandboxHostView,
} from '../sandboxHosts';
import { projectionKeys, sandboxHostStreamId } from '../streams';
import { authorize } from './access';
import type { ServiceDependencies } from './dependencies';
import type { Caller } from './workspaceStream';

/**
 * Enrolment, credentials and revocation of the sandbox hosts a workspace brings (docs/sandbox-hosts.md). A token
 * or credential names its workspace and host in clear (`dpe_<ws>.<host>.<random>`), so the agent needs nothing else
 * and the platform finds the one stream to check it against; only the random part's holder can use it.
 */
export const ENROLMENT_TOKEN_PREFIX = 'dpe_';
export const HOST_CREDENTIAL_PREFIX = 'dph_';

export interface HostAddress {
  readonly workspaceId: string;
  readonly hostId: string;
}

/** The workspace and host a token or credential names, or undefined when it is not one. */
export function addressOf(value: string, prefix: string): HostAddress | undefined {
  if (!value.startsWith(prefix)) return undefined;
  const [workspaceId, hostId, random] = value.slice(prefix.length).split('.');
  if (!workspaceId || !hostId || !random || !/^[A-Za-z0-9_-]{1,64}$/.test(workspaceId) || !/^[A-Za-z0-9_-]{1,64}$/.test(hostId)) return undefined;
  return { workspaceId, hostId };
}

const projectHost = (state: SandboxHostState): readonly ProjectionWrite[] => [
  { kind: 'upsert', key: projectionKeys.host(state.hostId), value: { hostId: state.hostId, name: state.name, status: state.status } },
];

export function onSandboxHost(
  deps: CommandContext,
  address: HostAddress,
  command: SandboxHostCommand,
  by: Caller,
): Promise<CommandResult<SandboxHostState, SandboxHostEvent>> {
  return handleCommand(deps, {
    workspaceId: address.workspaceId,
    streamId: sandboxHostStreamId(address.workspaceId, address.hostId),
    decider: sandboxHostDecider,
    command,
    actor: by.actor,
    correlationId: by.correlationId,
    project: projectHost,
  });
}

export async function readSandboxHost(store: EventStore, address: HostAddress): Promise<SandboxHostState> {
  const stream = await store.readStream<SandboxHostEvent>(address.workspaceId, sandboxHostStreamId(address.workspaceId, address.hostId));
  return fold(sandboxHostDecider, stream.events);
}

/** An owner enrols a host: a new host id and a one-time enrolment token, shown once. */
export async function offerHostEnrolment(
  deps: ServiceDependencies,
  credentials: HostCredentials,
  caller: Caller,
  request: { workspaceId: string; name: string },
): Promise<{ hostId: string; enrolmentToken: string; expiresAt: string }> {
  await authorize(deps, { workspaceId: request.workspaceId, actor: caller.actor, action: 'hosts.enrol', requires: 'owner', correlationId: caller.correlationId });
  const hostId = deps.ids.next();
  const token = credentials.mint(`${ENROLMENT_TOKEN_PREFIX}${request.workspaceId}.${hostId}.`);
  const result = await onSandboxHost(deps, { workspaceId: request.workspaceId, hostId }, { type: 'OfferEnrolment', hostId, name: request.name, tokenHash: token.hash, now: deps.clock.now().toISOString() }, caller);
  return { hostId, enrolmentToken: token.value, expiresAt: result.state.expiresAt ?? '' };
}

const invalidToken = (): DomainError => new DomainError(HOST_ERROR.ENROLMENT_INVALID, 'The enrolment token is not valid (used, unknown or revoked)', 'forbidden');

/** The agent exchanges its enrolment token (once) for a host credential, shown once and recorded only hashed. */
export async function exchangeEnrolmentToken(
  deps: ServiceDependencies,
  credentials: HostCredentials,
  enrolmentToken: string,
): Promise<{ workspaceId: string; hostId: string; credential: string }> {
  const address = addressOf(enrolmentToken, ENROLMENT_TOKEN_PREFIX);
  if (!address) throw invalidToken();
  const credential = credentials.mint(`${HOST_CREDENTIAL_PREFIX}${address.workspaceId}.${address.hostId}.`);
  await onSandboxHost(deps, address, { type: 'Enrol', tokenHash: credentials.hash(enrolmentToken), credentialHash: credential.hash, now: deps.clock.now().toISOString() }, hostCaller(address));
  return { ...address, credential: credential.value };
}

const hostCaller = (address: HostAddress): Caller => ({ actor: `host:${address.hostId}`, correlationId: `host:${address.hostId}` });

const invalidCredential = (): DomainError => new DomainError(HOST_ERROR.CREDENTIAL_INVALID, 'The host credential is not valid', 'forbidden');

/** The host a credential belongs to, if it is that host's current one; records the connection. */
export async function authenticateHost(deps: ServiceDependencies, credentials: HostCredentials, credential: string): Promise<HostAddress & { name: string }> {
  const address = addressOf(credential, HOST_CREDENTIAL_PREFIX);
  if (!address) throw invalidCredential();
  const result = await onSandboxHost(deps, address, { type: 'RecordConnected', presentedHash: credentials.hash(credential) }, hostCaller(address)).catch((error: unknown) => {
    if (error instanceof DomainError && error.code === HOST_ERROR.NOT_FOUND) throw invalidCredential();
    throw error;
  });
  return { ...address, name: result.state.name };
}

/** The agent rotates its own credential: the old one stops working with this event. */
export async function rotateHostCredential(deps: ServiceDependencies, credentials: HostCredentials, credential: string): Promise<string> {
  const address = addressOf(credential, HOST_CREDENTIAL_PREFIX);
  if (!address) throw invalidCredential();
  const next = credentials.mint(`${HOST_CREDENTIAL_PREFIX}${address.workspaceId}.${address.hostId}.`);
  await onSandboxHost(deps, address, { type: 'RotateCredential', presentedHash: credentials.hash(credential), credentialHash: next.hash }, hostCaller(address));
  return next.value;
}

/** An owner revokes a host; the caller (infra) cuts its channel at once and fails its runs with the reason. */
export async function revokeHost(deps: ServiceDependencies, caller: Caller, address: HostAddress): Promise<string> {
  await authorize(deps, { workspaceId: address.workspaceId, actor: caller.actor, action: 'hosts.revoke', requires: 'owner', correlationId: caller.correlationId });
  const reason = `host revoked by ${caller.actor}`;
  const result = await onSandboxHost(deps, address, { type: 'RevokeHost', reason }, caller);
  return result.state.revokedReason ?? reason;
}

/** Members list the workspace's hosts (never a hash), with the live channel's last-seen time where it has one. */
export async function listSandboxHosts(
  deps: ServiceDependencies,
  caller: Caller,
  workspaceId: string,
  lastSeen: (hostId: string) => string | undefined,
): Promise<readonly SandboxHostView[]> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'hosts.list', requires: 'member', correlationId: caller.correlationId });
  const rows = await deps.store.listProjections(workspaceId, projectionKeys.hostPrefix);
  const states = await Promise.all(rows.map((row) => readSandboxHost(deps.store, { workspaceId, hostId: row.key.slice(projectionKeys.hostPrefix.length) })));
  return states
    .filter((state) => state.status !== 'None')
    .map((state) => sandboxHostView(state, lastSeen(state.hostId)))
    .sort((a, b) => a.name.localeCompare(b.name) || a.hostId.localeCompare(b.hostId));
}

/** A refused channel message, recorded on the host's stream (the host the authenticated channel belongs to). */
export async function recordHostMessageRefused(
  deps: CommandContext,
  address: HostAddress,
  refusal: { reason: HostMessageRefusal; messageType: string; runId?: string },
): Promise<void> {
  await onSandboxHost(deps, address, { type: 'RecordMessageRefused', ...refusal }, hostCaller(address));
}

