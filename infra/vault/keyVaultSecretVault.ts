import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import type { TokenCredential } from '@azure/core-auth';
import type { AdditionalPolicyConfig } from '@azure/core-client';
import { SecretClient, type SecretProperties } from '@azure/keyvault-secrets';
import { DomainError } from '../../domain/errors';
import type { Clock } from '../../domain/ports/clock';
import {
  VAULT_ERROR,
  assertRetentionDays,
  assertStorableSecret,
  secretNotFoundError,
  vaultDeletedError,
  type ResolvedSecret,
  type SecretMetadata,
  type SecretVault,
  type SecretWriteOptions,
  type SupersededSecret,
  type VaultStatus,
} from '../../domain/ports/secretVault';
import { assertValidSecretName } from '../../domain/secret';
import type { VaultDirectory } from '../../domain/ports/vaultDirectory';
import { fromTags, randomVaultName, secretNameOf, toKeyVaultName, toTags } from './keyVaultNaming';
import { guarded, sanitized, statusOf } from './vaultErrors';

/** A 404 about the secret, as opposed to one about the vault (deleted meanwhile) or the route. */
function isSecretNotFound(error: unknown): boolean {
  return statusOf(error) === 404 && (error as { code?: unknown }).code === 'SecretNotFound';
}

export interface KeyVaultSecretVaultOptions {
  /** DefaultAzureCredential in Azure; tests pass another TokenCredential. */
  readonly credential: TokenCredential;
  readonly subscriptionId: string;
  readonly tenantId: string;
  /**
   * The default vaults resource group: where a workspace whose record names no group has its vault (records
   * older than sharding), and the only group when `resourceGroups` is not given.
   */
  readonly resourceGroup: string;
  /**
   * Every vaults group a new vault may go to, in fill order (settings `WORKSPACE_VAULTS_RESOURCE_GROUPS`); each
   * holds the app's roles from the Bicep at group level. Default: `[resourceGroup]`.
   */
  readonly resourceGroups?: readonly string[];
  /**
   * Vaults per group before the next group is used (ARM allows 800 of a resource type per group; the default
   * 700 leaves room for recovered vaults, which return to their group, and for instances provisioning at once).
   */
  readonly vaultsPerGroup?: number;
  /** Fresh random names tried when Azure answers 409 VaultAlreadyExists (Key Vault names are global). */
  readonly nameAttempts?: number;
  readonly location: string;
  readonly clock: Clock;
  /** Each workspace's vault name and retention as its log records them (domain/services/vaultDirectory.ts). */
  readonly directory: VaultDirectory;
  /** Lower-case letters and digits, 1-10 characters; see `randomVaultName`. */
  readonly namePrefix?: string;
  /**
   * For a workspace that chose none at creation. Fixed at provisioning: Key Vault does not change a vault's
   * retention afterwards, so a workspace's own (WorkspaceCreated) wins.
   */
  readonly retentionDays?: number;
  readonly armEndpoint?: string;
  /** Extra pipeline policies for all three SDK clients (tests route them to the fake). */
  readonly additionalPolicies?: AdditionalPolicyConfig[];
  /**
   * Retries of a data-plane 403: the app's role on the vaults' resource group (one assignment, from the Bicep)
   * reaches a vault created a moment ago only after RBAC propagation, which Azure documents as up to minutes.
   */
  readonly forbiddenRetry?: { readonly attempts: number; readonly firstDelayMs: number; readonly maxDelayMs: number };
}

export const DEFAULT_VAULTS_PER_GROUP = 700;
export const DEFAULT_NAME_ATTEMPTS = 3;

/** ARM's answer when a vault name is in use anywhere in Azure, including a soft-deleted vault of another tenant. */
function isNameTaken(error: unknown): boolean {
  return statusOf(error) === 409 && (error as { code?: unknown }).code === 'VaultAlreadyExists';
}

/** A recorded vault with its group resolved: a record older than sharding means the default group. */
interface PlacedVault {
  readonly vault: string;
  readonly resourceGroup: string;
}

/** About 2.5 minutes in all (2, 4, 8, 16, 30, 30, 30, 30 s) before a 403 is taken to be a real refusal. */
export const DEFAULT_FORBIDDEN_RETRY = { attempts: 8, firstDelayMs: 2_000, maxDelayMs: 30_000 } as const;

