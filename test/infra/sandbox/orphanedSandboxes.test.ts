import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OWNER_FILE, removeOrphanedSandboxes } from '../../../infra/sandbox/orphanedSandboxes';

/** A pid above the kernel's pid_max cannot belong to a live process. */
const DEAD_PID = 4_194_305;

function sandboxAt(roots: { root: string; credentialRoot: string }, owner?: number, ageMs = 0): string {
  const id = randomUUID();
  const dir = path.join(roots.root, 'sandboxes', id);
  mkdirSync(path.join(dir, 'workspace'), { recursive: true });
  mkdirSync(path.join(roots.credentialRoot, id, 'p1'), { recursive: true });
  writeFileSync(path.join(roots.credentialRoot, id, 'p1', 'token'), 'credential-material', { mode: 0o600 });
  if (owner !== undefined) writeFileSync(path.join(dir, OWNER_FILE), String(owner));
  if (ageMs) {
    const then = new Date(Date.now() - ageMs);
    utimesSync(dir, then, then);
  }
  return id;
}

describe('removing orphaned sandboxes', () => {
  it('removes what dead host processes left, never a live process’s sandbox', async () => {
    const base = mkdtempSync(path.join(tmpdir(), 'dp-orphans-'));
    const roots = { root: path.join(base, 'root'), credentialRoot: path.join(base, 'cred') };
    const deadOwner = sandboxAt(roots, DEAD_PID);
    const liveOwner = sandboxAt(roots, process.pid);
    const beingCreated = sandboxAt(roots);
    const abandonedUnowned = sandboxAt(roots, undefined, 60 * 60_000);
    const liveHere = sandboxAt(roots, DEAD_PID);
    // Credential dirs with no sandbox root here may be another host's (another root, the same tmpfs):
    // a fresh one is left alone, one older than any run can live is removed.
    const foreignFresh = randomUUID();
    mkdirSync(path.join(roots.credentialRoot, foreignFresh), { recursive: true });
    const credentialOnly = randomUUID();
    mkdirSync(path.join(roots.credentialRoot, credentialOnly), { recursive: true });
    const old = new Date(Date.now() - 3 * 60 * 60_000);
    utimesSync(path.join(roots.credentialRoot, credentialOnly), old, old);

    const removed = await removeOrphanedSandboxes(roots, (id) => id === liveHere);

    expect(removed).toBe(3);
    const exists = (id: string) => existsSync(path.join(roots.root, 'sandboxes', id)) || existsSync(path.join(roots.credentialRoot, id));
    expect([deadOwner, abandonedUnowned, credentialOnly].filter(exists)).toEqual([]);
    expect([liveOwner, beingCreated, liveHere, foreignFresh].every(exists)).toBe(true);
    // Two sweeps at once: the second finds nothing more to do.
    expect(await removeOrphanedSandboxes(roots, (id) => id === liveHere)).toBe(0);
  });
});
