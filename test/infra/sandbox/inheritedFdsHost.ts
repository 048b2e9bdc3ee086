/**
 * Run as its own node process (bundled by the test) that holds descriptors above 2 without O_CLOEXEC,
 * as a host started by a supervisor or a shell may: prints what its own child sees (the control) and what
 * a sandbox process of each identity sees.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRedactor } from '../../../domain/redaction';
import { LocalProcessSandboxHost } from '../../../infra/sandbox/localProcessSandboxHost';

const LIST_SHELL_FDS = ['/bin/sh', '-c', 'ls /proc/$$/fd'];
const fdsOf = (listing: string): number[] => listing.split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);

async function main(): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'dp-fds-'));
  const isolation = process.argv[2] === 'off' ? 'off' : 'auto';
  const host = await LocalProcessSandboxHost.open({ root, isolation, warn: () => undefined });
  const redactor = createRedactor([]);
  const sandbox = await host.create({ runId: 'fds', files: {}, redactor, guard: { secretNames: [], managedValues: [] } });
  try {
    const control = fdsOf(spawnSync(LIST_SHELL_FDS[0] as string, LIST_SHELL_FDS.slice(1), { encoding: 'utf8' }).stdout);
    const agent = fdsOf((await host.exec(sandbox, { argv: LIST_SHELL_FDS, identity: 'agent' })).stdout);
    const credential = fdsOf((await host.exec(sandbox, { argv: LIST_SHELL_FDS, identity: 'credential' })).stdout);
    console.log(JSON.stringify({ isolated: host.capabilities.isolated, control, agent, credential }));
  } finally {
    await host.teardown(sandbox);
    await rm(root, { recursive: true, force: true });
  }
}

void main();
