import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { GuardedLauncher } from '../../../infra/sandbox/guardedLauncher';
import { isInitOf, processesIn, startPidNamespace } from '../../../infra/sandbox/pidNamespace';
import { sandboxBinds } from '../../../infra/sandbox/sandboxRoot';
import { redactorFor } from './sandboxTestKit';

const isRoot = process.getuid?.() === 0;
let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'dp-pidns-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

async function aNamespace(name: string): Promise<Awaited<ReturnType<typeof startPidNamespace>>> {
  const dir = path.join(root, name);
  for (const sub of ['rootfs', 'workspace', 'home', 'credentials']) await mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
  return startPidNamespace({
    launcher: new GuardedLauncher(), env: { PATH: '/usr/bin:/bin' }, guard: { secretNames: [], managedValues: [] }, redactor: redactorFor([]), cwd: dir,
    rootDir: path.join(dir, 'rootfs'), binds: sandboxBinds({ workspace: path.join(dir, 'workspace'), home: path.join(dir, 'home'), credentialDir: path.join(dir, 'credentials') }),
  });
}

// A namespace's init that died on its own was reaped by its unshare, and on a busy machine (pid_max 32768 here)
// its number soon belongs to another process: the host agent of a neighbouring run, say. Closing such a namespace
// later must signal nothing, or it kills whatever took the number.
it.runIf(isRoot)('closing a namespace whose init already died signals nothing', async () => {
  const ns = await aNamespace('died');
  expect(await isInitOf(ns.initPid, ns.nsId, ns.holder.pid)).toBe(true);
  process.kill(ns.initPid, 'SIGKILL');
  await ns.holder.exited;
  expect(await isInitOf(ns.initPid, ns.nsId, ns.holder.pid)).toBe(false);
  const kill = vi.spyOn(process, 'kill');
  try {
    await ns.close();
    expect(kill.mock.calls.filter(([pid]) => pid === ns.initPid)).toEqual([]);
  } finally {
    kill.mockRestore();
  }
}, 60_000);

it.runIf(isRoot)('closing a live namespace kills its init and returns once unshare has reaped it', async () => {
  const ns = await aNamespace('live');
  expect(await processesIn(ns.nsId)).toContain(ns.initPid);
  await ns.close();
  expect(await processesIn(ns.nsId)).toEqual([]);
  expect(await isInitOf(ns.initPid, ns.nsId, ns.holder.pid)).toBe(false);
}, 60_000);
