import { z } from 'zod';
import { producerKeysSchema } from '../infra/messaging/runRequestProducer';
import { once } from './once';

/** Six-field NCRONTAB (UTC) defaults of the timers whose schedule is read when the app registers them. */
export const DEFAULT_SCHEDULES = {
  /** Sundays at 03:00. */
  SIGNING_KEY_ROTATION_SCHEDULE: '0 0 3 * * 0',
  /** Every five seconds. */
  OUTBOX_SCHEDULE: '*/5 * * * * *',
  /** Hourly, on the hour. */
  BACKUP_SCHEDULE: '0 0 * * * *',
  /** Every five minutes. */
  WITNESS_SCHEDULE: '0 */5 * * * *',
} as const;

const tableName = z.string().regex(/^[A-Za-z][A-Za-z0-9]{2,62}$/, 'must be a Table storage name (letters and digits, 3-63)');

/**
 * Every setting the app reads, validated once at start. `local.settings.sample.json` lists each with a safe
 * local value; the README explains them. The production configuration refuses everything local-only.
 */
export const settingsSchema = z
  .object({
    DISCO_ENV: z.enum(['development', 'production']).default('development'),
    /** Local: an Azurite connection string. Azure: leave unset and use the identity-based setting below. */
    AzureWebJobsStorage: z.string().min(1).optional(),
    AzureWebJobsStorage__accountName: z.string().regex(/^[a-z0-9]{3,24}$/).optional(),
    EVENT_LOG_TABLE: tableName.default('eventlog'),
    VAULT_TABLE: tableName.default('vault'),
    /** The master key that wraps each workspace's data key: a local key file, or a Key Vault key id in Azure. */
    VAULT_MASTER_KEY_FILE: z.string().min(1).default('.azurite/vault-master.key'),
    VAULT_MASTER_KEY_ID: z.url().optional(),
    /**
     * Where workspace secrets rest: `table` (the encrypted Table vault, one master key for all) or `keyvault` (a
     * Key Vault per workspace, provisioned through ARM in WORKSPACE_VAULTS_RESOURCE_GROUP). Production refuses
     * `table` unless VAULT_SINGLE_TENANT=true says the install serves one tenant.
     */
    VAULT_KIND: z.enum(['table', 'keyvault']).default('table'),
    VAULT_SINGLE_TENANT: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
    WORKSPACE_VAULTS_SUBSCRIPTION_ID: z.uuid().optional(),
    /** The default vaults group: the first to fill, and where a vault recorded without a group lives (docs/vault.md). */
    WORKSPACE_VAULTS_RESOURCE_GROUP: z.string().regex(/^[-\w._()]{1,90}$/, 'must be a resource group name').optional(),
    /**
     * Every vaults group new vaults may go to, comma-separated, in fill order (default: the one group above, which
     * must be among them). Append only: a workspace's group is recorded with its vault, and the Bicep gives the
     * app its roles on each group.
     */
    WORKSPACE_VAULTS_RESOURCE_GROUPS: z
      .string()
      .regex(/^[-\w._()]{1,90}(,[-\w._()]{1,90})*$/, 'must be resource group names separated by commas')
      .transform((v) => v.split(','))
      .refine((groups) => new Set(groups).size === groups.length, 'must not name a group twice')
      .optional(),
    /** Live vaults per group before the next group is used (ARM's limit is 800; the rest is room for recovers). */
    WORKSPACE_VAULTS_PER_GROUP: z.coerce.number().int().min(1).max(800).default(700),
    WORKSPACE_VAULTS_LOCATION: z.string().regex(/^[a-z0-9]+$/, 'must be an Azure region name such as westeurope').optional(),
    AZURE_TENANT_ID: z.uuid().optional(),
    /** How long a resolved value may be reused while its version is unchanged. */
    RESOLVER_CACHE_SECONDS: z.coerce.number().int().min(0).max(300).default(30),
    /** `dev`: the local dev issuer (refused in production). `entra`: Entra ID via AUTH_ISSUER/AUTH_JWKS_URL. */
    AUTH_MODE: z.enum(['dev', 'entra']).default('dev'),
    AUTH_ISSUER: z.url().optional(),
    AUTH_AUDIENCE: z.string().min(1).default('api://disco-parrot'),
    AUTH_JWKS_URL: z.url().optional(),
    /** Gateway bearers (SHA-256 hashes only) and how long one gateway operation may run. */
    GATEWAY_BEARER_TABLE: tableName.default('gatewaybearers'),
    GATEWAY_OPERATION_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3600).default(120),
    /** What a run's agent runtime gets as GATEWAY_URL; default: this host's loopback address. */
    GATEWAY_URL: z.url().optional(),
    /** Platform signing keys (docs/signing.md): their table, the rotation timer's NCRONTAB, sandbox token claims. */
    SIGNING_KEY_TABLE: tableName.default('signingkeys'),
    SIGNING_KEY_ROTATION_SCHEDULE: z.string().regex(/^\S+( \S+){5}$/, 'must be a six-field NCRONTAB expression').default(DEFAULT_SCHEDULES.SIGNING_KEY_ROTATION_SCHEDULE),
    /** How often `sweepExpired` runs: leases, deadlines, orphaned sandboxes, purges after retention. */
    SWEEP_SCHEDULE: z.string().regex(/^\S+( \S+){5}$/, 'must be a six-field NCRONTAB expression').default('0 */1 * * * *'),
    PLATFORM_ISSUER: z.url().default('http://127.0.0.1:7071'),
    SANDBOX_TOKEN_AUDIENCE: z.string().min(1).default('disco-parrot-sandbox'),
    SANDBOX_TOKEN_MINUTES: z.coerce.number().int().min(1).max(60).default(15),
    /**
     * `iss` of workload identity tokens (docs/identity.md): the platform's public URL under `/api`, where
     * `/.well-known/openid-configuration` is served. Default: PLATFORM_ISSUER + `/api`. Production requires https.
     */
    IDENTITY_ISSUER: z.url().regex(/^https?:\/\/[^?#]*[^/?#]$/, 'must be an http(s) URL without query, fragment or trailing slash').optional(),
    /** Messaging (docs/messaging.md). Azure: the Service Bus namespace, identity-based; unset locally (storage queues). */
    ServiceBusConnection__fullyQualifiedNamespace: z.string().regex(/^[A-Za-z0-9-]+\.servicebus\.windows\.net$/, 'must be <namespace>.servicebus.windows.net').optional(),
    /** Where the outbox publishes: the Service Bus topic in Azure, the storage queue of the same name locally. */
    EVENTS_TOPIC: z.string().regex(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, 'must be a queue/topic name (lower case, digits, -)').default('events'),
    RUN_REQUEST_TABLE: tableName.default('runrequests'),
    /**
     * Producers whose signed `runs` messages are accepted: a JWKS of public Ed25519 keys (`{"keys":[{"kty":"OKP",
     * "crv":"Ed25519","x":…,"kid":…}]}`). Outside production the local producer (`npm run enqueue-run`) is trusted too.
     */
    RUN_PRODUCER_KEYS: z
      .string()
      .refine((text) => {
        try {
          return producerKeysSchema.safeParse(JSON.parse(text)).success;
        } catch {
          return false;
        }
      }, 'must be a JWKS of public Ed25519 keys, each with a kid')
      .optional(),
    /** The local producer's key folder (default `.azurite/run-producer`); unused in production. */
    RUN_PRODUCER_KEY_DIR: z.string().min(1).optional(),
    OUTBOX_INDEX_TABLE: tableName.default('outboxpending'),
    OUTBOX_SCHEDULE: z.string().regex(/^\S+( \S+){5}$/, 'must be a six-field NCRONTAB expression').default(DEFAULT_SCHEDULES.OUTBOX_SCHEDULE),
    OUTBOX_MARKER_GRACE_SECONDS: z.coerce.number().int().min(60).max(86_400).default(600),
    /** Backups and witnessed heads (docs/backup.md): the immutable archive container, the backup-key table, two timers. */
    BACKUP_CONTAINER: z.string().regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, 'must be a blob container name').default('auditarchive'),
    BACKUP_KEY_TABLE: tableName.default('backupkeys'),
    BACKUP_SCHEDULE: z.string().regex(/^\S+( \S+){5}$/, 'must be a six-field NCRONTAB expression').default(DEFAULT_SCHEDULES.BACKUP_SCHEDULE),
    WITNESS_SCHEDULE: z.string().regex(/^\S+( \S+){5}$/, 'must be a six-field NCRONTAB expression').default(DEFAULT_SCHEDULES.WITNESS_SCHEDULE),
    /** SANDBOX_HOST=remote locally: the TLS port the host channel listens on, and where its self-signed certificate is kept. */
    HOST_CHANNEL_PORT: z.coerce.number().int().min(0).max(65535).default(7073),
    HOST_CHANNEL_TLS_DIR: z.string().min(1).default('.azurite/host-channel'),
    /** SANDBOX_HOST=remote in Azure: the Web PubSub endpoint (managed identity, no keys) and hub the host channel ends in. */
    HOST_CHANNEL_PUBSUB_ENDPOINT: z.string().url().optional(),
    HOST_CHANNEL_PUBSUB_HUB: z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,127}$/).default('sandboxhosts'),
    /** The host channel's sessions, shared by every instance (docs/sandbox-hosts.md, "Several instances"). */
    HOST_SESSION_TABLE: tableName.default('hostsessions'),
    /** The object id of Web PubSub's managed identity: its upstream tokens must name it (SANDBOX_HOST=remote in production requires it). */
    HOST_CHANNEL_PUBSUB_PRINCIPAL_ID: z.string().regex(/^[0-9a-fA-F-]{36}$/).optional(),
    /** The managed identities (object ids, comma-separated) of the managed pool's machines: each may enrol itself with its Entra ID token. */
    MANAGED_POOL_PRINCIPAL_IDS: z.string().regex(/^[0-9a-fA-F-]{36}(,[0-9a-fA-F-]{36})*$/, 'must be comma-separated object ids').optional(),
    /**
     * Tests only: loopback `host:port` servers (a git server, an npm registry) an isolated sandbox may reach
     * through its doors and the egress proxy. A production configuration refuses it.
     */
    SANDBOX_EGRESS_TEST_SERVERS: z
      .string()
      .regex(/^((127\.0\.0\.1|localhost):\d{1,5})(,(127\.0\.0\.1|localhost):\d{1,5})*$/, 'must be a comma-separated list of 127.0.0.1:<port> or localhost:<port>')
      .optional(),
    /**
     * Where sandboxes run, chosen explicitly: `local-process` (this machine's processes; development only) or
     * `docker` (a container per run on the engine at DOCKER_HOST, image SANDBOX_IMAGE or `npm run sandbox-image`'s)
     * or `remote` (enrolled host agents over their TLS channel, docs/sandbox-hosts.md).
     */
    SANDBOX_HOST: z.enum(['local-process', 'docker', 'remote']).default('local-process'),
    SANDBOX_IMAGE: z.string().min(1).optional(),
    /** The Docker engine of SANDBOX_HOST=docker: a unix socket (default unix:///var/run/docker.sock). */
    DOCKER_HOST: z.string().regex(/^unix:\/\/\/.+/, 'must be unix:///<socket path>').optional(),
    /** Per-sandbox limits of the local host (its cgroups, infra/sandbox/sandboxCgroup.ts). */
    SANDBOX_PIDS_MAX: z.coerce.number().int().min(16).max(65_536).default(512),
    SANDBOX_MEMORY_MB: z.coerce.number().int().min(64).max(262_144).default(2048),
    SANDBOX_CPUS: z.coerce.number().min(0).max(256).default(2),
    /** SANDBOX_HOST=docker: the size of a workspace's own tmpfs (counted in the sandbox's memory); a kept volume has no quota. */
    SANDBOX_WORKSPACE_MB: z.coerce.number().int().min(16).max(262_144).default(1024),
    /** SANDBOX_HOST=docker on a userns-remap engine: the host uid (and gid) of container root, checked against the engine's map at start. */
    SANDBOX_USERNS_BASE: z.string().regex(/^\d+(?::\d+)?$/, 'must be <uid> or <uid>:<gid>').optional(),
    DURABLE_TASK_HUB: z.string().regex(/^[A-Za-z][A-Za-z0-9]{2,44}$/).default('discoparrotlocal'),
  })
  .superRefine((s, ctx) => {
    if (!s.AzureWebJobsStorage && !s.AzureWebJobsStorage__accountName)
      ctx.addIssue({ code: 'custom', path: ['AzureWebJobsStorage'], message: 'set a connection string (local) or AzureWebJobsStorage__accountName (Azure)' });
    if (s.AUTH_MODE === 'entra' && (!s.AUTH_ISSUER || !s.AUTH_JWKS_URL))
      ctx.addIssue({ code: 'custom', path: ['AUTH_ISSUER'], message: 'AUTH_MODE=entra needs AUTH_ISSUER and AUTH_JWKS_URL' });
    if (s.VAULT_KIND === 'keyvault')
      for (const name of ['WORKSPACE_VAULTS_SUBSCRIPTION_ID', 'WORKSPACE_VAULTS_RESOURCE_GROUP', 'WORKSPACE_VAULTS_LOCATION', 'AZURE_TENANT_ID'] as const)
        if (!s[name]) ctx.addIssue({ code: 'custom', path: [name], message: 'VAULT_KIND=keyvault needs it' });
    if (s.WORKSPACE_VAULTS_RESOURCE_GROUPS && s.WORKSPACE_VAULTS_RESOURCE_GROUP && !s.WORKSPACE_VAULTS_RESOURCE_GROUPS.includes(s.WORKSPACE_VAULTS_RESOURCE_GROUP))
      ctx.addIssue({
        code: 'custom', path: ['WORKSPACE_VAULTS_RESOURCE_GROUPS'],
        message: 'must include WORKSPACE_VAULTS_RESOURCE_GROUP (vaults recorded without a group live there)',
      });
    if (s.DISCO_ENV === 'production') {
      if (s.VAULT_KIND === 'table' && !s.VAULT_SINGLE_TENANT)
        ctx.addIssue({
          code: 'custom', path: ['VAULT_KIND'],
          message: 'production keeps each workspace in its own Key Vault (VAULT_KIND=keyvault); a single-tenant install may say VAULT_SINGLE_TENANT=true',
        });
      if (s.AzureWebJobsStorage)
        ctx.addIssue({ code: 'custom', path: ['AzureWebJobsStorage'], message: 'production uses managed identity: no connection string' });
      if (s.AUTH_MODE !== 'entra') ctx.addIssue({ code: 'custom', path: ['AUTH_MODE'], message: 'production refuses the dev issuer' });
      if (!s.PLATFORM_ISSUER.startsWith('https://'))
        ctx.addIssue({ code: 'custom', path: ['PLATFORM_ISSUER'], message: 'production tokens name an https issuer' });
      if (s.IDENTITY_ISSUER !== undefined && !s.IDENTITY_ISSUER.startsWith('https://'))
        ctx.addIssue({ code: 'custom', path: ['IDENTITY_ISSUER'], message: 'production identity tokens name an https issuer' });
      if (s.SANDBOX_EGRESS_TEST_SERVERS)
        ctx.addIssue({ code: 'custom', path: ['SANDBOX_EGRESS_TEST_SERVERS'], message: 'production refuses test servers on the egress path' });
      if (!s.VAULT_MASTER_KEY_ID)
        ctx.addIssue({ code: 'custom', path: ['VAULT_MASTER_KEY_ID'], message: 'production keeps the master key in Key Vault' });
    }
  });

