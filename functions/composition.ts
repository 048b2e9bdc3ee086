import { TableClient } from '@azure/data-tables';
import { DefaultAzureCredential } from '@azure/identity';
import path from 'node:path';
import type { CallerAuthenticator } from '../domain/ports/callerAuthenticator';
import type { ServiceDependencies } from '../domain/services/dependencies';
import { readSecretMetadata } from '../domain/services/secrets';
import { devIssuerJwks, devIssuerSettings } from '../infra/identity/devIssuer';
import { JwtCallerAuthenticator } from '../infra/identity/jwtCallerAuthenticator';
import { randomUuidIds } from '../infra/system/randomUuidIds';
import { systemClock } from '../infra/system/systemClock';
import { systemRandom } from '../infra/system/systemRandom';
import { TableEventStore } from '../infra/tables/tableEventStore';
import { TableWorkspaceRecords } from '../infra/tables/tableWorkspaceRecords';
import { EncryptedTableVault } from '../infra/vault/encryptedTableVault';
import { KeyVaultSecretVault, type KeyVaultSecretVaultOptions } from '../infra/vault/keyVaultSecretVault';
import type { SecretVault } from '../domain/ports/secretVault';
import { KeyVaultKeyWrapper } from '../infra/vault/keyVaultKeyWrapper';
import type { KeyWrapper } from '../infra/vault/keyWrapper';
import { LocalFileKeyWrapper } from '../infra/vault/localFileKeyWrapper';
import { CachingSecretResolver } from '../infra/vault/secretResolver';
import type { ApiServices } from './http/apiRoute';
import type { RunSandboxes } from '../domain/ports/runSandboxes';
import type { SandboxHost } from '../domain/ports/sandboxHost';
import { Gateway } from '../infra/gateway/gatewayService';
import { TableGatewayBearers } from '../infra/gateway/tableGatewayBearers';
import { InMemoryRunSandboxes } from '../infra/runs/inMemoryRunSandboxes';
import { LocalProcessSandboxHost } from '../infra/sandbox/localProcessSandboxHost';
import { openRemoteSandboxHost } from './remoteHosts.composition';
import { DEMO_GIT_PORTS } from '../infra/localhost/demoPorts';
import { BlobServiceClient } from '@azure/storage-blob';
import os from 'node:os';
import { existsSync } from 'node:fs';
import type { RunStores } from '../domain/services/runPorts';
import { BlobRunSpecStore, BlobTranscriptStore } from '../infra/runs/blobRunStores';
import { leftoverRemover } from '../infra/runs/leftoverSandboxes';
import { RunAborts } from '../infra/runs/runAborts';
import type { RunRuntime } from '../infra/runs/runContext';
import { defaultSigningKeyPolicy } from '../domain/signingKeys';
import { SigningKeyCheckpointer } from '../infra/identity/headCheckpointer';
import { loadProjectionSeal } from '../infra/identity/projectionMacKey';
import type { ProjectionSeal } from '../infra/tables/projectionSeal';
import { PlatformSandboxTokens } from '../infra/identity/sandboxIdentityTokens';
import { SigningKeys, platformLogRecorder } from '../infra/identity/signingKeys';
import { TableSigningKeyRepository, WORKLOAD_IDENTITY_RING } from '../infra/identity/signingKeysTable';
import { rs256Keys } from '../infra/identity/keyAlgorithms';
import { RsaWorkloadIdentityTokens } from '../infra/identity/workloadIdentityTokens';
import { workloadIdentityKeysStreamId } from '../domain/streams';
import { WORKLOAD_TOKEN_MAX_MS } from '../domain/workloadIdentity';
import type { PublicRsaSigningJwk } from '../domain/signingKeys';
import { TableOutboxIndex } from '../infra/messaging/tableOutboxIndex';
import { BlobLogArchive } from '../infra/backup/blobLogArchive';
import type { LogBackupDependencies } from '../infra/backup/logBackup';
import { TableBackupKeys } from '../infra/backup/tableBackupKeys';
import { TableLogTransfer } from '../infra/tables/logTransfer';
import { WorkspaceStoreRedactors, forgettingOnWrite } from '../infra/redaction/storeRedactors';
import { type Settings, SettingsError, identityIssuerOf, loadSettings } from './settings';

/** Table clients by connection string locally (Azurite), by managed identity in Azure. */
export function appTableClient(settings: Settings, table: string): TableClient {
  return tableClient(settings, table);
}

