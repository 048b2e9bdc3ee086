import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { chmod, chown, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { createRedactor } from '../../../domain/redaction';
import type { CredentialDelivery, DeliveryTarget } from '../../../infra/sandbox/credentialDelivery';

/** A managed value that looks like a real token and is unique to one test. */
export function aSecretValue(prefix = 'tok'): string {
  return `${prefix}_${randomBytes(18).toString('base64url')}`;
}

export function redactorFor(secrets: { name: string; value: string }[]) {
  return createRedactor(secrets);
}

/** The process-env channel, reduced to what the launcher sees. */
export function envDelivery(name: string, value: string): CredentialDelivery & { cleaned: () => boolean } {
  let cleaned = false;
  return { env: { [name]: value }, argsAfterCommand: [], paths: [], cleanup: async () => void (cleaned = true), cleaned: () => cleaned };
}

async function privateFile(target: DeliveryTarget, name: string, content: string): Promise<string> {
  const file = path.join(target.credentialDir, name);
  const handle = await open(file, 'wx', 0o600);
  await handle.chmod(0o600);
  if (target.uid !== undefined) await handle.chown(target.uid, target.gid ?? target.uid);
  await handle.writeFile(content);
  await handle.close();
  return file;
}

/** A 0600 temp file on the credential tmpfs; its path in `envName`. */
export async function tempFileDelivery(target: DeliveryTarget, envName: string, value: string): Promise<CredentialDelivery> {
  const file = await privateFile(target, `cred-${randomBytes(4).toString('hex')}`, value);
  return { env: { [envName]: file }, argsAfterCommand: [], paths: [file], cleanup: () => rm(file, { force: true }) };
}

/** A scoped npm config file, passed with --userconfig. */
export async function npmConfigDelivery(target: DeliveryTarget, value: string): Promise<CredentialDelivery> {
  const file = await privateFile(target, 'npmrc', `//127.0.0.1:4873/:_authToken=${value}\n`);
  return { env: {}, argsAfterCommand: [], paths: [file], cleanup: () => rm(file, { force: true }) };
}

/** Polls for a file a sandbox process writes; bounded so a broken test fails rather than hangs. */
export async function waitForFile(file: string, attempts = 500): Promise<string> {
  for (let i = 0; i < attempts; i++) {
    // A writer creates the file before it writes to it: wait for content, not just the name.
    if (existsSync(file)) {
      const content = readFileSync(file, 'utf8');
      if (content !== '') return content;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${path.basename(file)} never appeared`);
}

/** Host pids whose pid namespace is `nsId`. */
export function pidsInNamespace(nsId: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return readlinkSync(`/proc/${pid}/ns/pid`) === nsId;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Host pids running as any uid in [from, to). */
export function pidsWithUidIn(from: number, to: number): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
        return uid >= from && uid < to;
      } catch {
        return false;
      }
    })
    .map(Number);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

export const fixture = (name: string): string => readFileSync(path.join(__dirname, '..', '..', 'fixtures', 'hostile', name), 'utf8');

export { chmod, chown };
