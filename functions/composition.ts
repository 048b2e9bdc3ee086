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
import { TableActiveRuns } from '../infra/tables/tableActiveRuns';
import { EncryptedTableVault } from '../infra/vault/encryptedTableVault';
import { KeyVaultSecretVault, type KeyVaultSecretVaultOptions } from '../infra/vault/keyVaultSecretVault';
import type { SecretVault } from '../domain/ports/secretVault';
import { KeyVaultKeyWrapper } from '../infra/vault/keyVaultKeyWrapper';
import type { KeyWrapper } from '../infra/vault/keyWrapper';
import { LocalFileKeyWrapper } from '../infra/vault/localFileKeyWrapper';
import { CachingSecretResolver } from '../infra/vault/secretResolver';
import type { VaultDirectory } from '../domain/ports/vaultDirectory';
import { logVaultDirectory } from '../domain/services/vaultDirectory';
import type { ApiServices } from './http/apiRoute';
import type { RunSandboxes } from '../domain/ports/runSandboxes';
import type { SandboxHost } from '../domain/ports/sandboxHost';
import type { Gateway } from '../domain/services/gateway';
import { sandboxGateway } from './gateway.wiring';
import { TableGatewayBearers } from '../infra/gateway/tableGatewayBearers';
import { InMemoryRunSandboxes } from '../infra/runs/inMemoryRunSandboxes';
import { LocalProcessSandboxHost } from '../infra/sandbox/localProcessSandboxHost';
import { openDockerSandboxHost } from './dockerSandboxHost.wiring';
import { openRemoteSandboxHost } from './remoteHosts.composition';
import { DEMO_GIT_PORTS } from '../localhost/demoPorts';
import { blobContainerFor, queueClientFor, tableClientFor, type StorageLocation } from '../infra/storage/storageClients';
import type { CommandContext } from '../domain/commandHandler';
import type { EventPublisher } from '../domain/ports/eventPublisher';
import { isOutboxStore } from '../domain/ports/outbox';
import { OutboxDispatcher } from '../infra/messaging/outboxDispatcher';
import { ServiceBusPublisher } from '../infra/messaging/serviceBusPublisher';
import { StorageQueuePublisher } from '../infra/messaging/storageQueuePublisher';
import os from 'node:os';
import { existsSync } from 'node:fs';
import type { RunStores } from '../domain/services/runPorts';
import { BlobRunSpecStore, BlobTranscriptStore } from '../infra/runs/blobRunStores';
import { leftoverRemoval } from '../infra/runs/leftoverSandboxes';
import { LiveLeases } from '../infra/runs/liveLeases';
import { RunAborts } from '../domain/services/runAborts';
import { SandboxRunProcesses } from '../infra/runs/sandboxRunProcesses';
import type { RunRuntime } from '../domain/services/runContext';
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
import { once } from './once';
import { type Settings, SettingsError, appSettings, identityIssuerOf, platformEnvironment, type PlatformEnvironment } from './settings';

/** How the app reaches its storage account: a connection string locally (Azurite), managed identity in Azure. */
export function storageLocation(settings: Settings): StorageLocation {
  return {
    ...(settings.AzureWebJobsStorage ? { connectionString: settings.AzureWebJobsStorage } : {}),
    ...(settings.AzureWebJobsStorage__accountName ? { accountName: settings.AzureWebJobsStorage__accountName } : {}),
    allowInsecure: settings.DISCO_ENV !== 'production',
  };
}

/** Table clients by connection string locally (Azurite), by managed identity in Azure. */
export function appTableClient(settings: Settings, table: string): TableClient {
  return tableClient(settings, table);
}

function tableClient(settings: Settings, table: string): TableClient {
  return tableClientFor(storageLocation(settings), table);
}

function keyWrapper(settings: Settings): KeyWrapper {
  if (settings.VAULT_MASTER_KEY_ID) return new KeyVaultKeyWrapper(settings.VAULT_MASTER_KEY_ID, new DefaultAzureCredential());
  return LocalFileKeyWrapper.open(path.resolve(settings.VAULT_MASTER_KEY_FILE));
}

