import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { SandboxHandle } from '../../../../domain/ports/sandboxHost';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { launchTickets } from '../../../../infra/sandbox/launchTickets';
import { describeSandboxHostContract, type SandboxHostFactory } from '../../../contracts/sandboxHost.contract';
import { describeWithDocker, dockerForTests, processesOfContainer, removeScope, sandboxImageForTests, testScope } from '../../../support/dockerEngine';
import { IMAGE_NODE } from '../../../../infra/sandbox/docker/sandboxImage';

/**
 * The shared SandboxHost contract against a real Docker engine (DOCKER_HOST; CI starts its own and sets
 * DP_REQUIRE_DOCKER=1). Every probe runs inside the container through the port, exactly as on the local host;
 * what only the machine knows (the container's processes, the host directories mounted into it) the harness reads.
 */
const engine = dockerForTests();
const scope = testScope(__filename);

function filesUnder(dir: string): Array<{ path: string; content: Buffer }> {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .map((file) => ({ path: file, content: readFileSync(file) }));
}


describeWithDocker('DockerSandboxHost (contract)', engine, ({ docker, socketPath }) => {
  const dockerHost: SandboxHostFactory = async (setup) => {
    const image = await sandboxImageForTests(docker);
    const host = await DockerSandboxHost.open({ docker, socketPath, image, scope, gatewayUrl: setup.gatewayUrl, egress: { testServers: () => setup.testServers } });
    return {
      host,
      // What a hostile agent would walk for other processes' credentials and other sandboxes' workspaces.
      huntDirs: (handle: SandboxHandle) => {
        const { credentialDir, workspace } = host.inspect(handle);
        return [path.dirname(credentialDir), credentialDir, path.dirname(workspace)];
      },
      traces: (handle: SandboxHandle) => {
        const { containerId, hostDir, credentialDir, workspace } = host.inspect(handle);
        return { paths: [hostDir, credentialDir, workspace], processes: () => processesOfContainer(containerId, hostDir) };
      },
      credentialLeftovers: (handle: SandboxHandle) => {
        const dir = host.inspect(handle).credentialDir;
        return existsSync(dir) ? readdirSync(dir) : [];
      },
      workspaceFiles: async (handle: SandboxHandle) => filesUnder(handle.workspace),
      launches: () => launchTickets.issuedCount,
      close: async () => {
        await host.close();
        await removeScope(docker, scope);
      },
    };
  };
    // The engine mounts the container's /proc without hidepid (see the capability's note).
  describeSandboxHostContract('DockerSandboxHost', dockerHost, { keptVolumes: false, ownProcessesOnly: false, nodeProgram: IMAGE_NODE });
});
