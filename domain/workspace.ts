import type { AccessDeniedEvent } from './accessDenial';
import { normalizeEgressHosts } from './egress';
import { DomainError, assertNever } from './errors';
import type { DomainEvent } from './events';
import { DEFAULT_RETENTION_DAYS, IDENTITY_ERROR, MAX_RETENTION_DAYS, MEMBER_ERROR, MIN_RETENTION_DAYS, VAULT_ERROR, WORKSPACE_ERROR } from './catalogue';
import { type IdentityUses, type WorkloadIdentity, identityIn, sameDefinition } from './workloadIdentity';

export type Role = 'owner' | 'member';

export { DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, MIN_RETENTION_DAYS };

export type WorkspaceEvent =
  /** `retentionDays`: the soft-delete retention the creator chose (absent: chosen at deletion, as before it existed). */
  | DomainEvent<'WorkspaceCreated', { workspaceId: string; name: string; owner: string; retentionDays?: number }>
  | DomainEvent<'MemberAdded', { userId: string; role: Role }>
  | DomainEvent<'MemberRemoved', { userId: string }>
  /**
   * The workspace's vault by name (a random Key Vault name, or the Table vault's label) and, for a Key Vault, the
   * resource group it was placed in (absent in events older than sharding: the deployment's default group).
   * The first one recorded stands; a later one is taken only with `replaces` naming the recorded name, when Azure
   * refused that name as taken (Key Vault names are global) before any vault of ours existed under it.
   */
  | DomainEvent<'VaultProvisioned', { vault: string; resourceGroup?: string; replaces?: string }>
  | DomainEvent<'WorkspaceDeletionRequested', { retentionDays: number; purgeAfter: string }>
  | DomainEvent<'VaultSoftDeleted', { vault: string }>
  | DomainEvent<'WorkspaceDeleted', { sealedUntil: string }>
  | DomainEvent<'WorkspaceRecovered', Record<string, never>>
  | DomainEvent<'VaultPurged', { vault: string }>
  /** Recorded here before each denial got a stream of its own (domain/accessDenial.ts); old logs still hold them. */
  | AccessDeniedEvent
  /** The owner's egress allow-list for the workspace's sandboxes (domain/egress.ts), replacing the previous one. */
  | DomainEvent<'EgressAllowListSet', { allowedHosts: readonly string[] }>
  /** An owner defined or redefined a workload identity (docs/identity.md); runs ask for tokens of it. */
  | DomainEvent<'IdentityDefined', { name: string; subject: string; audience: string; uses: IdentityUses }>
  | DomainEvent<'IdentityDeleted', { name: string }>
  /**
   * A projection row read for a decision did not match the log (a forged MAC, or a row older than its stream);
   * the decision used the state folded from the log instead, and the row was rewritten from it.
   */
  | DomainEvent<'ProjectionMismatchDetected', { projection: string; found: ProjectionFault; streamId: string; streamVersion: number }>;

/** How a projection row failed its check: `forged` (its MAC does not hold) or `stale` (its stream moved on). */
export type ProjectionFault = 'forged' | 'stale';

export type WorkspaceStatus = 'None' | 'Active' | 'Deleting' | 'Deleted' | 'Purged';

export interface WorkspaceState {
  readonly status: WorkspaceStatus;
  readonly workspaceId: string;
  readonly name: string;
  readonly members: Readonly<Record<string, Role>>;
  readonly vault?: string;
  /** The Key Vault's resource group as recorded; absent: the default group (or the Table vault). */
  readonly vaultResourceGroup?: string;
  readonly vaultSoftDeleted: boolean;
  readonly purgeAfter?: string;
  readonly retentionDays?: number;
  /**
   * The retention fixed when the workspace was created: a Key Vault's soft-delete retention cannot change after
   * the vault exists, so its vault is created with it and a deletion uses it. Absent for older workspaces.
   */
  readonly vaultRetentionDays?: number;
  /** Where sandboxes may connect through the egress proxy; empty (nothing) until an owner sets it. */
  readonly egressAllowedHosts: readonly string[];
  /** Workload identities by name; absent in states folded before identities existed. */
  readonly identities?: Readonly<Record<string, WorkloadIdentity>>;
}

