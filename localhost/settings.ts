import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { LocalHostConfigError } from './problems';

/** local.settings.json as Core Tools reads it; Values are app settings and must be strings. */
const localSettingsFileSchema = z.object({
  IsEncrypted: z.boolean().optional(),
  Values: z.record(z.string(), z.string()).optional(),
  Host: z.object({ LocalHttpPort: z.number().int().min(1).max(65535).optional() }).loose().optional(),
}).loose();

export interface LocalSettingsFile {
  readonly path: string | undefined;
  readonly values: Readonly<Record<string, string>>;
  readonly localHttpPort: number | undefined;
}

/** Reads `local.settings.json` if present, else `local.settings.sample.json`, from the app folder. */
export function readLocalSettings(appDir: string): LocalSettingsFile {
  for (const name of ['local.settings.json', 'local.settings.sample.json']) {
    const file = path.join(appDir, name);
    if (!existsSync(file)) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      throw new LocalHostConfigError(`${name} is not valid JSON.`);
    }
    const parsed = localSettingsFileSchema.safeParse(raw);
    if (!parsed.success) throw new LocalHostConfigError(`${name} is malformed: ${describeIssue(parsed.error)}.`);
    if (parsed.data.IsEncrypted) throw new LocalHostConfigError(`${name} is encrypted; the local host reads only plain settings (IsEncrypted: false).`);
    return { path: file, values: parsed.data.Values ?? {}, localHttpPort: parsed.data.Host?.LocalHttpPort };
  }
  return { path: undefined, values: {}, localHttpPort: undefined };
}

export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const where = issue.path.length > 0 ? issue.path.join('.') : '(root)';
  return `${where}: ${issue.message}`;
}

/**
 * Merges file settings under the environment, as Core Tools does (a variable already in the environment
 * wins over local.settings.json), and exports the result to process.env so app code sees its settings.
 */
export function mergeSettings(file: Readonly<Record<string, string>>, env: NodeJS.ProcessEnv): Record<string, string> {
  const merged: Record<string, string> = { ...file };
  for (const [key, value] of Object.entries(env)) if (value !== undefined) merged[key] = value;
  return merged;
}

const PORT = 'must be a port number from 1 to 65535';
const port = z.coerce.number({ error: PORT }).int(PORT).min(1, PORT).max(65535, PORT);

const hostSettingsSchema = z.object({
  AzureWebJobsStorage: z.string({ error: 'is required (a storage connection string, or UseDevelopmentStorage=true for the embedded Azurite)' }).min(1, 'must not be empty'),
  LOCAL_HOST_PORT: port.optional(),
  FUNCTIONS_HTTP_PORT: port.optional(),
  LOCAL_HOST_MAX_BODY_BYTES: z.coerce.number({ error: 'must be a positive whole number of bytes' }).int('must be a positive whole number of bytes').min(1, 'must be a positive whole number of bytes').optional(),
  AZURITE_BLOB_PORT: port.optional(),
  AZURITE_QUEUE_PORT: port.optional(),
  AZURITE_TABLE_PORT: port.optional(),
  AZURITE_LOCATION: z.string().min(1).optional(),
  DISCO_ENV: z.enum(['development', 'test', 'production']).optional(),
});

export interface HostSettings {
  readonly storage: string;
  readonly httpPort: number;
  readonly maxBodyBytes: number;
  readonly azuritePorts: { blob: number; queue: number; table: number };
  /** Where the embedded Azurite keeps its data; undefined means `.azurite/storage` in the project. */
  readonly azuriteLocation: string | undefined;
  readonly production: boolean;
}

/** RunSpecs may be 1 MiB; JSON framing around one needs a little more. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024 + 64 * 1024;

export function hostSettings(settings: Readonly<Record<string, string>>, localHttpPort?: number): HostSettings {
  const parsed = hostSettingsSchema.safeParse(settings);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = issue?.path[0] !== undefined ? String(issue.path[0]) : 'settings';
    const message = issue?.message ?? 'is invalid';
    throw new LocalHostConfigError(`Setting ${name} ${/^(is|must) /.test(message) ? message : `is invalid: ${message}`}.`);
  }
  const s = parsed.data;
  return {
    storage: s.AzureWebJobsStorage,
    httpPort: s.LOCAL_HOST_PORT ?? s.FUNCTIONS_HTTP_PORT ?? localHttpPort ?? 7071,
    maxBodyBytes: s.LOCAL_HOST_MAX_BODY_BYTES ?? DEFAULT_MAX_BODY_BYTES,
    azuritePorts: { blob: s.AZURITE_BLOB_PORT ?? 10000, queue: s.AZURITE_QUEUE_PORT ?? 10001, table: s.AZURITE_TABLE_PORT ?? 10002 },
    azuriteLocation: s.AZURITE_LOCATION,
    production: s.DISCO_ENV === 'production',
  };
}

/** Resolves `%NAME%` app-setting references in binding values, as the host does. */
export function resolveSettingReferences(value: string, settings: Readonly<Record<string, string>>): string {
  return value.replace(/%([^%]+)%/g, (_whole, name: string) => {
    const resolved = settings[name];
    if (resolved === undefined) throw new LocalHostConfigError(`Setting ${name} is referenced as %${name}% but is not set.`);
    return resolved;
  });
}

export function isDevelopmentStorage(connection: string): boolean {
  return /^\s*UseDevelopmentStorage\s*=\s*true\s*;?\s*$/i.test(connection);
}