/**
 * A Key Vault per workspace (DESIGN.md §1.1, §6), provisioned on the first `set` through ARM with soft delete,
 * purge protection and RBAC authorization on. Secret names map `_` to `-`; tags carry the domain version,
 * who set it and when. The vault's own soft delete is the workspace's soft delete; purge is refused by our
 * check before the vault's scheduled purge date (Azure would refuse it too).
 */
export class KeyVaultSecretVault implements SecretVault {
  private readonly arm: KeyVaultManagementClient;
  private readonly clients = new Map<string, SecretClient>();
  private readonly vaultUris = new Map<string, string>();
  private readonly retentionDays: number;
  private readonly groups: readonly string[];
  private readonly vaultsPerGroup: number;

  constructor(private readonly options: KeyVaultSecretVaultOptions) {
    this.retentionDays = options.retentionDays ?? 90;
    assertRetentionDays(this.retentionDays);
    this.groups = options.resourceGroups ?? [options.resourceGroup];
    if (this.groups.length === 0) throw new RangeError('resourceGroups needs at least one group');
    this.vaultsPerGroup = options.vaultsPerGroup ?? DEFAULT_VAULTS_PER_GROUP;
    if (!Number.isInteger(this.vaultsPerGroup) || this.vaultsPerGroup < 1 || this.vaultsPerGroup > 800)
      throw new RangeError('vaultsPerGroup is 1-800 (ARM allows 800 vaults per resource group)');
    this.arm = new KeyVaultManagementClient(options.credential, options.subscriptionId, {
      ...(options.armEndpoint ? { endpoint: options.armEndpoint } : {}),
      additionalPolicies: options.additionalPolicies ?? [],
    });
  }

  /** The workspace's vault name as its log records it; undefined before the first `set` (exposed for operations and tests). */
  async vaultName(workspaceId: string): Promise<string | undefined> {
    return (await this.options.directory.read(workspaceId)).vault;
  }

  /** The workspace's vault name and group as its log records them (exposed for operations and tests). */
  async vaultLocation(workspaceId: string): Promise<PlacedVault | undefined> {
    const recorded = await this.options.directory.read(workspaceId);
    return recorded.vault === undefined ? undefined : this.placed({ vault: recorded.vault, ...(recorded.resourceGroup !== undefined ? { resourceGroup: recorded.resourceGroup } : {}) });
  }

  async set(workspaceId: string, name: string, value: string, options: SecretWriteOptions): Promise<SecretMetadata> {
    assertStorableSecret(name, value, options);
    const client = await this.client(workspaceId, true);
    const kvName = toKeyVaultName(name);
    const updatedAt = this.options.clock.now().toISOString();
    const tags = toTags({ version: options.version, updatedBy: options.actor, updatedAt, allowedHosts: options.allowedHosts ?? [] });
    await this.data(workspaceId, 'set a secret', async () => {
      const current = await client.getSecret(kvName).catch((error: unknown) => {
        if (isSecretNotFound(error)) return undefined;
        throw error;
      });
      const storedVersion = current ? fromTags(current.properties.tags).version : 0;
      if (storedVersion > options.version)
        throw new DomainError(VAULT_ERROR.STALE_VERSION, `${name} is already at version ${storedVersion}`, 'conflict');
      try {
        await client.setSecret(kvName, value, { tags, contentType: 'text/plain' });
      } catch (error) {
        // A deleted name stays reserved (soft delete); recover it, then write the new version on top.
        if (statusOf(error) !== 409) throw error;
        await (await client.beginRecoverDeletedSecret(kvName, { intervalInMs: 1000 })).pollUntilDone();
        await client.setSecret(kvName, value, { tags, contentType: 'text/plain' });
      }
    });
    return { name, version: options.version, updatedAt, updatedBy: options.actor, allowedHosts: [...(options.allowedHosts ?? [])] };
  }

  async delete(workspaceId: string, name: string): Promise<void> {
    assertValidSecretName(name);
    const client = await this.client(workspaceId, false);
    if (!client) throw secretNotFoundError(name);
    await this.data(workspaceId, 'delete a secret', async () => {
      try {
        await (await client.beginDeleteSecret(toKeyVaultName(name), { intervalInMs: 1000 })).pollUntilDone();
      } catch (error) {
        throw isSecretNotFound(error) ? secretNotFoundError(name) : error;
      }
    });
  }

