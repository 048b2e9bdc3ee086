import type Dockerode from 'dockerode';

/**
 * What the engine itself adds to a container's isolation, read from `docker info` at start. Without user-namespace
 * remapping, uid 0 in a container is uid 0 on the host (the sandbox never runs as root, but a kernel escape would
 * land as root); with `userns-remap`, every container uid maps into an unprivileged subordinate range
 * (docs/sandbox-hosts.md). Reported, never assumed: the host runs either way.
 */
export interface EngineIsolation {
  /** `name=userns` among the engine's security options: container uids map to an unprivileged host range. */
  readonly userNamespaceRemap: boolean;
  /** `name=rootless`: the engine itself runs as an unprivileged user. */
  readonly rootless: boolean;
  /** `name=seccomp`: the default seccomp profile applies to containers that do not opt out (ours never do). */
  readonly seccomp: boolean;
  /** Whether a kept workspace volume can have a size limit here: never on the `local` driver over a plain directory. */
  readonly keptVolumeQuota: false;
}

/** The engine's security options as `docker info` lists them (`name=seccomp,profile=default`, `name=userns`). */
export function isolationFromSecurityOptions(options: readonly string[]): EngineIsolation {
  const names = new Set(options.map((option) => /(?:^|,)name=([^,]+)/.exec(option)?.[1] ?? option));
  return { userNamespaceRemap: names.has('userns'), rootless: names.has('rootless'), seccomp: names.has('seccomp'), keptVolumeQuota: false };
}

export async function engineIsolation(docker: Dockerode): Promise<EngineIsolation> {
  const info = (await docker.info()) as { SecurityOptions?: string[] | null };
  return isolationFromSecurityOptions(info.SecurityOptions ?? []);
}

/** One line for the host's start message. */
export function describeIsolation(isolation: EngineIsolation): string {
  const userns = isolation.userNamespaceRemap ? 'user namespaces remapped' : 'no user-namespace remapping (container uids are host uids; docs/sandbox-hosts.md)';
  return [userns, isolation.rootless ? 'rootless engine' : undefined, isolation.seccomp ? 'seccomp' : 'NO seccomp'].filter(Boolean).join(', ');
}
