import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { vi } from 'vitest';
import type { SandboxHandle, SandboxHost, SandboxRequest } from '../../../../domain/ports/sandboxHost';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import { selfSignedCertificate } from '../../../../localhost/selfSignedCertificate';
import { HostChannelServer } from '../../../../infra/sandbox/remote/hostChannelServer';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { BLOCK_SIZE } from '../../../../infra/sandbox/uidBlocks';
import { createApiHarness } from '../../../support/apiHarness';
import { startHostAgent, until } from '../../../support/hostAgentProcess';
import { describeSandboxHostContract, type SandboxHostFactory } from '../../../contracts/sandboxHost.contract';
import { pidsInNamespace, pidsWithUidIn } from '../sandboxTestKit';

// Starting an agent (and its inner host's isolation probe) is slow on a loaded 2-core runner.
vi.setConfig({ hookTimeout: 180_000 });

/**
 * The SandboxHost contract through the whole remote path: the platform's RemoteSandboxHost, the host channel over
 * real TLS, and a real host agent process whose inner local-process host isolates (these tests run as root).
 * The harness's host-side views read the agent's machine (this one) from the outside, by the paths the agent's
 * inner host uses under the `--root` it was given: nothing of the agent's memory is shared with the test.
 */
const CREDENTIAL_ROOT = existsSync('/dev/shm') ? '/dev/shm/dp-credentials' : path.join(tmpdir(), 'dp-credentials');

function filesUnder(dir: string): Array<{ path: string; content: Buffer }> {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .map((file) => ({ path: file, content: readFileSync(file) }));
}

const throughAgent: SandboxHostFactory = async (setup) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'dp-remote-contract-'));
  const root = path.join(dir, 'sandboxes');
  const api = await createApiHarness();
  const alice = await api.issuer.token('alice');
  const workspaceId = ((await api.call('POST', '/api/workspaces', { token: alice, body: { name: 'Contract' } })).json as { id: string }).id;
  const tls = selfSignedCertificate(path.join(dir, 'tls'));
  let execFrames = 0;
  const channel = await HostChannelServer.start({
    tls,
    authority: hostChannelAuthority(api.deps),
    // A launch the platform's guard refuses never becomes an exec frame: the agent's launches are these.
    tap: (direction, raw) => void (direction === 'to-host' && raw.includes('"op":"exec"') && (execFrames += 1)),
  });
  const remote = new RemoteSandboxHost(channel);
  const enrolment = (await api.call('POST', `/api/workspaces/${workspaceId}/hosts`, { token: alice, body: { name: 'contract-box' } })).json as { enrolmentToken: string };
  const agent = startHostAgent({
    platform: channel.url, ca: tls.certFile, state: path.join(dir, 'agent.json'), token: enrolment.enrolmentToken,
    flags: ['--root', root, '--gateway-url', setup.gatewayUrl, '--egress-test-servers', setup.testServers.join(',')],
  });
  try {
    await until(() => channel.liveHosts(workspaceId).length === 1 || agent.child.exitCode !== null, 'the agent to connect', 120_000, agent);
  } catch (error) {
    agent.child.kill('SIGKILL');
    throw error;
  }
  if (agent.child.exitCode !== null) throw new Error(`the host agent exited: ${agent.output()}`);

  // The contract's requests name no pool; a run's always does (its workspace's).
  const host: SandboxHost = {
    get capabilities() {
      return remote.capabilities;
    },
    create: (request: SandboxRequest) => remote.create({ ...request, placement: { workspaceId } }),
    exec: (handle, command) => remote.exec(handle, command),
    start: (handle, command) => remote.start(handle, command),
    teardown: (handle) => remote.teardown(handle),
    setEgress: (handle, allowance) => remote.setEgress(handle, allowance),
    drainEgress: (handle) => remote.drainEgress(handle),
  };
  /** The agent's inner sandbox, found by the workspace path it reported (`<root>/sandboxes/<id>/workspace`). */
  const innerOf = (handle: SandboxHandle): { sandboxRoot: string; credentialDir: string } => {
    const sandboxRoot = path.dirname(handle.workspace);
    return { sandboxRoot, credentialDir: path.join(CREDENTIAL_ROOT, path.basename(sandboxRoot)) };
  };
  return {
    host,
    huntDirs: (handle) => {
      const { sandboxRoot, credentialDir } = innerOf(handle);
      return [CREDENTIAL_ROOT, credentialDir, path.dirname(sandboxRoot)];
    },
    traces: (handle) => {
      const { sandboxRoot, credentialDir } = innerOf(handle);
      // The sandbox's uid block: its workspace belongs to the agent uid and the block's group.
      const groupGid = statSync(handle.workspace).gid;
      const inBlock = (): number[] => (handle.isolated ? pidsWithUidIn(groupGid, groupGid + BLOCK_SIZE) : []);
      const ownNs = readlinkSync('/proc/self/ns/pid');
      // The sandbox's pid namespace, learnt from its processes as they appear (and remembered past teardown).
      const namespaces = new Set<string>();
      const learn = (): void => {
        for (const pid of inBlock()) {
          try {
            const ns = readlinkSync(`/proc/${pid}/ns/pid`);
            if (ns !== ownNs) namespaces.add(ns);
          } catch {
            // gone meanwhile
          }
        }
      };
      return {
        paths: [sandboxRoot, credentialDir],
        processes: () => (learn(), [...new Set([...[...namespaces].flatMap((ns) => pidsInNamespace(ns)), ...inBlock()])]),
      };
    },
    credentialLeftovers: (handle) => {
      const { credentialDir } = innerOf(handle);
      return existsSync(credentialDir) ? readdirSync(credentialDir) : [];
    },
    workspaceFiles: async (handle) => filesUnder(handle.workspace),
    // The agent writes a shipped file under the same (random) name into the process's directory, `<sandbox>/p<n>/`.
    hostCopyOf: (prepared) => {
      const name = path.basename(prepared);
      for (const sandbox of readdirSync(CREDENTIAL_ROOT)) {
        const sandboxDir = path.join(CREDENTIAL_ROOT, sandbox);
        for (const processDir of existsSync(sandboxDir) && statSync(sandboxDir).isDirectory() ? readdirSync(sandboxDir) : []) {
          const copy = path.join(sandboxDir, processDir, name);
          if (existsSync(copy)) return copy;
        }
      }
      return prepared;
    },
    launches: () => execFrames,
    removeVolume: (name) => rm(path.join(root, 'volumes', name), { recursive: true, force: true }),
    close: async () => {
      await agent.stop();
      await channel.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
};

describeSandboxHostContract('RemoteSandboxHost through a host agent (inner: local-process, isolated)', throughAgent, { keptVolumes: true, ownProcessesOnly: true });
