import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuardPolicy } from '../../../domain/launchGuard';
import { LocalProcessSandboxHost } from '../../../infra/sandbox/localProcessSandboxHost';
import { detectCgroupSupport } from '../../../infra/sandbox/sandboxCgroup';
import { pidsInNamespace, redactorFor } from './sandboxTestKit';

/**
 * Resource limits, attacked from inside as the agent on the real local host (root here and in CI): a fork
 * bomb stops at the pids limit while the host stays responsive, a memory hog is OOM-killed with a result
 * that says so, and teardown leaves no cgroup behind.
 */
const node = process.execPath;
const guard: GuardPolicy = { secretNames: [], managedValues: [] };
const redactor = redactorFor([]);
const limits = { pidsMax: 64, memoryBytes: 128 * 1024 ** 2, cpus: 1 };

let root: string;
let host: LocalProcessSandboxHost;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'dp-cgroup-'));
  host = await LocalProcessSandboxHost.open({ root, limits, warn: () => undefined });
});
afterAll(() => rm(root, { recursive: true, force: true }));

const numberIn = (file: string, key?: string): number => {
  const text = readFileSync(file, 'utf8');
  return Number(key ? new RegExp(`^${key}\\s+(\\d+)`, 'm').exec(text)?.[1] : text.trim());
};

describe('cgroup limits of the local host', () => {
  it('finds cgroups it can write on this machine, so the host is isolated with limits', async () => {
    const support = await detectCgroupSupport();
    expect(support).toMatchObject({ available: true });
    expect(host.capabilities).toEqual({ isolated: true });
  });

  it('stops a fork bomb at the pids limit; the host and a neighbour sandbox stay responsive', { timeout: 120_000 }, async () => {
    const bombed = await host.create({ runId: 'bomb', files: {}, redactor, guard });
    const neighbour = await host.create({ runId: 'neighbour', files: {}, redactor, guard });
    try {
      const dirs = host.inspect(bombed).cgroupDirs ?? [];
      const pidsDir = dirs.find((d) => existsSync(path.join(d, 'pids.max'))) ?? '';
      expect(numberIn(path.join(pidsDir, 'pids.max'))).toBe(limits.pidsMax);
      const bomb = host.exec(bombed, { argv: ['/bin/bash', '-c', 'bomb() { bomb | bomb & }; bomb; sleep 8'], identity: 'agent', timeoutMs: 8_000 });
      let peak = 0;
      const started = Date.now();
      // While it runs: the host forks at once, the neighbour runs a command, the bomb never passes its limit.
      await new Promise((r) => setTimeout(r, 1_500));
      for (let i = 0; i < 10; i++) {
        peak = Math.max(peak, numberIn(path.join(pidsDir, 'pids.current')));
        const t0 = Date.now();
        expect(spawnSync('/bin/true').status).toBe(0);
        expect(Date.now() - t0).toBeLessThan(2_000);
        await new Promise((r) => setTimeout(r, 100));
      }
      const t1 = Date.now();
      const beside = await host.exec(neighbour, { argv: [node, '-e', 'console.log("alive")'], identity: 'agent', timeoutMs: 20_000 });
      expect(beside.stdout).toBe('alive\n');
      expect(Date.now() - t1).toBeLessThan(15_000);
      expect(Date.now() - started).toBeLessThan(60_000);
      expect(peak).toBeGreaterThan(limits.pidsMax / 2); // the bomb really bombed
      expect(peak).toBeLessThanOrEqual(limits.pidsMax);
      expect(numberIn(path.join(pidsDir, 'pids.events'), 'max')).toBeGreaterThan(0);
      const result = await bomb;
      expect(result.stderr).toContain(`the process limit (${limits.pidsMax}) was reached`);
      const nsId = host.inspect(bombed).nsId ?? '';
      await host.teardown(bombed);
      expect(pidsInNamespace(nsId)).toEqual([]);
      for (const dir of dirs) expect(existsSync(dir), dir).toBe(false);
    } finally {
      await host.teardown(bombed);
      await host.teardown(neighbour);
    }
  });

  it('OOM-kills a memory hog inside its sandbox, and the result says the memory limit did it', { timeout: 60_000 }, async () => {
    const sandbox = await host.create({ runId: 'hog', files: {}, redactor, guard });
    try {
      const hog = 'const a=[];for(;;){a.push(Buffer.alloc(8<<20,1))}';
      const result = await host.exec(sandbox, { argv: [node, '-e', hog], identity: 'agent', timeoutMs: 30_000 });
      expect(result.timedOut).toBe(false);
      expect(result.exitCode === 137 || result.signal === 'SIGKILL', JSON.stringify(result)).toBe(true);
      expect(result.stderr).toContain('the memory limit (128 MiB) was reached');
      // The sandbox itself goes on; the next command gets no stale note.
      const after = await host.exec(sandbox, { argv: [node, '-e', 'console.log("next")'], identity: 'agent' });
      expect(after).toMatchObject({ exitCode: 0, stdout: 'next\n', stderr: '' });
    } finally {
      await host.teardown(sandbox);
    }
  });

  it('teardown removes every cgroup directory of the sandbox, and is idempotent', async () => {
    const sandbox = await host.create({ runId: 'cg', files: {}, redactor, guard });
    const dirs = host.inspect(sandbox).cgroupDirs ?? [];
    try {
      expect(dirs.length).toBeGreaterThanOrEqual(2); // pids and memory (and cpu where there is one)
      const daemon = 'setsid sh -c "echo \\$\\$ > daemon.tmp && mv daemon.tmp daemon.pid; exec sleep 600" > /dev/null 2>&1 & while [ ! -s daemon.pid ]; do sleep 0.05; done';
      expect((await host.exec(sandbox, { argv: ['/bin/sh', '-c', daemon], identity: 'agent' })).exitCode).toBe(0);
      const procs = dirs.map((d) => readFileSync(path.join(d, 'cgroup.procs'), 'utf8').trim());
      expect(procs.every((p) => p !== ''), JSON.stringify(procs)).toBe(true); // the daemon sits in each of the sandbox's cgroups
    } finally {
      await host.teardown(sandbox);
    }
    for (const dir of dirs) expect(existsSync(dir), dir).toBe(false);
    await host.teardown(sandbox);
  });
});
