import { rm } from 'node:fs/promises';
import path from 'node:path';

const SANDBOX_ID = /^[0-9a-f-]{36}$/;

/**
 * Removes the disk of a sandbox whose host instance died: its scratch root and its credential directory.
 * Its processes died with the host (the pid namespace's init is tied to the host by PDEATHSIG).
 */
export function leftoverRemover(roots: { sandboxRoot: string; credentialRoot: string }): (sandboxId: string) => Promise<void> {
  return async (sandboxId) => {
    if (!SANDBOX_ID.test(sandboxId)) return;
    await rm(path.join(roots.credentialRoot, sandboxId), { recursive: true, force: true });
    await rm(path.join(roots.sandboxRoot, 'sandboxes', sandboxId), { recursive: true, force: true });
  };
}
