import Dockerode from 'dockerode';

/**
 * The Docker engine this process talks to: DOCKER_HOST (`unix:///path`), else the standard socket. Only a unix
 * socket: the per-process relay reaches the engine the same way, and a TCP engine would need TLS settings
 * this adapter does not carry.
 */
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

export class DockerEngineSettingError extends Error {
  constructor(value: string) {
    super(`DOCKER_HOST=${value} is not a unix:// socket; the Docker sandbox host talks to a local engine only`);
    this.name = 'DockerEngineSettingError';
  }
}

export function dockerSocketPath(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const value = env.DOCKER_HOST;
  if (value === undefined || value === '') return DEFAULT_DOCKER_SOCKET;
  if (!value.startsWith('unix://')) throw new DockerEngineSettingError(value);
  return value.slice('unix://'.length);
}

export function dockerEngine(socketPath: string = dockerSocketPath()): Dockerode {
  return new Dockerode({ socketPath, version: 'v1.41' });
}

/** Whether an engine answers on the socket (bounded, never throws). */
export async function engineAnswers(docker: Dockerode, timeoutMs = 3000): Promise<boolean> {
  const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref());
  return Promise.race([docker.ping().then(() => true, () => false), timeout]);
}