export type WorkspaceCommand =
  | { type: 'CreateWorkspace'; workspaceId: string; name: string; owner: string; retentionDays?: number }
  | { type: 'SetMember'; actor: string; userId: string; role: Role }
  | { type: 'RemoveMember'; actor: string; userId: string }
  /** `replaces`: the recorded name Azure refused as taken; without it, nothing is recorded once a name exists. */
  | { type: 'RecordVaultProvisioned'; vault: string; resourceGroup?: string; replaces?: string }
  /** `retentionDays` absent: the workspace's own (fixed at creation), else the default. */
  | { type: 'RequestDeletion'; actor: string; retentionDays?: number; now: string }
  | { type: 'RecordVaultSoftDeleted' }
  | { type: 'CompleteDeletion' }
  | { type: 'Recover'; actor: string; now: string }
  | { type: 'Purge'; now: string }
  | { type: 'SetEgressAllowList'; actor: string; allowedHosts: readonly string[] }
  | { type: 'DefineIdentity'; actor: string; name: string; subject: string; audience: string; uses: IdentityUses }
  | { type: 'DeleteIdentity'; actor: string; name: string }
  | { type: 'RecordProjectionMismatch'; projection: string; found: ProjectionFault; streamId: string; streamVersion: number };

/**
 * A user's role, from the members' own entries only: a user id such as `constructor`, `toString` or `__proto__`
 * would otherwise find Object.prototype's members and pass for a member of every workspace.
 */
export function roleIn(members: Readonly<Record<string, Role>>, userId: string): Role | undefined {
  return Object.prototype.hasOwnProperty.call(members, userId) ? members[userId] : undefined;
}
export function initialWorkspaceState(): WorkspaceState {
  return { status: 'None', workspaceId: '', name: '', members: {}, vaultSoftDeleted: false, egressAllowedHosts: [] };
}

export function evolveWorkspace(state: WorkspaceState, event: WorkspaceEvent & { meta?: { at: string; actor: string } }): WorkspaceState {
  switch (event.type) {
    case 'WorkspaceCreated':
      return {
        ...state,
        status: 'Active',
        workspaceId: event.data.workspaceId,
        name: event.data.name,
        members: { [event.data.owner]: 'owner' },
        ...(event.data.retentionDays !== undefined ? { vaultRetentionDays: event.data.retentionDays } : {}),
      };
    case 'MemberAdded':
      return { ...state, members: { ...state.members, [event.data.userId]: event.data.role } };
    case 'MemberRemoved': {
      const { [event.data.userId]: _removed, ...rest } = state.members;
      return { ...state, members: rest };
    }
    case 'VaultProvisioned': {
      const { vaultResourceGroup: _previous, ...rest } = state;
      return { ...rest, vault: event.data.vault, ...(event.data.resourceGroup !== undefined ? { vaultResourceGroup: event.data.resourceGroup } : {}) };
    }
    case 'WorkspaceDeletionRequested':
      return { ...state, status: 'Deleting', purgeAfter: event.data.purgeAfter, retentionDays: event.data.retentionDays };
    case 'VaultSoftDeleted':
      return { ...state, vaultSoftDeleted: true };
    case 'WorkspaceDeleted':
      return { ...state, status: 'Deleted' };
    case 'WorkspaceRecovered': {
      const { purgeAfter: _gone, retentionDays: _days, ...rest } = state;
      return { ...rest, status: 'Active', vaultSoftDeleted: false };
    }
    case 'VaultPurged':
      return { ...state, status: 'Purged' };
    case 'EgressAllowListSet':
      return { ...state, egressAllowedHosts: event.data.allowedHosts };
    case 'IdentityDefined': {
      const { name, subject, audience, uses } = event.data;
      const identity: WorkloadIdentity = { name, subject, audience, uses, updatedAt: event.meta?.at ?? '', updatedBy: event.meta?.actor ?? '' };
      return { ...state, identities: { ...state.identities, [name]: identity } };
    }
    case 'IdentityDeleted': {
      const { [event.data.name]: _deleted, ...rest } = state.identities ?? {};
      return { ...state, identities: rest };
    }
    case 'AccessDenied':
    case 'ProjectionMismatchDetected':
      return state;
    default:
      return assertNever(event, 'workspace event');
  }
}

export function roleOf(state: WorkspaceState, userId: string): Role | undefined {
  return state.status === 'Active' ? roleIn(state.members, userId) : undefined;
}

function requireActive(state: WorkspaceState): void {
  if (state.status === 'None') throw new DomainError(WORKSPACE_ERROR.NOT_FOUND, 'Workspace not found', 'not_found');
  if (state.status !== 'Active')
    throw new DomainError(WORKSPACE_ERROR.DELETED, 'Workspace is deleted or being deleted', 'not_found');
}

function requireOwner(state: WorkspaceState, actor: string): void {
  requireActive(state);
  const role = roleIn(state.members, actor);
  if (role === undefined) throw new DomainError(WORKSPACE_ERROR.NOT_FOUND, 'Workspace not found', 'not_found');
  if (role !== 'owner') throw new DomainError(WORKSPACE_ERROR.OWNER_REQUIRED, 'Only an owner may do this', 'forbidden');
}

