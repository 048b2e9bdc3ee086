import { DEMO_GIT_PORTS } from '../localhost/demoPorts';
import { dockerSocketPath } from '../infra/sandbox/docker/dockerEngine';
import { DockerSandboxHost } from '../infra/sandbox/docker/dockerSandboxHost';
import { describeIsolation } from '../infra/sandbox/docker/engineIsolation';
import type { Settings } from './settings';

/**
 * SANDBOX_HOST=docker: a container per run on the engine at DOCKER_HOST. Production may use it (the container
 * is the isolation boundary); the engine and the image are checked at start, and the choice is said in one line.
 */
export async function openDockerSandboxHost(settings: Settings, gatewayUrl: string, platformHosts: readonly string[]): Promise<DockerSandboxHost> {
  const production = settings.DISCO_ENV === 'production';
  // Development without the setting: the demo's git servers get doors (production declares none; settings refuse them).
  const testServers = settings.SANDBOX_EGRESS_TEST_SERVERS?.split(',') ?? (production ? [] : DEMO_GIT_PORTS.map((port) => `127.0.0.1:${port}`));
  const socketPath = dockerSocketPath({ DOCKER_HOST: settings.DOCKER_HOST });
  const host = await DockerSandboxHost.open({
    socketPath,
    ...(settings.SANDBOX_IMAGE ? { image: settings.SANDBOX_IMAGE } : {}),
    ...(settings.SANDBOX_USERNS_BASE ? { usernsBase: settings.SANDBOX_USERNS_BASE } : {}),
    // The same per-sandbox limits as the local host's cgroups, as the container's.
    limits: {
      pids: settings.SANDBOX_PIDS_MAX, memoryBytes: settings.SANDBOX_MEMORY_MB * 1024 * 1024, nanoCpus: Math.round(settings.SANDBOX_CPUS * 1e9),
      workspaceBytes: settings.SANDBOX_WORKSPACE_MB * 1024 * 1024,
    },
    gatewayUrl,
    egress: { testServers: () => testServers, platformHosts },
  });
  console.info(`Sandbox host: docker (image ${host.image}, engine unix://${socketPath}, scope ${host.scope}; ${describeIsolation(host.isolation)}; workspace tmpfs ${settings.SANDBOX_WORKSPACE_MB} MB)`);
  return host;
}
