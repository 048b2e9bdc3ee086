import { readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';

const SANDBOX_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A directory without an owner file younger than this may still be being created. */
const CREATION_GRACE_MS = 10 * 60_000;
/**
 * A credential directory whose sandbox root is not under this host's root may belong to a host with another
 * root that shares the credential tmpfs; it is left to that host unless it is older than any run can live.
 */
const FOREIGN_CREDENTIAL_MAX_AGE_MS = 2 * 60 * 60_000;
export const OWNER_FILE = '.owner';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function ownerAlive(sandboxRoot: string, now: number): Promise<boolean> {
  try {
    const pid = Number((await readFile(path.join(sandboxRoot, OWNER_FILE), 'utf8')).trim());
    return Number.isSafeInteger(pid) && pid > 0 && processAlive(pid);
  } catch {
    try {
      return now - (await stat(sandboxRoot)).mtimeMs < CREATION_GRACE_MS;
    } catch {
      return false;
    }
  }
}

async function youngerThan(dir: string, ageMs: number, now: number): Promise<boolean> {
  try {
    return now - (await stat(dir)).mtimeMs < ageMs;
  } catch {
    return false;
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((name) => SANDBOX_ID.test(name));
  } catch {
    return [];
  }
}

/**
 * Removes sandbox roots and credential directories whose owning host process is gone (a crashed instance's
 * leftovers). A sandbox of a live host process — this one or another on the same machine — is never touched.
 */
export async function removeOrphanedSandboxes(roots: { root: string; credentialRoot: string }, isLiveHere: (sandboxId: string) => boolean, now = Date.now()): Promise<number> {
  const sandboxesDir = path.join(roots.root, 'sandboxes');
  const localRoots = new Set(await list(sandboxesDir));
  const ids = new Set([...localRoots, ...(await list(roots.credentialRoot))]);
  let removed = 0;
  for (const id of ids) {
    if (isLiveHere(id)) continue;
    if (localRoots.has(id) ? await ownerAlive(path.join(sandboxesDir, id), now) : await youngerThan(path.join(roots.credentialRoot, id), FOREIGN_CREDENTIAL_MAX_AGE_MS, now)) continue;
    await rm(path.join(roots.credentialRoot, id), { recursive: true, force: true });
    await rm(path.join(sandboxesDir, id), { recursive: true, force: true });
    removed++;
  }
  return removed;
}