function tableClient(settings: Settings, table: string): TableClient {
  if (settings.AzureWebJobsStorage)
    return TableClient.fromConnectionString(settings.AzureWebJobsStorage, table, { allowInsecureConnection: settings.DISCO_ENV !== 'production' });
  return new TableClient(`https://${settings.AzureWebJobsStorage__accountName}.table.core.windows.net`, table, new DefaultAzureCredential());
}

function keyWrapper(settings: Settings): KeyWrapper {
  if (settings.VAULT_MASTER_KEY_ID) return new KeyVaultKeyWrapper(settings.VAULT_MASTER_KEY_ID, new DefaultAzureCredential());
  return LocalFileKeyWrapper.open(path.resolve(settings.VAULT_MASTER_KEY_FILE));
}

/** The per-workspace Key Vault adapter's options: ARM and the vaults by the app's managed identity. */
export function keyVaultOptions(settings: Settings): KeyVaultSecretVaultOptions {
  const { WORKSPACE_VAULTS_SUBSCRIPTION_ID: subscriptionId, WORKSPACE_VAULTS_RESOURCE_GROUP: resourceGroup, WORKSPACE_VAULTS_LOCATION: location, AZURE_TENANT_ID: tenantId } = settings;
  if (!subscriptionId || !resourceGroup || !location || !tenantId) throw new SettingsError('VAULT_KIND=keyvault needs the WORKSPACE_VAULTS_* settings and AZURE_TENANT_ID');
  return { credential: new DefaultAzureCredential(), subscriptionId, resourceGroup, location, tenantId, clock: systemClock };
}

/** `VAULT_KIND`: a Key Vault per workspace (production), or the encrypted Table vault (locally, or a single tenant). */
export function workspaceVault(settings: Settings, vaultTable: TableClient): SecretVault {
  if (settings.VAULT_KIND === 'keyvault') return new KeyVaultSecretVault(keyVaultOptions(settings));
  return new EncryptedTableVault({ table: vaultTable, keyWrapper: keyWrapper(settings), clock: systemClock });
}

async function authenticator(settings: Settings): Promise<CallerAuthenticator> {
  if (settings.AUTH_MODE === 'entra' && settings.AUTH_ISSUER && settings.AUTH_JWKS_URL)
    return new JwtCallerAuthenticator({ issuer: settings.AUTH_ISSUER, audience: settings.AUTH_AUDIENCE, jwks: new URL(settings.AUTH_JWKS_URL), userClaim: 'oid' });
  const dev = devIssuerSettings();
  return new JwtCallerAuthenticator({ issuer: dev.issuer, audience: dev.audience, jwks: await devIssuerJwks(dev) });
}

async function ensureTable(client: TableClient): Promise<void> {
  try {
    await client.createTable();
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 409) throw error;
  }
}

/** How stale the store's view of a workspace's secret list may be (a value set on another instance). */
export const STORE_REDACTOR_RECHECK_MS = 1000;

/** Builds every adapter once per process from validated settings. */
/** The platform's projection MAC, so rows written outside the app (a restore) verify like the app's own. */
export function projectionSealFor(settings: Settings): Promise<ProjectionSeal> {
  return loadProjectionSeal(tableClient(settings, settings.SIGNING_KEY_TABLE), keyWrapper(settings));
}