function assertRetention(retentionDays: number): void {
  if (!Number.isInteger(retentionDays) || retentionDays < MIN_RETENTION_DAYS || retentionDays > MAX_RETENTION_DAYS)
    throw new DomainError(WORKSPACE_ERROR.RETENTION_OUT_OF_RANGE, `Retention must be ${MIN_RETENTION_DAYS} to ${MAX_RETENTION_DAYS} days`, 'invalid');
}

function ownerCount(members: Readonly<Record<string, Role>>): number {
  return Object.values(members).filter((r) => r === 'owner').length;
}

export function decideWorkspace(command: WorkspaceCommand, state: WorkspaceState): WorkspaceEvent[] {
  switch (command.type) {
    case 'CreateWorkspace':
      if (state.status !== 'None')
        throw new DomainError(WORKSPACE_ERROR.ALREADY_EXISTS, 'Workspace already exists', 'conflict');
      if (command.retentionDays !== undefined) assertRetention(command.retentionDays);
      return [
        {
          type: 'WorkspaceCreated',
          data: { workspaceId: command.workspaceId, name: command.name, owner: command.owner, ...(command.retentionDays !== undefined ? { retentionDays: command.retentionDays } : {}) },
        },
      ];
    case 'SetMember': {
      requireOwner(state, command.actor);
      if (roleIn(state.members, command.userId) === command.role) return [];
      if (roleIn(state.members, command.userId) === 'owner' && command.role !== 'owner' && ownerCount(state.members) === 1)
        throw new DomainError(WORKSPACE_ERROR.LAST_OWNER, 'A workspace keeps at least one owner', 'conflict');
      return [{ type: 'MemberAdded', data: { userId: command.userId, role: command.role } }];
    }
    case 'RemoveMember': {
      requireOwner(state, command.actor);
      const role = roleIn(state.members, command.userId);
      if (role === undefined) throw new DomainError(MEMBER_ERROR.NOT_FOUND, 'No such member', 'not_found');
      if (role === 'owner' && ownerCount(state.members) === 1)
        throw new DomainError(WORKSPACE_ERROR.LAST_OWNER, 'A workspace keeps at least one owner', 'conflict');
      return [{ type: 'MemberRemoved', data: { userId: command.userId } }];
    }
    case 'RecordVaultProvisioned':
      requireActive(state);
      // The first name recorded is the vault's: a racing instance's proposal loses to it. A replacement of a taken
      // name is taken only while that name is still the recorded one, so racing replacements also agree on one.
      if (state.vault !== command.replaces) return [];
      if (command.replaces !== undefined && command.replaces === command.vault) return [];
      return [
        {
          type: 'VaultProvisioned',
          data: {
            vault: command.vault,
            ...(command.resourceGroup !== undefined ? { resourceGroup: command.resourceGroup } : {}),
            ...(command.replaces !== undefined ? { replaces: command.replaces } : {}),
          },
        },
      ];
    case 'RequestDeletion': {
      requireOwner(state, command.actor);
      const fixed = state.vaultRetentionDays;
      const retentionDays = command.retentionDays ?? fixed ?? DEFAULT_RETENTION_DAYS;
      assertRetention(retentionDays);
      // The vault was created with the workspace's retention; a deletion promising another would not be kept.
      if (fixed !== undefined && retentionDays !== fixed)
        throw new DomainError(WORKSPACE_ERROR.RETENTION_OUT_OF_RANGE, `This workspace's retention was fixed at ${fixed} days when it was created`, 'invalid');
      const purgeAfter = new Date(Date.parse(command.now) + retentionDays * 86_400_000).toISOString();
      return [{ type: 'WorkspaceDeletionRequested', data: { retentionDays, purgeAfter } }];
    }
    case 'RecordVaultSoftDeleted':
      if (state.status !== 'Deleting')
        throw new DomainError(WORKSPACE_ERROR.NOT_DELETING, 'Workspace is not being deleted', 'precondition');
      if (state.vaultSoftDeleted) return [];
      return [{ type: 'VaultSoftDeleted', data: { vault: state.vault ?? 'none' } }];
    case 'CompleteDeletion':
      if (state.status === 'Deleted') return [];
      if (state.status !== 'Deleting')
        throw new DomainError(WORKSPACE_ERROR.NOT_DELETING, 'Workspace is not being deleted', 'precondition');
      return [{ type: 'WorkspaceDeleted', data: { sealedUntil: state.purgeAfter ?? '' } }];
    case 'Recover':
      if (state.status !== 'Deleted' && state.status !== 'Deleting')
        throw new DomainError(WORKSPACE_ERROR.NOT_DELETED, 'Only a deleted workspace can be recovered', 'conflict');
      if (roleIn(state.members, command.actor) !== 'owner')
        throw new DomainError(WORKSPACE_ERROR.NOT_FOUND, 'Workspace not found', 'not_found');
      if (state.purgeAfter !== undefined && Date.parse(command.now) >= Date.parse(state.purgeAfter))
        throw new DomainError(WORKSPACE_ERROR.RETENTION_ENDED, 'Retention has ended; the workspace is gone', 'conflict');
      return [{ type: 'WorkspaceRecovered', data: {} }];
    case 'Purge':
      if (state.status === 'Purged') return [];
      if (state.status !== 'Deleted')
        throw new DomainError(WORKSPACE_ERROR.NOT_DELETED, 'Only a deleted workspace can be purged', 'conflict');
      if (state.purgeAfter === undefined || Date.parse(command.now) < Date.parse(state.purgeAfter))
        throw new DomainError(
          VAULT_ERROR.PURGE_PROTECTED,
          'Purge protection: retention has not ended',
          'conflict',
        );
      return [{ type: 'VaultPurged', data: { vault: state.vault ?? 'none' } }];
    case 'SetEgressAllowList': {
      requireOwner(state, command.actor);
      const allowedHosts = normalizeEgressHosts(command.allowedHosts);
      if (allowedHosts.join('\n') === state.egressAllowedHosts.join('\n')) return [];
      return [{ type: 'EgressAllowListSet', data: { allowedHosts } }];
    }
    case 'DefineIdentity': {
      requireOwner(state, command.actor);
      const { name, subject, audience, uses } = command;
      if (sameDefinition(identityIn(state.identities ?? {}, name), { subject, audience, uses })) return [];
      return [{ type: 'IdentityDefined', data: { name, subject, audience, uses } }];
    }
    case 'DeleteIdentity':
      requireOwner(state, command.actor);
      if (!identityIn(state.identities ?? {}, command.name)) throw new DomainError(IDENTITY_ERROR.NOT_FOUND, `No identity named ${command.name}`, 'not_found');
      return [{ type: 'IdentityDeleted', data: { name: command.name } }];
    case 'RecordProjectionMismatch':
      // Nothing to chain it to: no log yet, or a sealed one (the reader still decided on the folded state).
      if (state.status === 'None' || state.status === 'Deleted' || state.status === 'Purged') return [];
      return [
        {
          type: 'ProjectionMismatchDetected',
          data: { projection: command.projection, found: command.found, streamId: command.streamId, streamVersion: command.streamVersion },
        },
      ];
    default:
      return assertNever(command, 'workspace command');
  }
}

