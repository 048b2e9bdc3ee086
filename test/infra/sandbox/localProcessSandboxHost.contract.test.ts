import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { SandboxHandle } from '../../../domain/ports/sandboxHost';
import { launchTickets } from '../../../infra/sandbox/launchTickets';
import { LocalProcessSandboxHost } from '../../../infra/sandbox/localProcessSandboxHost';
import { BLOCK_SIZE } from '../../../infra/sandbox/uidBlocks';
import { describeSandboxHostContract, type SandboxHostFactory } from '../../contracts/sandboxHost.contract';
import { pidsInNamespace, pidsWithUidIn } from './sandboxTestKit';

function filesUnder(dir: string): Array<{ path: string; content: Buffer }> {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .map((file) => ({ path: file, content: readFileSync(file) }));
}

/** The local host on this machine: isolated when root (here and in CI), or with isolation turned off (the control). */
const localHost = (isolation: 'auto' | 'off'): SandboxHostFactory => async (setup) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'dp-contract-'));
  const host = await LocalProcessSandboxHost.open({
    root,
    isolation,
    warn: () => undefined,
    gatewayUrl: setup.gatewayUrl,
    egress: { testServers: () => setup.testServers },
  });
  return {
    host,
    huntDirs: (handle: SandboxHandle) => {
      const { root: sandboxRoot, credentialDir } = host.inspect(handle);
      return [path.dirname(credentialDir), credentialDir, path.dirname(sandboxRoot)];
    },
    traces: (handle: SandboxHandle) => {
      const { root: sandboxRoot, credentialDir, nsId, groupGid, cgroupDirs } = host.inspect(handle);
      return {
        paths: [sandboxRoot, credentialDir, ...(cgroupDirs ?? [])],
        processes: () => [...(nsId ? pidsInNamespace(nsId) : []), ...(groupGid !== undefined ? pidsWithUidIn(groupGid, groupGid + BLOCK_SIZE) : [])].filter((p, i, all) => all.indexOf(p) === i),
      };
    },
    credentialLeftovers: (handle: SandboxHandle) => {
      const dir = host.inspect(handle).credentialDir;
      return existsSync(dir) ? readdirSync(dir) : [];
    },
    workspaceFiles: async (handle: SandboxHandle) => filesUnder(handle.workspace),
    launches: () => launchTickets.issuedCount,
    removeVolume: (name: string) => rm(path.join(root, 'volumes', name), { recursive: true, force: true }),
    close: () => rm(root, { recursive: true, force: true }),
  };
};

describeSandboxHostContract('LocalProcessSandboxHost', localHost('auto'), { keptVolumes: true, ownProcessesOnly: true });
describeSandboxHostContract('LocalProcessSandboxHost, isolation off', localHost('off'), { keptVolumes: true, ownProcessesOnly: true });