export async function composeServices(settings: Settings = loadSettings()): Promise<ApiServices> {
  const eventTable = tableClient(settings, settings.EVENT_LOG_TABLE);
  const vaultTable = tableClient(settings, settings.VAULT_TABLE);
  await Promise.all([ensureTable(eventTable), ensureTable(vaultTable)]);
  const signing = getSigning(settings);
  // Every append signs its head with the platform key; verify checks every checkpoint (docs/signing.md).
  // Marks the workspace as having outbox rows before each append, so the dispatcher finds it (docs/messaging.md).
  const outboxIndex = new TableOutboxIndex(tableClient(settings, settings.OUTBOX_INDEX_TABLE), systemClock, { graceMs: settings.OUTBOX_MARKER_GRACE_SECONDS * 1000 });
  // Projection rows carry a MAC under the platform's key, so decisions can tell them from rows edited in storage.
  const projectionSeal = await projectionSealFor(settings);
  // verify compares the table's head with the latest head witnessed in the immutable archive (docs/backup.md).
  const store = new TableEventStore(eventTable, {
    clock: systemClock, random: systemRandom, ids: randomUuidIds, checkpointer: signing.checkpointer, outboxIndex, projectionSeal, witness: getArchive(settings),
    // Second line of defence: each record is redacted with its workspace's values (bound below, once the vault exists).
    redactorFor: (workspaceId) => redactors?.redactorFor(workspaceId) ?? Promise.resolve(undefined),
  });
  let redactors: WorkspaceStoreRedactors | undefined;
  signing.keys.setRecorder(platformLogRecorder({ store, clock: systemClock, random: systemRandom }, randomUuidIds));
  signing.identityKeys.setRecorder(platformLogRecorder({ store, clock: systemClock, random: systemRandom }, randomUuidIds, workloadIdentityKeysStreamId()));
  const vault = forgettingOnWrite(workspaceVault(settings, vaultTable), (ws) => redactors?.forget(ws));
  const resolver = new CachingSecretResolver({
    vault,
    clock: systemClock,
    ttlMs: settings.RESOLVER_CACHE_SECONDS * 1000,
    currentVersion: async (workspaceId, name) => {
      return (await readSecretMetadata(deps, workspaceId, name))?.version;
    },
  });
  redactors = new WorkspaceStoreRedactors({ vault, clock: systemClock }, { recheckMs: STORE_REDACTOR_RECHECK_MS });
  const deps: ServiceDependencies = { store, vault, resolver, clock: systemClock, random: systemRandom, ids: randomUuidIds };
  return { deps, authenticator: await authenticator(settings), records: new TableWorkspaceRecords(eventTable, store.projectionSeal) };
}

export interface SigningServices {
  readonly keys: SigningKeys;
  readonly checkpointer: SigningKeyCheckpointer;
  readonly tokens: PlatformSandboxTokens;
  /** The RS256 ring for workload identity tokens (docs/identity.md): a key separate from the checkpoint key. */
  readonly identityKeys: SigningKeys<PublicRsaSigningJwk>;
  readonly identityTokens: RsaWorkloadIdentityTokens;
}

let signing: SigningServices | undefined;

/**
 * The platform signing keys, one ring per process, shared by the event store's checkpointer, the JWKS route,
 * the rotation timer and sandbox tokens. Private keys rest sealed under the vault master key (Key Vault in Azure).
 */
export function getSigning(settings: Settings = loadSettings()): SigningServices {
  if (!signing) {
    const repository = new TableSigningKeyRepository(tableClient(settings, settings.SIGNING_KEY_TABLE), keyWrapper(settings));
    const policy = { ...defaultSigningKeyPolicy, maxTokenLifetimeMs: settings.SANDBOX_TOKEN_MINUTES * 60_000 };
    const keys = new SigningKeys({ repository, clock: systemClock, policy });
    const tokens = new PlatformSandboxTokens(keys, systemClock, { issuer: settings.PLATFORM_ISSUER, audience: settings.SANDBOX_TOKEN_AUDIENCE });
    const identityRepository = new TableSigningKeyRepository(tableClient(settings, settings.SIGNING_KEY_TABLE), keyWrapper(settings), { algorithm: rs256Keys, place: WORKLOAD_IDENTITY_RING });
    const identityKeys = new SigningKeys({ repository: identityRepository, clock: systemClock, algorithm: rs256Keys, policy: { ...defaultSigningKeyPolicy, maxTokenLifetimeMs: WORKLOAD_TOKEN_MAX_MS } });
    const identityTokens = new RsaWorkloadIdentityTokens(identityKeys, systemClock, identityIssuerOf(settings));
    signing = { keys, checkpointer: new SigningKeyCheckpointer(keys), tokens, identityKeys, identityTokens };
  }
  return signing;
}

let services: Promise<ApiServices> | undefined;

/** The process's services, built on first use (so a bad setting fails the first request, loudly, by name). */
export function getServices(): Promise<ApiServices> {
  services ??= composeServices().catch((error: unknown) => {
    services = undefined;
    throw error;
  });
  return services;
}

/** The live sandboxes of this process: the run lifecycle fills it, the gateway reads it (one instance per process). */
export const runSandboxes: RunSandboxes = new InMemoryRunSandboxes();

let sandboxHost: Promise<SandboxHost> | undefined;