export const workspaceDecider = {
  initialState: initialWorkspaceState,
  evolve: evolveWorkspace,
  decide: decideWorkspace,
};

/** The workspace summary projection: what `GET /workspaces/{ws}` shows and what access and egress decide on. */
export interface WorkspaceSummaryView {
  readonly id: string;
  readonly name: string;
  readonly status: WorkspaceStatus;
  readonly members: readonly { readonly userId: string; readonly role: Role }[];
  readonly egress: { readonly allowedHosts: readonly string[] };
  readonly purgeAfter?: string;
}

export function workspaceSummary(state: WorkspaceState): WorkspaceSummaryView {
  return {
    id: state.workspaceId,
    name: state.name,
    status: state.status,
    members: Object.entries(state.members).map(([userId, role]) => ({ userId, role })),
    egress: { allowedHosts: [...state.egressAllowedHosts] },
    ...(state.purgeAfter ? { purgeAfter: state.purgeAfter } : {}),
  };
}

const WORKSPACE_STATUSES: readonly WorkspaceStatus[] = ['None', 'Active', 'Deleting', 'Deleted', 'Purged'];

/**
 * A stored summary row as its view: members that are not a user id with a role are left out, an unknown status
 * reads as `None` (no workspace), and a row written before the egress list existed holds none.
 */
export function workspaceSummaryFromRow(row: Readonly<Record<string, unknown>>): WorkspaceSummaryView {
  const members = Array.isArray(row.members) ? (row.members as readonly { userId?: unknown; role?: unknown }[]) : [];
  const egress = row.egress as { allowedHosts?: unknown } | undefined;
  const hosts = egress?.allowedHosts;
  return {
    id: String(row.id),
    name: String(row.name),
    status: WORKSPACE_STATUSES.find((status) => status === row.status) ?? 'None',
    members: members.flatMap((m) => (typeof m.userId === 'string' && (m.role === 'owner' || m.role === 'member') ? [{ userId: m.userId, role: m.role }] : [])),
    egress: { allowedHosts: Array.isArray(hosts) ? hosts.filter((h): h is string => typeof h === 'string') : [] },
    ...(typeof row.purgeAfter === 'string' ? { purgeAfter: row.purgeAfter } : {}),
  };
}