/** The per-workspace Key Vault adapter's options: ARM and the vaults by the app's managed identity. */
export function keyVaultOptions(settings: Settings, directory: VaultDirectory): KeyVaultSecretVaultOptions {
  const { WORKSPACE_VAULTS_SUBSCRIPTION_ID: subscriptionId, WORKSPACE_VAULTS_RESOURCE_GROUP: resourceGroup, WORKSPACE_VAULTS_LOCATION: location, AZURE_TENANT_ID: tenantId } = settings;
  if (!subscriptionId || !resourceGroup || !location || !tenantId) throw new SettingsError('VAULT_KIND=keyvault needs the WORKSPACE_VAULTS_* settings and AZURE_TENANT_ID');
  return {
    credential: new DefaultAzureCredential(), subscriptionId, resourceGroup, location, tenantId, clock: systemClock, directory,
    resourceGroups: settings.WORKSPACE_VAULTS_RESOURCE_GROUPS ?? [resourceGroup], vaultsPerGroup: settings.WORKSPACE_VAULTS_PER_GROUP,
  };
}

/** `VAULT_KIND`: a Key Vault per workspace (production), or the encrypted Table vault (locally, or a single tenant). */
export function workspaceVault(settings: Settings, vaultTable: TableClient, directory: VaultDirectory): SecretVault {
  if (settings.VAULT_KIND === 'keyvault') return new KeyVaultSecretVault(keyVaultOptions(settings, directory));
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

export interface SigningServices {
  readonly keys: SigningKeys;
  readonly checkpointer: SigningKeyCheckpointer;
  readonly tokens: PlatformSandboxTokens;
  /** The RS256 ring for workload identity tokens (docs/identity.md): a key separate from the checkpoint key. */
  readonly identityKeys: SigningKeys<PublicRsaSigningJwk>;
  readonly identityTokens: RsaWorkloadIdentityTokens;
}

/**
 * The composition root: every adapter of one app, built from one validated `Settings`, each on first use and
 * then kept. The event store signs its heads with the platform keys, and the keys record their rotations in
 * the platform log through that store: the recorders reach the store through a lazy getter, so neither
 * waits for the other to exist.
 */
export function compose(settings: Settings): Composition {
  const platformLog = async (): Promise<CommandContext> => ({ store: (await root.services()).deps.store, clock: systemClock, random: systemRandom });
  // What a revocation tells at once; undefined until a run or the gateway holds a lease in this process.
  let liveLeases: LiveLeases | undefined;
  const root: Composition = {
    settings,
    /**
     * The platform signing keys, one ring per process, shared by the event store's checkpointer, the JWKS route,
     * the rotation timer and sandbox tokens. Private keys rest sealed under the vault master key (Key Vault in Azure).
     */
    signing: once((): SigningServices => {
      const repository = new TableSigningKeyRepository(tableClient(settings, settings.SIGNING_KEY_TABLE), keyWrapper(settings));
      const policy = { ...defaultSigningKeyPolicy, maxTokenLifetimeMs: settings.SANDBOX_TOKEN_MINUTES * 60_000 };
      const keys = new SigningKeys({ repository, clock: systemClock, policy, recorder: platformLogRecorder(platformLog, randomUuidIds) });
      const tokens = new PlatformSandboxTokens(keys, systemClock, { issuer: settings.PLATFORM_ISSUER, audience: settings.SANDBOX_TOKEN_AUDIENCE });
      const identityRepository = new TableSigningKeyRepository(tableClient(settings, settings.SIGNING_KEY_TABLE), keyWrapper(settings), { algorithm: rs256Keys, place: WORKLOAD_IDENTITY_RING });
      const identityKeys = new SigningKeys({
        repository: identityRepository, clock: systemClock, algorithm: rs256Keys, policy: { ...defaultSigningKeyPolicy, maxTokenLifetimeMs: WORKLOAD_TOKEN_MAX_MS },
        recorder: platformLogRecorder(platformLog, randomUuidIds, workloadIdentityKeysStreamId()),
      });
      const identityTokens = new RsaWorkloadIdentityTokens(identityKeys, systemClock, identityIssuerOf(settings));
      return { keys, checkpointer: new SigningKeyCheckpointer(keys), tokens, identityKeys, identityTokens };
    }),
    /** The platform's projection MAC, so rows written outside the app (a restore) verify like the app's own. */
    projectionSeal: once((): Promise<ProjectionSeal> => loadProjectionSeal(tableClient(settings, settings.SIGNING_KEY_TABLE), keyWrapper(settings))),
    services: once(async (): Promise<ApiServices> => {
      const eventTable = tableClient(settings, settings.EVENT_LOG_TABLE);
      const vaultTable = tableClient(settings, settings.VAULT_TABLE);
      await Promise.all([ensureTable(eventTable), ensureTable(vaultTable)]);
      // Every append signs its head with the platform key; verify checks every checkpoint (docs/signing.md).
      // Marks the workspace as having outbox rows before each append, so the dispatcher finds it (docs/messaging.md).
      // Projection rows carry a MAC under the platform's key, so decisions can tell them from rows edited in storage.
      // verify compares the table's head with the latest head witnessed in the immutable archive (docs/backup.md).
      const store = new TableEventStore(eventTable, {
        clock: systemClock, random: systemRandom, ids: randomUuidIds, checkpointer: root.signing().checkpointer, outboxIndex: root.outboxIndex(),
        projectionSeal: await root.projectionSeal(), witness: root.archive(),
        // Second line of defence: each record is redacted with its workspace's values (bound below, once the vault exists).
        redactorFor: (workspaceId) => redactors?.redactorFor(workspaceId) ?? Promise.resolve(undefined),
      });
      let redactors: WorkspaceStoreRedactors | undefined;
      // A Key Vault's name and retention come from the workspace's log (VaultProvisioned, WorkspaceCreated).
      const directory = logVaultDirectory({ store, clock: systemClock, random: systemRandom });
      const vault = forgettingOnWrite(workspaceVault(settings, vaultTable, directory), (ws) => redactors?.forget(ws));
      const resolver = new CachingSecretResolver({
        vault,
        clock: systemClock,
        ttlMs: settings.RESOLVER_CACHE_SECONDS * 1000,
        currentVersion: async (workspaceId, name) => {
          return (await readSecretMetadata(deps, workspaceId, name))?.version;
        },
      });
      redactors = new WorkspaceStoreRedactors({ vault, clock: systemClock }, { recheckMs: STORE_REDACTOR_RECHECK_MS });
      // A revocation tells this process's live leases at once; none exist until a run or the gateway holds one.
      const revocations = { secretRevoked: (workspaceId: string, name: string) => liveLeases?.secretRevoked(workspaceId, name) };
      const deps: ServiceDependencies = { store, vault, resolver, clock: systemClock, random: systemRandom, ids: randomUuidIds, revocations };
      return { deps, authenticator: await authenticator(settings), records: new TableWorkspaceRecords(eventTable, store.projectionSeal) };
    }),
    /** The index the event store touches before each append and the outbox dispatcher reads. */
    outboxIndex: once(() => new TableOutboxIndex(tableClient(settings, settings.OUTBOX_INDEX_TABLE), systemClock, { graceMs: settings.OUTBOX_MARKER_GRACE_SECONDS * 1000 })),
    /** Service Bus topic `events` when its namespace is configured (Azure), else the storage queue `events`. */
    publisher: once((): EventPublisher => {
      const namespace = settings.ServiceBusConnection__fullyQualifiedNamespace;
      if (namespace) return ServiceBusPublisher.fromNamespace(namespace, settings.EVENTS_TOPIC).publisher;
      return new StorageQueuePublisher(queueClientFor(storageLocation(settings), settings.EVENTS_TOPIC));
    }),
    /** The outbox dispatcher: its timer runs it, and the run starter nudges it after an append. */
    outboxDispatcher: once(async () => {
      const { deps } = await root.services();
      if (!isOutboxStore(deps.store)) throw new Error('The event store does not expose its outbox');
      return new OutboxDispatcher({ store: deps.store, index: root.outboxIndex(), publisher: root.publisher(), log: { warn: (t) => console.warn(t) } });
    }),
    /** The sweep's cross-workspace index of runs that have not finished. */
    activeRuns: once(() => new TableActiveRuns(tableClient(settings, settings.EVENT_LOG_TABLE))),
    /** The immutable archive of log backups and witnessed heads (`BACKUP_CONTAINER`; docs/backup.md). */
    archive: once(() => new BlobLogArchive(blobContainerFor(storageLocation(settings), settings.BACKUP_CONTAINER))),
    /** Per-workspace backup keys, wrapped by the vault master key; purge destroys a workspace's. */
    backupKeys: once(() => new TableBackupKeys(tableClient(settings, settings.BACKUP_KEY_TABLE), keyWrapper(settings))),
    /** What the backup and witness timers and `npm run restore` use. */
    logBackup: once((): LogBackupDependencies => ({
      source: new TableLogTransfer(tableClient(settings, settings.EVENT_LOG_TABLE)),
      archive: root.archive(),
      keys: root.backupKeys(),
      publicKeys: async () => (await root.signing().keys.ring()).map((k) => k.publicJwk),
      clock: systemClock,
    })),
    /** This process's sandbox host, shared by the run lifecycle and the gateway (which adopts from it what another instance seeded). */
    sandboxHost: once(() => sandboxHostFor(settings, root.services)),
    /** The live sandboxes of this process: the run lifecycle fills it, the gateway reads it. */
    runSandboxes: once((): RunSandboxes => new InMemoryRunSandboxes()),
    /** Per-container gateway bearers (hashes only) in their own table; the run lifecycle mints, the gateway verifies. */
    gatewayBearers: once(async () => {
      const table = tableClient(settings, settings.GATEWAY_BEARER_TABLE);
      await ensureTable(table);
      return new TableGatewayBearers(table);
    }),
    /** The gateway behind `POST /api/gateway/operations`, over the same store, resolver and sandboxes as the runs. */
    gateway: once(async () => {
      const [{ deps }, bearers, host, leases] = await Promise.all([root.services(), root.gatewayBearers(), root.sandboxHost(), root.liveLeases()]);
      return sandboxGateway({
        deps, bearers, sandboxes: root.runSandboxes(), host, specs: root.runStores().specs, leases, limits: { operationTimeoutMs: settings.GATEWAY_OPERATION_TIMEOUT_SECONDS * 1000 },
        identityTokens: root.signing().identityTokens,
      });
    }),
    /** The leases this process's sandboxes hold (runs and gateway): what a revocation stops (infra/runs/liveLeases.ts). */
    liveLeases: once(async (): Promise<LiveLeases> => (liveLeases = new LiveLeases((await root.services()).deps))),
    /** Run specs (`runspecs`) and transcripts (`transcripts/{ws}/{runId}/{n}`) in Blob storage. */
    runStores: once((): RunStores => {
      const location = storageLocation(settings);
      return { specs: new BlobRunSpecStore(blobContainerFor(location, 'runspecs')), transcripts: new BlobTranscriptStore(blobContainerFor(location, 'transcripts')) };
    }),
    /** What the run lifecycle's activities use, sharing the sandbox host and registry with the gateway. */
    runRuntime: once(async (): Promise<RunRuntime> => {
      const [{ deps }, host, bearers, leases] = await Promise.all([root.services(), root.sandboxHost(), root.gatewayBearers(), root.liveLeases()]);
      // The sandbox host's default roots (LocalProcessSandboxHost): where a dead instance's leftovers are.
      const sandboxRoot = path.join(os.tmpdir(), 'dp-sandboxes');
      const credentialRoot = existsSync('/dev/shm') ? '/dev/shm/dp-credentials' : path.join(os.tmpdir(), 'dp-credentials');
      return {
        deps,
        stores: root.runStores(),
        host,
        processes: new SandboxRunProcesses(host),
        sandboxes: root.runSandboxes(),
        bearers,
        aborts: new RunAborts(),
        leases,
        gatewayUrl: gatewayUrlOf(settings),
        removeLeftovers: leftoverRemoval(host, { sandboxRoot, credentialRoot }),
        live: new Map(),
      };
    }),
  };
  return root;
}

/** What `compose` builds; each member builds its adapter on first call and answers the same one after. */
export interface Composition {
  readonly settings: Settings;
  readonly signing: () => SigningServices;
  readonly projectionSeal: () => Promise<ProjectionSeal>;
  readonly services: () => Promise<ApiServices>;
  readonly outboxIndex: () => TableOutboxIndex;
  readonly publisher: () => EventPublisher;
  readonly outboxDispatcher: () => Promise<OutboxDispatcher>;
  readonly activeRuns: () => TableActiveRuns;
  readonly archive: () => BlobLogArchive;
  readonly backupKeys: () => TableBackupKeys;
  readonly logBackup: () => LogBackupDependencies;
  readonly sandboxHost: () => Promise<SandboxHost>;
  readonly runSandboxes: () => RunSandboxes;
  readonly liveLeases: () => Promise<LiveLeases>;
  readonly gatewayBearers: () => Promise<TableGatewayBearers>;
  readonly gateway: () => Promise<Gateway>;
  readonly runStores: () => RunStores;
  readonly runRuntime: () => Promise<RunRuntime>;
}

/** This process's composition: settings validated once, each adapter built once (a failed build is retried on next use). */
export const appComposition = once(() => compose(appSettings()));

/** The process's services, built on first use (so a bad setting fails the first request, loudly, by name). */
export const getServices = (): Promise<ApiServices> => appComposition().services();
export const getSigning = (): SigningServices => appComposition().signing();
export const getSandboxHost = (): Promise<SandboxHost> => appComposition().sandboxHost();
export const getGateway = (): Promise<Gateway> => appComposition().gateway();
export const getRunStores = async (): Promise<RunStores> => appComposition().runStores();
export const getRunRuntime = (): Promise<RunRuntime> => appComposition().runRuntime();
export const logBackupDependencies = (): LogBackupDependencies => appComposition().logBackup();

/** The production configuration refuses the local-process host: its isolation is a development stand-in. */
export function sandboxHostFor(settings: Settings, services: () => Promise<ApiServices> = getServices): Promise<SandboxHost> {
  if (settings.SANDBOX_HOST === 'docker') return openDockerSandboxHost(settings, gatewayUrlOf(settings), platformHostsOf(settings));
  if (settings.SANDBOX_HOST === 'remote') return services().then(({ deps }) => openRemoteSandboxHost(settings, deps, platformHostsOf(settings)));
  if (settings.DISCO_ENV === 'production')
    return Promise.reject(
      new SettingsError('DISCO_ENV=production refuses the local-process sandbox host; set SANDBOX_HOST=docker'),
    );
  // Development without the setting: the demo's git servers (production refuses this host altogether).
  const testServers = settings.SANDBOX_EGRESS_TEST_SERVERS?.split(',') ?? DEMO_GIT_PORTS.map((port) => `127.0.0.1:${port}`);
  return LocalProcessSandboxHost.open({
    gatewayUrl: gatewayUrlOf(settings),
    egress: { testServers: () => testServers, platformHosts: platformHostsOf(settings) },
    limits: { pidsMax: settings.SANDBOX_PIDS_MAX, memoryBytes: settings.SANDBOX_MEMORY_MB * 1024 ** 2, cpus: settings.SANDBOX_CPUS },
  });
}

const STORAGE_SERVICES = ['blob', 'queue', 'table', 'file', 'dfs', 'web'] as const;

/**
 * The platform's own host names, which the egress proxy refuses whatever a workspace's allow-list says: the
 * storage account (every service endpoint), the master key's Key Vault and, with a vault per workspace, every
 * Key Vault (their names are minted per workspace), the Service Bus namespace, the Function App and the gateway
 * (reached only through its own door, which passes the gateway's route alone) and the platform issuer.
 */
export function platformHostsOf(settings: Settings, env: PlatformEnvironment = platformEnvironment()): string[] {
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
  return settings.GATEWAY_URL ?? `http://127.0.0.1:${platformEnvironment().LOCAL_HOST_PORT ?? '7071'}/api/gateway/operations`;
}