/** This process's sandbox host, shared by the run lifecycle and the gateway (a run is pinned to it). */
/** The production configuration refuses the local-process host: its isolation is a development stand-in. */
export function sandboxHostFor(settings: Settings): Promise<SandboxHost> {
  if (settings.SANDBOX_HOST === 'remote') return getServices().then(({ deps }) => openRemoteSandboxHost(settings, deps));
  if (settings.DISCO_ENV === 'production')
    return Promise.reject(
      new SettingsError('DISCO_ENV=production refuses the local-process sandbox host; configure a container sandbox host (not built yet)'),
    );
  // Development without the setting: the demo's git servers (production refuses this host altogether).
  const testServers = settings.SANDBOX_EGRESS_TEST_SERVERS?.split(',') ?? DEMO_GIT_PORTS.map((port) => `127.0.0.1:${port}`);
  return LocalProcessSandboxHost.open({ gatewayUrl: gatewayUrlOf(settings), egress: { testServers: () => testServers, platformHosts: platformHostsOf(settings) } });
}

const STORAGE_SERVICES = ['blob', 'queue', 'table', 'file', 'dfs', 'web'] as const;

/**
 * The platform's own host names, which the egress proxy refuses whatever a workspace's allow-list says: the
 * storage account (every service endpoint), the master key's Key Vault and, with a vault per workspace, every
 * Key Vault (their names are minted per workspace), the Service Bus namespace, the Function App and the gateway
 * (reached only through its own door, which passes the gateway's route alone) and the platform issuer.
 */
export function platformHostsOf(settings: Settings, env: Readonly<Record<string, string | undefined>> = process.env): string[] {
  const hosts = new Set<string>();
  const hostOf = (url: string | undefined): void => {
    if (!url) return;
    try {
      const host = new URL(url).hostname.toLowerCase();
      if (host) hosts.add(host);
    } catch {
      // Not a URL: nothing to refuse by name.
    }
  };
  const account = settings.AzureWebJobsStorage__accountName;
  if (account) for (const service of STORAGE_SERVICES) hosts.add(`${account}.${service}.core.windows.net`);
  if (settings.AzureWebJobsStorage) {
    const parts = new Map(settings.AzureWebJobsStorage.split(';').map((part) => [part.slice(0, part.indexOf('=')).toLowerCase(), part.slice(part.indexOf('=') + 1)] as const));
    const name = parts.get('accountname');
    const suffix = parts.get('endpointsuffix') ?? 'core.windows.net';
    if (name && !parts.has('usedevelopmentstorage')) for (const service of STORAGE_SERVICES) hosts.add(`${name.toLowerCase()}.${service}.${suffix.toLowerCase()}`);
    for (const key of ['blobendpoint', 'queueendpoint', 'tableendpoint', 'fileendpoint']) hostOf(parts.get(key));
  }
  hostOf(settings.VAULT_MASTER_KEY_ID);
  if (settings.VAULT_KIND === 'keyvault') hosts.add('vault.azure.net');
  if (settings.ServiceBusConnection__fullyQualifiedNamespace) hosts.add(settings.ServiceBusConnection__fullyQualifiedNamespace.toLowerCase());
  // Azure sets WEBSITE_HOSTNAME to the Function App's default host name.
  if (env.WEBSITE_HOSTNAME) hosts.add(env.WEBSITE_HOSTNAME.toLowerCase());
  hostOf(settings.GATEWAY_URL);
  hostOf(settings.PLATFORM_ISSUER);
  // Addresses are refused by the address policy already; the list is for names.
  return [...hosts].filter((h) => !/^[\d.]+$/.test(h) && !h.includes(':') && !h.startsWith('[')).sort();
}

/** What a run's agent runtime gets as GATEWAY_URL (and where an isolated sandbox's gateway door leads). */
function gatewayUrlOf(settings: Settings): string {
  return settings.GATEWAY_URL ?? `http://127.0.0.1:${process.env.LOCAL_HOST_PORT ?? '7071'}/api/gateway/operations`;
}

export function getSandboxHost(): Promise<SandboxHost> {
  sandboxHost ??= sandboxHostFor(loadSettings()).catch((error: unknown) => {
    sandboxHost = undefined;
    throw error;
  });
  return sandboxHost;
}

let gatewayBearers: Promise<TableGatewayBearers> | undefined;

/** Per-container gateway bearers (hashes only) in their own table; the run lifecycle mints, the gateway verifies. */
export function getGatewayBearers(settings: Settings = loadSettings()): Promise<TableGatewayBearers> {
  gatewayBearers ??= (async () => {
    const table = tableClient(settings, settings.GATEWAY_BEARER_TABLE);
    await ensureTable(table);
    return new TableGatewayBearers(table);
  })().catch((error: unknown) => {
    gatewayBearers = undefined;
    throw error;
  });
  return gatewayBearers;
}