export type Settings = z.infer<typeof settingsSchema>;

/** The workload identity issuer: IDENTITY_ISSUER, or PLATFORM_ISSUER under `/api` (where the app serves its routes). */
export function identityIssuerOf(settings: Pick<Settings, 'IDENTITY_ISSUER' | 'PLATFORM_ISSUER'>): string {
  return settings.IDENTITY_ISSUER ?? `${settings.PLATFORM_ISSUER.replace(/\/+$/, '')}/api`;
}

/** The app's settings, validated once per process (the composition root builds everything from them). */
export const appSettings = once(() => loadSettings());

type ScheduleSetting = keyof typeof DEFAULT_SCHEDULES;

/**
 * What trigger registration needs, read as the app's modules load, before `appStart` validates the rest (so a
 * malformed value is named there, in one line, rather than failing the module load): each timer's schedule as
 * set or its default, and whether Service Bus carries the `runs` queue.
 */
export function registrationSettings(env: Readonly<Record<string, string | undefined>> = process.env): {
  readonly schedule: (name: ScheduleSetting) => string;
  readonly serviceBus: boolean;
} {
  return {
    schedule: (name) => env[name] || DEFAULT_SCHEDULES[name],
    serviceBus: Boolean(env.ServiceBusConnection__fullyQualifiedNamespace),
  };
}

/** What the Functions platform or the local host sets about the running app (not app settings of ours). */
export interface PlatformEnvironment {
  /** Azure: the Function App's default host name. */
  readonly WEBSITE_HOSTNAME?: string | undefined;
  /** The local host: the port it serves on. */
  readonly LOCAL_HOST_PORT?: string | undefined;
}

export function platformEnvironment(env: Readonly<Record<string, string | undefined>> = process.env): PlatformEnvironment {
  return { WEBSITE_HOSTNAME: env.WEBSITE_HOSTNAME, LOCAL_HOST_PORT: env.LOCAL_HOST_PORT };
}

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

/** Validates settings, naming each missing or malformed one (never printing a value). */
export function loadSettings(env: Readonly<Record<string, string | undefined>> = process.env): Settings {
  const result = settingsSchema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join('.') || 'settings'}: ${i.message}`);
  // One line, so a host can print it as the one line that stops the start.
  throw new SettingsError(`Invalid setting ${problems.join('; ')}`);
}