  async list(workspaceId: string): Promise<readonly SecretMetadata[]> {
    const client = await this.client(workspaceId, false);
    if (!client) return [];
    const out: SecretMetadata[] = [];
    await this.data(workspaceId, 'list secrets', async () => {
      for await (const properties of client.listPropertiesOfSecrets()) out.push(this.metadata(properties));
    });
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async resolve(workspaceId: string, name: string): Promise<ResolvedSecret> {
    assertValidSecretName(name);
    const client = await this.client(workspaceId, false);
    if (!client) throw secretNotFoundError(name);
    return this.data(workspaceId, 'resolve a secret', async () => {
      try {
        const secret = await client.getSecret(toKeyVaultName(name));
        return { value: secret.value ?? '', version: fromTags(secret.properties.tags).version };
      } catch (error) {
        throw isSecretNotFound(error) ? secretNotFoundError(name) : error;
      }
    });
  }

  async previousValues(workspaceId: string, since: Date): Promise<readonly SupersededSecret[]> {
    const client = await this.client(workspaceId, false);
    if (!client) return [];
    const cutoff = since.toISOString();
    // Deletion times come from Key Vault in whole seconds; compare at that precision so none slips out.
    const deletedCutoff = new Date(Math.floor(since.getTime() / 1000) * 1000);
    const out: SupersededSecret[] = [];
    await this.data(workspaceId, 'read previous values', async () => {
      for await (const current of client.listPropertiesOfSecrets()) {
        const versions: SecretProperties[] = [];
        for await (const version of client.listPropertiesOfSecretVersions(current.name)) versions.push(version);
        versions.sort((a, b) => fromTags(a.tags).version - fromTags(b.tags).version);
        for (let i = 0; i < versions.length - 1; i++) {
          const [older, newer] = [versions[i] as SecretProperties, versions[i + 1] as SecretProperties];
          const supersededAt = fromTags(newer.tags).updatedAt;
          if (supersededAt < cutoff || fromTags(older.tags).version === fromTags(newer.tags).version) continue;
          const secret = await client.getSecret(current.name, { version: older.version ?? '' });
          out.push({ name: secretNameOf(current.name), version: fromTags(older.tags).version, value: secret.value ?? '', supersededAt });
        }
      }
      for await (const deleted of client.listDeletedSecrets()) {
        if (!deleted.properties.deletedOn || deleted.properties.deletedOn < deletedCutoff) continue;
        const secret = await client.getDeletedSecret(deleted.name);
        out.push({
          name: secretNameOf(deleted.name),
          version: fromTags(secret.properties.tags).version,
          value: secret.value ?? '',
          supersededAt: deleted.properties.deletedOn.toISOString(),
        });
      }
    });
    return out.sort((a, b) => (a.supersededAt < b.supersededAt ? -1 : a.supersededAt > b.supersededAt ? 1 : 0));
  }

  async status(workspaceId: string): Promise<VaultStatus> {
    const at = await this.vaultLocation(workspaceId);
    if (at === undefined) return { state: 'absent' };
    const vault = await this.armGet('read the vault', () => this.arm.vaults.get(at.resourceGroup, at.vault));
    if (vault) return { state: 'active' };
    const deleted = await this.armGet('read the deleted vault', () => this.arm.vaults.getDeleted(at.vault, this.options.location));
    if (!deleted) return { state: 'absent' };
    return {
      state: 'deleted',
      deletedAt: deleted.properties?.deletionDate?.toISOString() ?? '',
      purgeAfter: deleted.properties?.scheduledPurgeDate?.toISOString() ?? '',
    };
  }

  async softDelete(workspaceId: string, options: { retentionDays: number; now: Date }): Promise<VaultStatus> {
    assertRetentionDays(options.retentionDays);
    const status = await this.status(workspaceId);
    if (status.state !== 'active') return status;
    const at = await this.recorded(workspaceId);
    await guarded('soft-delete the vault', () => this.arm.vaults.delete(at.resourceGroup, at.vault));
    this.forget(workspaceId);
    return this.status(workspaceId);
  }

  async recover(workspaceId: string): Promise<void> {
    const status = await this.status(workspaceId);
    if (status.state !== 'deleted')
      throw new DomainError(VAULT_ERROR.NOT_DELETED, `The vault of workspace ${workspaceId} is not deleted`, 'precondition');
    if (this.options.clock.now().toISOString() >= status.purgeAfter)
      throw new DomainError(VAULT_ERROR.RETENTION_ENDED, `The retention of workspace ${workspaceId}'s vault has ended`, 'precondition');
    const at = await this.recorded(workspaceId);
    await guarded('recover the vault', () =>
      this.arm.vaults.beginCreateOrUpdateAndWait(at.resourceGroup, at.vault, {
        location: this.options.location,
        properties: { tenantId: this.options.tenantId, sku: { family: 'A', name: 'standard' }, createMode: 'recover' },
      }),
    );
    this.forget(workspaceId);
  }

  async purge(workspaceId: string, now: Date): Promise<void> {
    const status = await this.status(workspaceId);
    if (status.state === 'absent') return;
    if (status.state !== 'deleted')
      throw new DomainError(VAULT_ERROR.NOT_DELETED, `The vault of workspace ${workspaceId} is not deleted`, 'precondition');
    if (now.toISOString() < status.purgeAfter)
      throw new DomainError(
        VAULT_ERROR.PURGE_PROTECTED,
        `The vault of workspace ${workspaceId} is purge-protected until ${status.purgeAfter}`,
        'precondition',
      );
    const { vault: name } = await this.recorded(workspaceId);
    await guarded('purge the vault', async () => {
      try {
        await this.arm.vaults.beginPurgeDeletedAndWait(name, this.options.location);
      } catch (error) {
        // Another purge took it between our status read and this call.
        if (statusOf(error) !== 404) throw error;
      }
    });
    this.forget(workspaceId);
  }

  private metadata(properties: SecretProperties): SecretMetadata {
    const tags = fromTags(properties.tags);
    return { name: secretNameOf(properties.name), version: tags.version, updatedAt: tags.updatedAt, updatedBy: tags.updatedBy, allowedHosts: tags.allowedHosts };
  }

  /** The workspace's SecretClient; provisions the vault when `provision`, undefined when there is none. */
  private async client(workspaceId: string, provision: true): Promise<SecretClient>;
  private async client(workspaceId: string, provision: false): Promise<SecretClient | undefined>;
  private async client(workspaceId: string, provision: boolean): Promise<SecretClient | undefined> {
    let uri = this.vaultUris.get(workspaceId);
    if (!uri) {
      let at = await this.vaultLocation(workspaceId);
      if (at === undefined && !provision) return undefined;
      // Recorded before it exists: two instances provisioning at once agree on the first name the log took.
      at ??= this.placed(await this.options.directory.claim(workspaceId, { vault: randomVaultName(this.options.namePrefix), resourceGroup: await this.groupWithRoom() }));
      uri = await this.existingOrCreated(workspaceId, at, provision);
      if (uri === undefined) return undefined;
      this.vaultUris.set(workspaceId, uri);
    }
    let client = this.clients.get(uri);
    if (!client) {
      client = new SecretClient(uri, this.options.credential, { additionalPolicies: this.options.additionalPolicies ?? [] });
      this.clients.set(uri, client);
    }
    return client;
  }

  /**
   * The URI of the recorded vault, creating it when `provision`. A name Azure refuses as taken (409
   * VaultAlreadyExists: a stranger's vault, live or soft-deleted, since names are global) is replaced by a fresh
   * random one through the log, so racing instances still agree on one name; at most `nameAttempts` names.
   */
  private async existingOrCreated(workspaceId: string, first: PlacedVault, provision: boolean): Promise<string | undefined> {
    const attempts = this.options.nameAttempts ?? DEFAULT_NAME_ATTEMPTS;
    let at = first;
    for (let attempt = 1; ; attempt++) {
      const vault = await this.armGet('read the vault', () => this.arm.vaults.get(at.resourceGroup, at.vault));
      if (vault) return this.uriOf(vault.properties.vaultUri, at);
      if ((await this.status(workspaceId)).state === 'deleted') throw vaultDeletedError(workspaceId);
      if (!provision) return undefined;
      try {
        return this.uriOf((await this.provision(workspaceId, at)).properties.vaultUri, at);
      } catch (error) {
        if (!isNameTaken(error)) throw sanitized(error, 'provision the vault');
      }
      // Taken, unless an instance of ours created it between our read and our create: then it is ours to use.
      const raced = await this.armGet('read the vault', () => this.arm.vaults.get(at.resourceGroup, at.vault));
      if (raced) return this.uriOf(raced.properties.vaultUri, at);
      if (attempt >= attempts)
        throw new DomainError(
          VAULT_ERROR.NAME_UNAVAILABLE,
          `Azure refused ${attempts} random vault names for workspace ${workspaceId} as already in use; try again later`,
          'unavailable',
        );
      at = this.placed(await this.options.directory.replace(workspaceId, at.vault, { vault: randomVaultName(this.options.namePrefix), resourceGroup: at.resourceGroup }));
    }
  }

  private uriOf(uri: string | undefined, at: PlacedVault): string {
    if (!uri) throw new DomainError(VAULT_ERROR.UNAVAILABLE, `Vault ${at.vault} has no URI yet`, 'unavailable');
    return uri;
  }

  /**
   * The first configured group with fewer than `vaultsPerGroup` live vaults, counted by ARM (list by resource
   * group): ARM is what enforces the limit, and it sees every create, delete, recover and purge, where a count kept
   * on our side would drift with each failure between our record and Azure's. Soft-deleted vaults are not in
   * the group, so they do not count until recovered.
   */
  private async groupWithRoom(): Promise<string> {
    for (const group of this.groups) {
      let count = 0;
      const counted = await guarded('count the vaults of a resource group', async () => {
        for await (const _vault of this.arm.vaults.listByResourceGroup(group, { top: this.vaultsPerGroup })) if (++count >= this.vaultsPerGroup) return false;
        return true;
      });
      if (counted) return group;
    }
    throw new DomainError(
      VAULT_ERROR.NO_CAPACITY,
      `Every workspace-vault resource group holds ${this.vaultsPerGroup} vaults (${this.groups.length} groups); an operator adds groups (docs/vault.md)`,
      'unavailable',
    );
  }

  private placed(location: { vault: string; resourceGroup?: string }): PlacedVault {
    return { vault: location.vault, resourceGroup: location.resourceGroup ?? this.options.resourceGroup };
  }

  /** A soft-delete, recover or purge found the vault by status, so its name is recorded. */
  private async recorded(workspaceId: string): Promise<PlacedVault> {
    const at = await this.vaultLocation(workspaceId);
    if (at === undefined) throw new DomainError(VAULT_ERROR.NOT_DELETED, `Workspace ${workspaceId} has no vault`, 'precondition');
    return at;
  }

  /** Creates the vault; the caller sanitizes errors (it tells a taken name from other failures first). */
  private async provision(workspaceId: string, at: PlacedVault) {
    const retentionDays = (await this.options.directory.read(workspaceId)).retentionDays ?? this.retentionDays;
    assertRetentionDays(retentionDays);
    return this.arm.vaults.beginCreateOrUpdateAndWait(at.resourceGroup, at.vault, {
      location: this.options.location,
      tags: { workspaceId: workspaceId.slice(0, 256), managedBy: 'disco-parrot' },
      properties: {
        tenantId: this.options.tenantId,
        sku: { family: 'A', name: 'standard' },
        enableSoftDelete: true,
        softDeleteRetentionInDays: retentionDays,
        enablePurgeProtection: true,
        enableRbacAuthorization: true,
        accessPolicies: [],
      },
    });
  }

  /**
   * Runs a data-plane call. A vault deleted by another instance disappears from DNS (or answers 404): then
   * the cached URI is dropped and ARM says what happened, so the caller sees VAULT.DELETED, not a socket error.
   */
  private async data<T>(workspaceId: string, operation: string, call: () => Promise<T>): Promise<T> {
    try {
      return await this.throughPropagation(call);
    } catch (error) {
      const safe = sanitized(error, operation);
      if (safe.code !== VAULT_ERROR.UNAVAILABLE) throw safe;
      this.forget(workspaceId);
      if ((await this.status(workspaceId)).state === 'deleted') throw vaultDeletedError(workspaceId);
      throw safe;
    }
  }

  /** Retries a call Key Vault answers 403 (role assignment still propagating), with a doubling, capped delay. */
  private async throughPropagation<T>(call: () => Promise<T>): Promise<T> {
    const retry = this.options.forbiddenRetry ?? DEFAULT_FORBIDDEN_RETRY;
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (statusOf(error) !== 403 || attempt >= retry.attempts) throw error;
        await this.options.clock.sleep(Math.min(retry.maxDelayMs, retry.firstDelayMs * 2 ** attempt));
      }
    }
  }

  private forget(workspaceId: string): void {
    this.vaultUris.delete(workspaceId);
  }

  private async armGet<T>(operation: string, call: () => Promise<T>): Promise<T | undefined> {
    try {
      return await call();
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw sanitized(error, operation);
    }
  }
}