let gateway: Promise<Gateway> | undefined;

/** The gateway behind `POST /api/gateway/operations`, over the same store, resolver and sandboxes as the runs. */
export function getGateway(): Promise<Gateway> {
  gateway ??= (async () => {
    const settings = loadSettings();
    const [{ deps }, bearers, host] = await Promise.all([getServices(), getGatewayBearers(settings), getSandboxHost()]);
    return new Gateway({
      deps, bearers, sandboxes: runSandboxes, host, limits: { operationTimeoutMs: settings.GATEWAY_OPERATION_TIMEOUT_SECONDS * 1000 },
      identityTokens: getSigning(settings).identityTokens,
    });
  })().catch((error: unknown) => {
    gateway = undefined;
    throw error;
  });
  return gateway;
}

/** Blob containers by connection string locally (Azurite), by managed identity in Azure. */
function blobService(settings: Settings): BlobServiceClient {
  if (settings.AzureWebJobsStorage) return BlobServiceClient.fromConnectionString(settings.AzureWebJobsStorage);
  return new BlobServiceClient(`https://${settings.AzureWebJobsStorage__accountName}.blob.core.windows.net`, new DefaultAzureCredential());
}

const archives = new Map<string, BlobLogArchive>();

/** The immutable archive of log backups and witnessed heads (`BACKUP_CONTAINER`; docs/backup.md), one per container. */
export function getArchive(settings: Settings = loadSettings()): BlobLogArchive {
  let archive = archives.get(settings.BACKUP_CONTAINER);
  if (!archive) {
    archive = new BlobLogArchive(blobService(settings).getContainerClient(settings.BACKUP_CONTAINER));
    archives.set(settings.BACKUP_CONTAINER, archive);
  }
  return archive;
}

/** Per-workspace backup keys, wrapped by the vault master key; purge destroys a workspace's. */
export function backupKeys(settings: Settings = loadSettings()): TableBackupKeys {
  return new TableBackupKeys(tableClient(settings, settings.BACKUP_KEY_TABLE), keyWrapper(settings));
}

/** What the backup and witness timers and `npm run restore` use. */
export function logBackupDependencies(settings: Settings = loadSettings()): LogBackupDependencies {
  return {
    source: new TableLogTransfer(tableClient(settings, settings.EVENT_LOG_TABLE)),
    archive: getArchive(settings),
    keys: backupKeys(settings),
    publicKeys: async () => (await getSigning(settings).keys.ring()).map((k) => k.publicJwk),
    clock: systemClock,
  };
}

let runStores: RunStores | undefined;

/** Run specs (`runspecs`) and transcripts (`transcripts/{ws}/{runId}/{n}`) in Blob storage. */
export async function getRunStores(settings: Settings = loadSettings()): Promise<RunStores> {
  runStores ??= (() => {
    const blobs = blobService(settings);
    return { specs: new BlobRunSpecStore(blobs.getContainerClient('runspecs')), transcripts: new BlobTranscriptStore(blobs.getContainerClient('transcripts')) };
  })();
  return runStores;
}

let runRuntime: Promise<RunRuntime> | undefined;

/** What the run lifecycle's activities use: one per process, sharing the sandbox host and registry with the gateway. */
export function getRunRuntime(): Promise<RunRuntime> {
  runRuntime ??= (async (): Promise<RunRuntime> => {
    const settings = loadSettings();
    const [{ deps }, stores, host, bearers] = await Promise.all([getServices(), getRunStores(settings), getSandboxHost(), getGatewayBearers(settings)]);
    // The sandbox host's default roots (LocalProcessSandboxHost): where a dead instance's leftovers are.
    const sandboxRoot = path.join(os.tmpdir(), 'dp-sandboxes');
    const credentialRoot = existsSync('/dev/shm') ? '/dev/shm/dp-credentials' : path.join(os.tmpdir(), 'dp-credentials');
    return {
      deps,
      stores,
      host,
      sandboxes: runSandboxes,
      bearers,
      aborts: new RunAborts(),
      gatewayUrl: gatewayUrlOf(settings),
      removeLeftovers: leftoverRemover({ sandboxRoot, credentialRoot }),
      live: new Map(),
    };
  })().catch((error: unknown) => {
    runRuntime = undefined;
    throw error;
  });
  return runRuntime;
}
