import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { LeftoverRun, SandboxHost } from '../../domain/ports/sandboxHost';

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

/**
 * What teardown removes of a sandbox this instance does not hold: through the host where it has a way (a Docker
 * container by label, a sandbox on a host agent), else the disk a local-process host left.
 */
export function leftoverRemoval(host: SandboxHost, roots: { sandboxRoot: string; credentialRoot: string }): (sandboxId: string, run: LeftoverRun) => Promise<void> {
  const removeLeftover = host.removeLeftover?.bind(host);
  return removeLeftover ? (sandboxId, run) => removeLeftover(sandboxId, run) : leftoverRemover(roots);
}
