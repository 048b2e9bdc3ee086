import { describe, it, expect } from 'vitest';
import { workspaceDecider, type WorkspaceEvent, workspaceSummary, workspaceSummaryFromRow } from '../../domain/workspace';
import { accessDenialDecider } from '../../domain/accessDenial';
import { specFor } from '../support/decider';

const spec = specFor(workspaceDecider);
const denialSpec = specFor(accessDenialDecider);
const created: WorkspaceEvent = { type: 'WorkspaceCreated', data: { workspaceId: 'ws1', name: 'Acme', owner: 'alice' } };
const bobMember: WorkspaceEvent = { type: 'MemberAdded', data: { userId: 'bob', role: 'member' } };
const deletionRequested: WorkspaceEvent = {
  type: 'WorkspaceDeletionRequested',
  data: { retentionDays: 7, purgeAfter: '2026-01-08T00:00:00.000Z' },
};
const deleted: WorkspaceEvent = { type: 'WorkspaceDeleted', data: { sealedUntil: '2026-01-08T00:00:00.000Z' } };

describe('workspace decisions', () => {
  it('creates a workspace whose creator is its owner', () => {
    spec.given([]).when({ type: 'CreateWorkspace', workspaceId: 'ws1', name: 'Acme', owner: 'alice' }).then([created]);
    spec.given([created]).thenState((s) => expect(s.members).toEqual({ alice: 'owner' }));
  });
  it('refuses to create twice', () => {
    spec.given([created]).when({ type: 'CreateWorkspace', workspaceId: 'ws1', name: 'X', owner: 'bob' }).thenThrows('WORKSPACE.ALREADY_EXISTS');
  });
  it('lets an owner add, change and remove members', () => {
    spec.given([created]).when({ type: 'SetMember', actor: 'alice', userId: 'bob', role: 'member' }).then([bobMember]);
    spec.given([created, bobMember]).when({ type: 'SetMember', actor: 'alice', userId: 'bob', role: 'owner' })
      .then([{ type: 'MemberAdded', data: { userId: 'bob', role: 'owner' } }]);
    spec.given([created, bobMember]).when({ type: 'RemoveMember', actor: 'alice', userId: 'bob' })
      .then([{ type: 'MemberRemoved', data: { userId: 'bob' } }]);
  });
  it('setting the same role again changes nothing', () => {
    spec.given([created, bobMember]).when({ type: 'SetMember', actor: 'alice', userId: 'bob', role: 'member' }).then([]);
  });
  it('a member cannot manage members (403), an outsider does not see the workspace (404)', () => {
    spec.given([created, bobMember]).when({ type: 'SetMember', actor: 'bob', userId: 'carol', role: 'member' }).thenThrows('WORKSPACE.OWNER_REQUIRED');
    spec.given([created, bobMember]).when({ type: 'RemoveMember', actor: 'mallory', userId: 'bob' }).thenThrows('WORKSPACE.NOT_FOUND');
  });
  it('keeps at least one owner', () => {
    spec.given([created]).when({ type: 'RemoveMember', actor: 'alice', userId: 'alice' }).thenThrows('WORKSPACE.LAST_OWNER');
    spec.given([created]).when({ type: 'SetMember', actor: 'alice', userId: 'alice', role: 'member' }).thenThrows('WORKSPACE.LAST_OWNER');
  });
  it('removing a non-member is not found', () => {
    spec.given([created]).when({ type: 'RemoveMember', actor: 'alice', userId: 'nobody' }).thenThrows('MEMBER.NOT_FOUND');
  });
  it('records the vault once', () => {
    spec.given([created]).when({ type: 'RecordVaultProvisioned', vault: 'kv1' }).then([{ type: 'VaultProvisioned', data: { vault: 'kv1' } }]);
    spec.given([created, { type: 'VaultProvisioned', data: { vault: 'kv1' } }]).when({ type: 'RecordVaultProvisioned', vault: 'kv1' }).then([]);
    // A racing instance's proposal loses to the name already recorded: a vault's name never changes.
    spec.given([created, { type: 'VaultProvisioned', data: { vault: 'kv1' } }]).when({ type: 'RecordVaultProvisioned', vault: 'kv2' }).then([]);
    spec.given([created, { type: 'VaultProvisioned', data: { vault: 'kv1' } }]).thenState((s) => expect(s.vault).toBe('kv1'));
  });
  it('records the vault\'s resource group with its name; a record without one (older than sharding) names none', () => {
    const placed: WorkspaceEvent = { type: 'VaultProvisioned', data: { vault: 'kv1', resourceGroup: 'rg-vaults-01' } };
    spec.given([created]).when({ type: 'RecordVaultProvisioned', vault: 'kv1', resourceGroup: 'rg-vaults-01' }).then([placed]);
    spec.given([created, placed]).thenState((s) => expect([s.vault, s.vaultResourceGroup]).toEqual(['kv1', 'rg-vaults-01']));
    spec.given([created, { type: 'VaultProvisioned', data: { vault: 'kv1' } }]).thenState((s) => expect(s.vaultResourceGroup).toBeUndefined());
  });
  it('replaces a vault name Azure refused as taken only while that name is the recorded one', () => {
    const first: WorkspaceEvent = { type: 'VaultProvisioned', data: { vault: 'kv1', resourceGroup: 'rg-a' } };
    const second: WorkspaceEvent = { type: 'VaultProvisioned', data: { vault: 'kv2', resourceGroup: 'rg-a', replaces: 'kv1' } };
    spec.given([created, first]).when({ type: 'RecordVaultProvisioned', vault: 'kv2', resourceGroup: 'rg-a', replaces: 'kv1' }).then([second]);
    spec.given([created, first, second]).thenState((s) => expect([s.vault, s.vaultResourceGroup]).toEqual(['kv2', 'rg-a']));
    // A racing instance replacing kv1 too loses to the replacement already recorded.
    spec.given([created, first, second]).when({ type: 'RecordVaultProvisioned', vault: 'kv3', resourceGroup: 'rg-a', replaces: 'kv1' }).then([]);
    // Nothing to replace before a name exists, and a "replacement" by the same name is no change.
    spec.given([created]).when({ type: 'RecordVaultProvisioned', vault: 'kv2', replaces: 'kv1' }).then([]);
    spec.given([created, first]).when({ type: 'RecordVaultProvisioned', vault: 'kv1', replaces: 'kv1' }).then([]);
  });
  it('the retention (7-90 days) is chosen at creation, and a deletion uses it', () => {
    const withRetention: WorkspaceEvent = { type: 'WorkspaceCreated', data: { workspaceId: 'ws1', name: 'Acme', owner: 'alice', retentionDays: 14 } };
    spec.given([]).when({ type: 'CreateWorkspace', workspaceId: 'ws1', name: 'Acme', owner: 'alice', retentionDays: 14 }).then([withRetention]);
    for (const days of [6, 91, 7.5]) spec.given([]).when({ type: 'CreateWorkspace', workspaceId: 'ws1', name: 'Acme', owner: 'alice', retentionDays: days }).thenThrows('WORKSPACE.RETENTION_OUT_OF_RANGE');
    spec.given([withRetention]).thenState((s) => expect(s.vaultRetentionDays).toBe(14));
    const now = '2026-01-01T00:00:00.000Z';
    const after14: WorkspaceEvent = { type: 'WorkspaceDeletionRequested', data: { retentionDays: 14, purgeAfter: '2026-01-15T00:00:00.000Z' } };
    spec.given([withRetention]).when({ type: 'RequestDeletion', actor: 'alice', now }).then([after14]);
    spec.given([withRetention]).when({ type: 'RequestDeletion', actor: 'alice', retentionDays: 14, now }).then([after14]);
    // The vault was created with 14 days: a deletion promising 7 would not be kept by Key Vault.
    spec.given([withRetention]).when({ type: 'RequestDeletion', actor: 'alice', retentionDays: 7, now }).thenThrows('WORKSPACE.RETENTION_OUT_OF_RANGE');
    // A workspace that chose none: the deletion's own, else the default (90).
    spec.given([created]).when({ type: 'RequestDeletion', actor: 'alice', now }).then([{ type: 'WorkspaceDeletionRequested', data: { retentionDays: 90, purgeAfter: '2026-04-01T00:00:00.000Z' } }]);
  });
  it('deletion: owner only, retention within 7-90 days, purge after computed from now', () => {
    spec.given([created]).when({ type: 'RequestDeletion', actor: 'alice', retentionDays: 7, now: '2026-01-01T00:00:00.000Z' }).then([deletionRequested]);
    spec.given([created, bobMember]).when({ type: 'RequestDeletion', actor: 'bob', retentionDays: 7, now: '2026-01-01T00:00:00.000Z' }).thenThrows('WORKSPACE.OWNER_REQUIRED');
    for (const days of [6, 91, 7.5]) {
      spec.given([created]).when({ type: 'RequestDeletion', actor: 'alice', retentionDays: days, now: '2026-01-01T00:00:00.000Z' }).thenThrows('WORKSPACE.RETENTION_OUT_OF_RANGE');
    }
  });
  it('a deleting workspace refuses ordinary commands', () => {
    spec.given([created, deletionRequested]).when({ type: 'SetMember', actor: 'alice', userId: 'bob', role: 'member' }).thenThrows('WORKSPACE.DELETED');
    spec.given([created, deletionRequested]).when({ type: 'RequestDeletion', actor: 'alice', retentionDays: 7, now: '2026-01-02T00:00:00.000Z' }).thenThrows('WORKSPACE.DELETED');
  });
  it('soft-deletes the vault and completes deletion in order', () => {
    spec.given([created]).when({ type: 'RecordVaultSoftDeleted' }).thenThrows('WORKSPACE.NOT_DELETING');
    spec.given([created, deletionRequested]).when({ type: 'RecordVaultSoftDeleted' }).then([{ type: 'VaultSoftDeleted', data: { vault: 'none' } }]);
    spec.given([created]).when({ type: 'CompleteDeletion' }).thenThrows('WORKSPACE.NOT_DELETING');
    spec.given([created, deletionRequested]).when({ type: 'CompleteDeletion' }).then([deleted]);
    spec.given([created, deletionRequested, deleted]).when({ type: 'CompleteDeletion' }).then([]);
  });
  it('recovers within retention, by an owner only', () => {
    spec.given([created, deletionRequested, deleted]).when({ type: 'Recover', actor: 'alice', now: '2026-01-05T00:00:00.000Z' }).then([{ type: 'WorkspaceRecovered', data: {} }]);
    spec.given([created, deletionRequested, deleted]).when({ type: 'Recover', actor: 'alice', now: '2026-01-08T00:00:00.000Z' }).thenThrows('WORKSPACE.RETENTION_ENDED');
    spec.given([created, bobMember, deletionRequested, deleted]).when({ type: 'Recover', actor: 'bob', now: '2026-01-05T00:00:00.000Z' }).thenThrows('WORKSPACE.NOT_FOUND');
    spec.given([created]).when({ type: 'Recover', actor: 'alice', now: '2026-01-05T00:00:00.000Z' }).thenThrows('WORKSPACE.NOT_DELETED');
    spec.given([created, deletionRequested, deleted, { type: 'WorkspaceRecovered', data: {} }])
      .thenState((s) => expect(workspaceSummary(s)).toMatchObject({ status: 'Active', members: [{ userId: 'alice', role: 'owner' }] }));
  });
  it('a stored summary row reads back as its view; older rows hold no egress list, odd members and statuses read as nothing', () => {
    spec.given([created, bobMember]).thenState((s) => {
      const row = JSON.parse(JSON.stringify(workspaceSummary(s))) as Record<string, unknown>;
      expect(workspaceSummaryFromRow(row)).toEqual(workspaceSummary(s));
      const { egress: _absent, ...older } = row;
      expect(workspaceSummaryFromRow(older).egress).toEqual({ allowedHosts: [] });
      const odd = workspaceSummaryFromRow({ ...row, status: 'Thriving', members: [{ userId: 'eve', role: 'admin' }, { role: 'owner' }, 'x'] });
      expect(odd).toMatchObject({ status: 'None', members: [] });
    });
  });
  it('purges only after retention (purge protection)', () => {
    spec.given([created, deletionRequested, deleted]).when({ type: 'Purge', now: '2026-01-07T23:59:59.000Z' }).thenThrows('VAULT.PURGE_PROTECTED');
    spec.given([created, deletionRequested, deleted]).when({ type: 'Purge', now: '2026-01-08T00:00:00.000Z' }).then([{ type: 'VaultPurged', data: { vault: 'none' } }]);
    spec.given([created]).when({ type: 'Purge', now: '2027-01-01T00:00:00.000Z' }).thenThrows('WORKSPACE.NOT_DELETED');
  });
  it('folds the access denials old logs hold on the workspace stream without changing state', () => {
    const denied = { type: 'AccessDenied', data: { actor: 'mallory', action: 'GET /secrets', reason: 'not a member' } } as const;
    let before: unknown;
    spec.given([created]).thenState((state) => (before = state));
    spec.given([created, denied]).thenState((state) => expect(state).toEqual(before));
  });
  it('records a denial once, on a stream of its own', () => {
    const deny = { type: 'RecordAccessDenied', actor: 'mallory', action: 'GET /secrets', reason: 'not a member' } as const;
    const denied = { type: 'AccessDenied', data: { actor: 'mallory', action: 'GET /secrets', reason: 'not a member' } } as const;
    denialSpec.given([]).when(deny).then([denied]);
    denialSpec.given([denied]).when(deny).then([]);
  });
  it('commands on a workspace that does not exist are not found', () => {
    spec.given([]).when({ type: 'SetMember', actor: 'alice', userId: 'bob', role: 'member' }).thenThrows('WORKSPACE.NOT_FOUND');
  });
});
