import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LocalProcessSandboxHost } from '../../../infra/sandbox/localProcessSandboxHost';
import { redactorFor } from './sandboxTestKit';

const isRoot = process.getuid?.() === 0;
let root: string;
let host: LocalProcessSandboxHost;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'dp-stop-'));
  host = await LocalProcessSandboxHost.open({ root, warn: () => undefined });
});
afterAll(() => rm(root, { recursive: true, force: true }));

const childrenOf = (pid: number): number[] => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
};

/** State and parent of a process as the host sees it, or undefined once it is gone. */
const statOf = (pid: number): { state: string; ppid: number } | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
};

// A stopped server's process inside the namespace must be reaped by its nsenter (outside it). Orphaned to the
// host's pid 1 instead, it stays a zombie until that pid 1 reaps it (seconds in a container), and the namespace,
// so the sandbox's teardown, cannot end before then. The cgroup join in front of nsenter once hid it from the
// launcher, which then killed nsenter with its group.
it.runIf(isRoot)('stopping a sandboxed process leaves it reaped by its nsenter, not orphaned to the host pid 1', async () => {
  expect(host.capabilities.isolated).toBe(true);
  const sandbox = await host.create({ runId: 'run-stop', files: {}, redactor: redactorFor([]), guard: { secretNames: [], managedValues: [] } });
  try {
    const server = await host.start(sandbox, { argv: [process.execPath, '-e', 'setInterval(() => {}, 1000)'], identity: 'credential' });
    let inside: number[] = [];
    for (let i = 0; i < 200 && inside.length === 0; i++) {
      inside = childrenOf(server.pid);
      if (inside.length === 0) await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(inside).toHaveLength(1);
    await server.stop();
    // stop() resolves when the leader (nsenter) has exited, which it does only after reaping its child.
    const left = statOf(inside[0]!);
    expect(left === undefined || left.ppid !== 1, `pid ${inside[0]} left as ${JSON.stringify(left)}`).toBe(true);
  } finally {
    await host.teardown(sandbox);
  }
}, 60_000);
