import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { vi } from 'vitest';
import type { SandboxHandle, SandboxHost, SandboxRequest } from '../../../../domain/ports/sandboxHost';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import { selfSignedCertificate } from '../../../../localhost/selfSignedCertificate';
import { defaultScopeDirs } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { IMAGE_NODE } from '../../../../infra/sandbox/docker/sandboxImage';
import { HostChannelServer } from '../../../../infra/sandbox/remote/hostChannelServer';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { createApiHarness } from '../../../support/apiHarness';
import { containersOfScope, describeWithDocker, dockerForTests, processesOfContainer, removeScope, sandboxImageForTests, testScope } from '../../../support/dockerEngine';
import { startHostAgent, until } from '../../../support/hostAgentProcess';
import { describeSandboxHostContract, type SandboxHostFactory } from '../../../contracts/sandboxHost.contract';

// An agent's start builds (when stale), probes the engine and the image: slow on a loaded 2-core runner.
vi.setConfig({ hookTimeout: 300_000, testTimeout: 180_000 });

/**
 * The SandboxHost contract through the whole remote path onto a real Docker engine: the platform's
 * RemoteSandboxHost, the host channel over real TLS, and a real `npm run host-agent -- --inner docker` process
 * that alone holds the engine's socket. The harness's host-side views read the agent's machine (this one) from
 * the outside, by the directories the agent's Docker host keeps under its label scope and the container's
 * labels: nothing of the agent's memory is shared with the test.
 */
const engine = dockerForTests();
const scope = testScope(__filename);

function filesUnder(dir: string): Array<{ path: string; content: Buffer }> {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .map((file) => ({ path: file, content: readFileSync(file) }));
}


describeWithDocker('RemoteSandboxHost through a host agent (inner: docker)', engine, ({ docker, socketPath }) => {
  const throughDockerAgent: SandboxHostFactory = async (setup) => {
    const image = await sandboxImageForTests(docker);
    const dir = mkdtempSync(path.join(tmpdir(), 'dp-remote-docker-contract-'));
    const api = await createApiHarness();
    const alice = await api.issuer.token('alice');
    const workspaceId = ((await api.call('POST', '/api/workspaces', { token: alice, body: { name: 'Docker contract' } })).json as { id: string }).id;
    const tls = selfSignedCertificate(path.join(dir, 'tls'));
    let execFrames = 0;
    const channel = await HostChannelServer.start({
      tls,
      authority: hostChannelAuthority(api.deps),
      // A launch the platform's guard refuses never becomes an exec frame: the agent's launches are these.
      tap: (direction, raw) => void (direction === 'to-host' && raw.includes('"op":"exec"') && (execFrames += 1)),
    });
    const remote = new RemoteSandboxHost(channel);
    const { enrolmentToken } = (await api.call('POST', `/api/workspaces/${workspaceId}/hosts`, { token: alice, body: { name: 'docker-contract-box' } })).json as { enrolmentToken: string };
    const agent = startHostAgent({
      platform: channel.url, ca: tls.certFile, state: path.join(dir, 'agent.json'), token: enrolmentToken,
      flags: ['--inner', 'docker', '--image', image, '--scope', scope, '--gateway-url', setup.gatewayUrl, '--egress-test-servers', setup.testServers.join(',')],
      env: { ...process.env, DOCKER_HOST: `unix://${socketPath}` },
    });
    try {
      await until(() => channel.liveHosts(workspaceId).length === 1 || agent.child.exitCode !== null, 'the agent to connect', 240_000, agent);
    } catch (error) {
      await agent.stop();
      throw error;
    }
    if (agent.child.exitCode !== null) throw new Error(`the host agent exited: ${agent.output()}`);

    // The agent's Docker host keeps each sandbox under its scope's directories, named by the inner sandbox id,
    // which is the last segment of the workspace path it reports; the container carries that id as a label.
    const dirs = defaultScopeDirs(scope);
    const containers = new Map<string, string>();
    const innerOf = (handle: SandboxHandle): { containerId: string; hostDir: string; credentialDir: string } => {
      const innerId = path.basename(handle.workspace);
      return {
        containerId: containers.get(innerId) ?? innerId,
        hostDir: path.join(dirs.root, innerId.replaceAll('-', '').slice(0, 16)),
        credentialDir: path.join(dirs.credentialRoot, innerId),
      };
    };
    // The contract's requests name no pool; a run's always does (its workspace's).
    const host: SandboxHost = {
      get capabilities() {
        return remote.capabilities;
      },
      create: async (request: SandboxRequest) => {
        const handle = await remote.create({ ...request, placement: { workspaceId } });
        const innerId = path.basename(handle.workspace);
        const [container] = await docker.listContainers({ all: true, filters: { label: [`disco-parrot.sandbox=${innerId}`] } });
        if (container) containers.set(innerId, container.Id);
        return handle;
      },
      exec: (handle, command) => remote.exec(handle, command),
      start: (handle, command) => remote.start(handle, command),
      teardown: (handle) => remote.teardown(handle),
      setEgress: (handle, allowance) => remote.setEgress(handle, allowance),
      drainEgress: (handle) => remote.drainEgress(handle),
    };
    return {
      host,
      // As the Docker contract: the credential root, the sandbox's own directory and the workspace root.
      huntDirs: (handle) => {
        const { credentialDir } = innerOf(handle);
        return [path.dirname(credentialDir), credentialDir, path.dirname(handle.workspace)];
      },
      traces: (handle) => {
        const { containerId, hostDir, credentialDir } = innerOf(handle);
        return { paths: [hostDir, credentialDir, handle.workspace], processes: () => processesOfContainer(containerId, hostDir) };
      },
      credentialLeftovers: (handle) => {
        const { credentialDir } = innerOf(handle);
        return existsSync(credentialDir) ? readdirSync(credentialDir) : [];
      },
      workspaceFiles: async (handle) => filesUnder(handle.workspace),
      // The agent writes a shipped file under the same (random) name into the process's directory, `<credentials>/<sandbox>/p<n>/`.
      hostCopyOf: (prepared) => {
        const name = path.basename(prepared);
        for (const sandbox of existsSync(dirs.credentialRoot) ? readdirSync(dirs.credentialRoot) : []) {
          const sandboxDir = path.join(dirs.credentialRoot, sandbox);
          for (const processDir of statSync(sandboxDir).isDirectory() ? readdirSync(sandboxDir) : []) {
            const copy = path.join(sandboxDir, processDir, name);
            if (existsSync(copy)) return copy;
          }
        }
        return prepared;
      },
      launches: () => execFrames,
      close: async () => {
        await agent.stop();
        await channel.close();
        // The agent tears down what it holds as it stops; anything an interrupted run left goes with the scope.
        if ((await containersOfScope(docker, scope)).length > 0) console.warn(`${scope}: containers left after the agent stopped`);
        await removeScope(docker, scope);
        await rm(dir, { recursive: true, force: true });
      },
    };
  };
  // Declared as the Docker host's own contract run: a container's /proc lists every process of the container
  // (no hidepid), its node is the image's, and the contract's kept-volume case is the local host's layout (the
  // Docker host's kept volumes are engine volumes, covered by keptWorkspace.test.ts).
  describeSandboxHostContract('RemoteSandboxHost through a host agent (inner: docker)', throughDockerAgent, { keptVolumes: false, ownProcessesOnly: false, nodeProgram: IMAGE_NODE });
});
