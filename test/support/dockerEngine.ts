import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { describe, it } from 'vitest';
import { dockerEngine, dockerSocketPath } from '../../infra/sandbox/docker/dockerEngine';
import { defaultScopeDirs } from '../../infra/sandbox/docker/dockerSandboxHost';
import { buildSandboxImage, imageLabels, imageRecipeHash, RECIPE_LABEL, SANDBOX_IMAGE_REPOSITORY } from '../../infra/sandbox/docker/sandboxImage';
import { removeWorkspaceDir } from '../../infra/sandbox/docker/workspaceStorage';

/**
 * The Docker engine the Docker suites run against: DOCKER_HOST (CI's `.ci/run` starts one and builds the image).
 * Without an engine the suites are not skipped silently: with DP_REQUIRE_DOCKER=1 (CI) they fail; without it
 * (a newcomer's `npm test`) each prints, loudly, that the Docker host was not tested.
 */
export interface DockerTestEngine {
  readonly docker: Dockerode;
  readonly socketPath: string;
}

export const dockerRequired = process.env.DP_REQUIRE_DOCKER === '1';

/**
 * The image the suites use: SANDBOX_IMAGE, else one built from this checkout's recipe, built here when the engine
 * has none. Named by its content tag, never `:latest`: worktrees with other recipes share the engine, and each
 * build moves `latest`.
 */
export async function sandboxImageForTests(docker: Dockerode): Promise<string> {
  if (process.env.SANDBOX_IMAGE) return process.env.SANDBOX_IMAGE;
  const current = async (): Promise<string | undefined> => {
    const images = await docker.listImages({ filters: { label: [`${RECIPE_LABEL}=${imageRecipeHash()}`] } });
    return images.flatMap((i) => i.RepoTags ?? []).find((tag) => tag.startsWith(`${SANDBOX_IMAGE_REPOSITORY}:`) && !tag.endsWith(':latest'));
  };
  const found = await current();
  if (found) return found;
  // Parallel test files build once: the others wait for the one holding the lock.
  const lock = path.join(os.tmpdir(), 'dp-sandbox-image.lock');
  for (let i = 0; i < 1200; i++) {
    try {
      await mkdir(lock);
    } catch {
      const built = await current();
      if (built) return built;
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    try {
      return (await current()) ?? (await buildSandboxImage(docker, (line) => console.warn(line))).image;
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  }
  throw new Error('timed out waiting for another test file to build the sandbox image');
}

/**
 * The engine at DOCKER_HOST when one answers, decided synchronously (a suite's tests are declared before any
 * hook runs): a short child process pings the socket.
 */
export function dockerForTests(): DockerTestEngine | undefined {
  if (process.getuid?.() !== 0) return undefined; // the host chowns directories for the sandbox uids
  let socketPath: string;
  try {
    socketPath = dockerSocketPath();
  } catch {
    return undefined;
  }
  const ping = `require('http').get({socketPath:${JSON.stringify(socketPath)},path:'/_ping'},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))`;
  const answered = spawnSync(process.execPath, ['-e', ping], { timeout: 5000, stdio: 'ignore' }).status === 0;
  return answered ? { docker: dockerEngine(socketPath), socketPath } : undefined;
}

const whyNoEngine = (): string =>
  process.getuid?.() !== 0 ? 'the tests do not run as root (the Docker host needs root)' : `no Docker engine answers at ${process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'}`;

const NOT_TESTED = (name: string): string =>
  `\n${'!'.repeat(100)}\n!!! THE DOCKER SANDBOX HOST WAS NOT TESTED (${name}): ${whyNoEngine()}.\n` +
  `!!! Start one and set DOCKER_HOST (see README "Sandbox hosts"); CI sets DP_REQUIRE_DOCKER=1, which makes this a failure.\n${'!'.repeat(100)}\n`;

/** `describe` for a suite that needs the engine: the real tests when one answers, else one loud (or, in CI, failing) test. */
export function describeWithDocker(name: string, engine: DockerTestEngine | undefined, body: (engine: DockerTestEngine) => void): void {
  if (engine) {
    describe(name, () => body(engine));
    return;
  }
  describe(name, () => {
    it('needs a Docker engine', () => {
      if (dockerRequired) throw new Error(`DP_REQUIRE_DOCKER=1 but ${whyNoEngine()}`);
      console.warn(NOT_TESTED(name));
    });
  });
}

/** A label scope of its own per test file, so parallel suites never see each other's containers. */
export function testScope(file: string): string {
  return `test-${path.basename(file).replace(/\.test\.ts$/, '').toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${process.pid}`;
}

/** Every container the engine has with this scope label (running or not). */
export async function containersOfScope(docker: Dockerode, scope: string): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`disco-parrot.scope=${scope}`] } });
}

/** What a suite leaves when it ends: none of its scope's containers, door or credential directories. */
export async function removeScope(docker: Dockerode, scope: string): Promise<void> {
  for (const c of await containersOfScope(docker, scope)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  const dirs = defaultScopeDirs(scope);
  await rm(dirs.root, { recursive: true, force: true });
  await rm(dirs.credentialRoot, { recursive: true, force: true });
  // Each workspace is a tmpfs mount of its own: unmounted first, or the directory cannot go.
  for (const entry of await readdir(dirs.workspaceRoot).catch(() => [] as string[])) await removeWorkspaceDir(path.join(dirs.workspaceRoot, entry));
  await rm(dirs.workspaceRoot, { recursive: true, force: true });
  const { Volumes } = await docker.listVolumes({ filters: { label: [`disco-parrot.scope=${scope}`] } });
  for (const v of Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
}

/**
 * One sandbox's processes seen from the host: those in its container (their cgroup names it) and the host-side
 * ones whose command line names its directory (relays). Other suites' containers run beside it under the same
 * uids, so the uid does not decide.
 */
export function processesOfContainer(containerId: string, hostDir: string): number[] {
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cgroup.includes(containerId) || cmdline.includes(hostDir)) found.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
