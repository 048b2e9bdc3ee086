import { DEMO_GIT_PORTS } from '../localhost/demoPorts';
import { DockerSandboxHost } from '../infra/sandbox/docker/dockerSandboxHost';
import type { Settings } from './settings';

/**
 * SANDBOX_HOST=docker: a container per run on the engine at DOCKER_HOST. Production may use it (the container
 * is the isolation boundary); the engine and the image are checked at start, and the choice is said in one line.
 */
export async function openDockerSandboxHost(settings: Settings, gatewayUrl: string, platformHosts: readonly string[]): Promise<DockerSandboxHost> {
  const production = settings.DISCO_ENV === 'production';
  // Development without the setting: the demo's git servers get doors (production declares none; settings refuse them).
  const testServers = settings.SANDBOX_EGRESS_TEST_SERVERS?.split(',') ?? (production ? [] : DEMO_GIT_PORTS.map((port) => `127.0.0.1:${port}`));
  const host = await DockerSandboxHost.open({
    ...(settings.SANDBOX_IMAGE ? { image: settings.SANDBOX_IMAGE } : {}),
    gatewayUrl,
    egress: { testServers: () => testServers, platformHosts },
  });
  console.info(`Sandbox host: docker (image ${host.image}, engine ${process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'}, scope ${host.scope})`);
  return host;
}
