import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import type { DeliveryTarget } from '../credentialDelivery';

/**
 * Creates a file that only the receiving process's uid can read. `wx` (O_CREAT|O_EXCL) refuses to follow or
 * reuse anything already at that path, so a planted symlink cannot redirect the secret; the mode is set on
 * the open descriptor because the umask could only narrow it, and the owner is changed before the content
 * is written so the file never holds the secret while owned by the wrong uid.
 */
export async function writePrivateFile(
  target: DeliveryTarget,
  prefix: string,
  content: string,
  mode: 0o600 | 0o700 = 0o600,
): Promise<string> {
  const file = path.join(target.credentialDir, `${prefix}-${randomBytes(6).toString('hex')}`);
  const handle = await open(file, 'wx', mode);
  try {
    await handle.chmod(mode);
    if (target.uid !== undefined) await handle.chown(target.uid, target.gid ?? target.uid);
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(file, { force: true });
    throw error;
  }
  await handle.close();
  return file;
}

/** A cleanup that removes `paths`; calling it again, or after the files are already gone, is harmless. */
export function removingCleanup(paths: readonly string[]): () => Promise<void> {
  return async () => {
    await Promise.all(paths.map((p) => rm(p, { force: true, recursive: true })));
  };
}
