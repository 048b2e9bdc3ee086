import { lstatSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GuardPolicy } from '../../../../domain/launchGuard';
import type { SandboxHandle, SandboxRequest } from '../../../../domain/ports/sandboxHost';
import type { CredentialRequest, DeliveryTarget } from '../../../../infra/sandbox/credentialDelivery';
import { assertGitCommand, preparerFor } from '../../../../infra/sandbox/channels';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { keptVolumeName, WORKSPACE_ERROR } from '../../../../infra/sandbox/docker/workspaceStorage';
import { sandboxVolumeRemover } from '../../../../functions/workspaceLifecycle.wiring';
import type { GatewayOperation } from '../../../../domain/gateway';
import { runGit, type SandboxRun } from '../../../../infra/gateway/sandboxOperations';
import { attackDirs, lootHolding, startPlanter, startTrap } from '../../../support/gitConfigAttack';
import { describeWithDocker, dockerForTests, removeScope, sandboxImageForTests, testScope } from '../../../support/dockerEngine';
import { startGitHttpServer, type GitHttpServer } from '../../../support/gitHttpServer';
import { allLeakForms } from '../../../support/leakScan';
import { aSecretValue, redactorFor } from '../sandboxTestKit';

/**
 * A workspace's kept volume on the Docker host: what one run writes the next run of the same workspace finds,
 * another workspace's run never (not even by naming it), no credential lands on it, and purge removes it. And
 * the size limit of a workspace's own tmpfs: a write past it fails with ENOSPC inside the sandbox.
 */
const engine = dockerForTests();
const scope = testScope(__filename);
const SECRET = aSecretValue('kept');
const GIT_TOKEN = aSecretValue('gitk');
const guard: GuardPolicy = {
  secretNames: ['API_KEY', 'GIT_TOKEN'],
  managedValues: [{ name: 'API_KEY', value: SECRET }, { name: 'GIT_TOKEN', value: GIT_TOKEN }],
};
const redactor = redactorFor([{ name: 'API_KEY', value: SECRET }, { name: 'GIT_TOKEN', value: GIT_TOKEN }]);
const WORKSPACE_MB = 8;

async function rejection(promise: Promise<unknown>): Promise<{ code?: string; kind?: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { code?: string; kind?: string; message: string };
  }
  throw new Error('expected a rejection');
}

/** Every regular file under `dir` (never following a link), with its text. */
function filesUnder(dir: string): Array<{ where: string; text: string }> {
  const out: Array<{ where: string; text: string }> = [];
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry);
    const stat = lstatSync(full);
    if (stat.isDirectory()) out.push(...filesUnder(full));
    else if (stat.isFile()) out.push({ where: full, text: readFileSync(full).toString('latin1') });
    else if (stat.isSymbolicLink()) out.push({ where: full, text: `-> ${full}` });
  }
  return out;
}

describeWithDocker('DockerSandboxHost: kept workspace volumes and workspace size', engine, ({ docker, socketPath }) => {
  let host: DockerSandboxHost;
  let image = '';
  let gitServer: GitHttpServer;
  /** Loopback servers the sandboxes get doors to (read when a sandbox is made): the git server, and a trap when a test adds one. */
  const testServers: string[] = [];
  const live = new Set<SandboxHandle>();

  const create = async (workspaceId: string, runId: string, extra: Partial<SandboxRequest> = {}): Promise<SandboxHandle> => {
    const handle = await host.create({ runId, workspaceId, files: {}, redactor, guard, ...extra });
    live.add(handle);
    return handle;
  };
  const teardown = async (handle: SandboxHandle): Promise<void> => {
    await host.teardown(handle);
    live.delete(handle);
  };
  const keptDir = async (workspaceId: string): Promise<string> => (await docker.getVolume(keptVolumeName(scope, workspaceId)).inspect()).Mountpoint;

  beforeAll(async () => {
    gitServer = await startGitHttpServer(GIT_TOKEN);
    await gitServer.createRepo('project', { 'README.md': 'hello\n' });
    testServers.push(new URL(gitServer.origin).host);
    image = await sandboxImageForTests(docker);
    host = await DockerSandboxHost.open({
      docker, socketPath, image, scope, limits: { workspaceBytes: WORKSPACE_MB * 1024 * 1024 },
      egress: { testServers: () => testServers },
    });
  }, 120_000);
  afterAll(async () => {
    for (const handle of live) await host.teardown(handle).catch(() => undefined);
    await removeScope(docker, scope);
    await gitServer?.close();
  });

  it('keeps what one run writes for the next run of the same workspace, on a labelled volume named from a hash', async () => {
    const first = await create('ws-alpha', 'run-a1', { keptVolume: 'ws-alpha', files: { 'template.txt': 'from the template' } });
    const info = await docker.getContainer(host.inspect(first).containerId).inspect();
    const volume = keptVolumeName(scope, 'ws-alpha');
    expect(volume).toMatch(/^dp-ws-[0-9a-f]{40}$/);
    expect(info.Mounts).toContainEqual(expect.objectContaining({ Type: 'volume', Name: volume, Destination: first.workspace, RW: true }));
    expect((await docker.getVolume(volume).inspect()).Labels).toEqual({ 'disco-parrot.scope': scope, 'disco-parrot.workspace': 'ws-alpha', 'disco-parrot.kept-workspace': 'true' });
    const wrote = await host.exec(first, { argv: ['sh', '-c', 'mkdir -p notes && echo remembered > notes/a.txt && cat template.txt'], identity: 'agent' });
    expect(wrote.stdout, wrote.stderr).toBe('from the template');
    await teardown(first);

    expect((await docker.getVolume(volume).inspect()).Name).toBe(volume); // teardown keeps it
    const second = await create('ws-alpha', 'run-a2', { keptVolume: 'ws-alpha' });
    const read = await host.exec(second, { argv: ['cat', 'notes/a.txt'], identity: 'agent' });
    expect(read.stdout, read.stderr).toBe('remembered\n');
    // Found again by its run id by another instance: the same workspace directory.
    const other = await DockerSandboxHost.open({ docker, socketPath, image, scope });
    expect((await other.find('run-a2'))?.workspace).toBe(second.workspace);
    await teardown(second);
  });

  it("never gives a run another workspace's volume: not by naming its workspace, its volume or its mount point", async () => {
    const alpha = await create('ws-alpha', 'run-a3', { keptVolume: 'ws-alpha' });
    await host.exec(alpha, { argv: ['sh', '-c', 'echo alpha-only > private.txt'], identity: 'agent' });
    const alphaDir = alpha.workspace;
    await teardown(alpha);

    const byWorkspace = await rejection(create('ws-beta', 'run-b1', { keptVolume: 'ws-alpha' }));
    expect(byWorkspace.code).toBe(WORKSPACE_ERROR.KEPT_VOLUME_FOREIGN);
    expect(byWorkspace.kind).toBe('forbidden');
    const byVolume = await rejection(create('ws-beta', 'run-b2', { keptVolume: keptVolumeName(scope, 'ws-alpha') }));
    expect(byVolume.code).toBe(WORKSPACE_ERROR.KEPT_VOLUME_FOREIGN);
    expect((await rejection(host.create({ runId: 'run-b3', files: {}, redactor, guard, keptVolume: 'ws-alpha' }))).code).toBe(WORKSPACE_ERROR.KEPT_VOLUME_WITHOUT_WORKSPACE);

    // Its own kept run sees its own (empty) volume, and alpha's mount point is not there to reach.
    const beta = await create('ws-beta', 'run-b4', { keptVolume: 'ws-beta' });
    expect(beta.workspace).not.toBe(alphaDir);
    const looked = await host.exec(beta, { argv: ['sh', '-c', `ls -A .; cat ${alphaDir}/private.txt; ls ${path.dirname(path.dirname(alphaDir))}`], identity: 'agent' });
    // Nothing in its workspace; of the engine's volumes directory, only its own volume is there.
    expect(looked.stdout).toBe(`${keptVolumeName(scope, 'ws-beta')}\n`);
    expect(looked.stderr).toMatch(/No such file or directory/);
    expect(looked.stdout + looked.stderr).not.toContain('alpha-only');
    // A non-kept run of the same workspace is a fresh tmpfs, not the volume.
    const scratch = await create('ws-alpha', 'run-a4');
    expect((await host.exec(scratch, { argv: ['ls', '-A'], identity: 'agent' })).stdout).toBe('');
    await teardown(scratch);
    await teardown(beta);
  });

  it('refuses a volume under the name that was made by something else (other labels): it is never mounted', async () => {
    const name = keptVolumeName(scope, 'ws-squatted');
    await docker.createVolume({ Name: name, Labels: { 'disco-parrot.scope': scope, 'disco-parrot.workspace': 'someone-else', 'disco-parrot.kept-workspace': 'true' } });
    const refused = await rejection(create('ws-squatted', 'run-s1', { keptVolume: 'ws-squatted' }));
    expect(refused.code).toBe(WORKSPACE_ERROR.KEPT_VOLUME_CLAIMED);
    await docker.getVolume(name).remove();
  });

  it('leaves no credential on the volume after env, file, stdin and git leases were used in the run', async () => {
    const handle = await create('ws-leases', 'run-l1', { keptVolume: 'ws-leases' });
    const credentials = (...requests: CredentialRequest[]) => async (target: DeliveryTarget) => Promise.all(requests.map((request) => preparerFor(request)(request, target)));
    const channels = await host.exec(handle, {
      argv: ['sh', '-c', 'printf "%s" "$API_KEY" > /dev/null; cat "$KEY_FILE" > /dev/null; cat > /dev/null; echo used'],
      identity: 'credential',
      credentials: credentials(
        { secretName: 'API_KEY', value: SECRET, use: 'env', as: 'API_KEY' },
        { secretName: 'API_KEY', value: SECRET, use: 'file', as: 'KEY_FILE' },
        { secretName: 'API_KEY', value: SECRET, use: 'stdin' },
      ),
    });
    expect(channels.stdout, channels.stderr).toBe('used\n');
    const clone = ['git', 'clone', '--quiet', `${gitServer.origin}/project.git`, 'project'];
    assertGitCommand('GIT_TOKEN', clone);
    const cloned = await host.exec(handle, {
      argv: clone, identity: 'credential', handOver: { into: '.' },
      credentials: credentials({ secretName: 'GIT_TOKEN', value: GIT_TOKEN, use: 'git', host: gitServer.origin }),
    });
    expect(cloned.exitCode, cloned.stderr).toBe(0);
    const listed = await host.exec(handle, { argv: ['cat', 'project/README.md'], identity: 'agent' });
    expect(listed.stdout).toBe('hello\n');
    await teardown(handle);

    const files = filesUnder(await keptDir('ws-leases'));
    expect(files.some((f) => f.where.endsWith('project/README.md'))).toBe(true); // the scan reads what the run left
    for (const [name, value] of [['API_KEY', SECRET], ['GIT_TOKEN', GIT_TOKEN]] as const)
      for (const form of allLeakForms(value)) for (const file of files) expect(file.text.includes(form), `${name} in ${file.where}`).toBe(false);
  });

  it("never runs what an earlier run planted on the volume (git config, hooks, attributes) in a later run's credentialed git", async () => {
    const trap = await startTrap();
    testServers.push(new URL(trap.url).host); // reachable, so a planted proxy or rewrite would be seen there
    const gitRun = (handle: SandboxHandle): SandboxRun => ({
      host, live: { workspaceId: 'ws-planted', runId: handle.runId, handle, redactor, guard, deadline: new Date(Date.now() + 600_000).toISOString() },
      request: { secretName: 'GIT_TOKEN', value: GIT_TOKEN, use: 'git', host: gitServer.origin }, timeoutMs: 60_000, maxOutputBytes: 65_536, release: async () => undefined,
    });
    const gitOp = (action: 'clone' | 'fetch'): Extract<GatewayOperation, { kind: 'git' }> => ({
      kind: 'git', action, remote: `${gitServer.origin}/project.git`, secret: 'GIT_TOKEN', target: `${gitServer.origin}/project.git`,
      destination: { protocol: 'http', hostname: new URL(gitServer.origin).hostname, port: Number(new URL(gitServer.origin).port) },
      ...(action === 'fetch' ? { dir: 'project' } : {}),
    });
    try {
      const planting = await create('ws-planted', 'run-p1', { keptVolume: 'ws-planted' });
      const [cloned] = await runGit(gitRun(planting), gitOp('clone'), { argv: ['git', 'clone', '--quiet', '--', `${gitServer.origin}/project.git`, 'project'], handOverInto: '.' });
      expect(cloned?.exitCode, cloned?.stderr).toBe(0);
      const { loot } = attackDirs(planting.workspace, 'planted');
      const planter = await startPlanter(host, planting, { trap: trap.url, origin: gitServer.origin, loot, pattern: 'project/.git', forms: 'all' });
      const planted = async (): Promise<boolean> => (await host.exec(planting, { argv: ['grep', '-q', trap.url, 'project/.git/config'], identity: 'agent' })).exitCode === 0;
      for (let i = 0; i < 300 && !(await planted()); i++) await new Promise((r) => setTimeout(r, 100));
      await planter.stop();
      // Shims for whatever a later credential process might look up on a PATH or in a config of the workspace.
      await host.exec(planting, {
        argv: ['sh', '-c', `mkdir -p node_modules/.bin && for f in git git-remote-http npm; do printf '#!/bin/sh\ncat "$HOME"/* > ${loot}/shim-$$\n' > node_modules/.bin/$f; chmod +x node_modules/.bin/$f; cp node_modules/.bin/$f ./$f; done; echo "* filter=steal" > project/.gitattributes; printf 'registry=${trap.url}/\n' > .npmrc`],
        identity: 'agent',
      });
      await teardown(planting);

      const later = await create('ws-planted', 'run-p2', { keptVolume: 'ws-planted' });
      expect((await host.exec(later, { argv: ['grep', '-c', trap.url, 'project/.git/config'], identity: 'agent' })).stdout.trim()).not.toBe('0'); // still planted
      const [fetched] = await runGit(gitRun(later), gitOp('fetch'), { argv: ['git', 'fetch', '--quiet', `${gitServer.origin}/project.git`], cwd: 'project' });
      expect(fetched?.stdout ?? '').not.toContain(GIT_TOKEN);
      expect(trap.seen).toEqual([]);
      expect(lootHolding(loot.replace(planting.workspace, later.workspace), GIT_TOKEN)).toEqual([]);
      expect(readdirSync(loot.replace(planting.workspace, later.workspace))).toEqual([]); // nothing planted ran at all
      // Control: the plant is live. Plain git of the agent's own runs it (with nothing to steal in the agent's home).
      await host.exec(later, { argv: ['sh', '-c', 'git -c safe.directory="*" status >/dev/null 2>&1; true'], identity: 'agent', cwd: 'project' });
      expect(readdirSync(loot.replace(planting.workspace, later.workspace)).length).toBeGreaterThan(0);
      await teardown(later);
    } finally {
      testServers.pop();
      await trap.close();
    }
  });

  it('purge removes the workspace’s volumes, and only its own; a volume still in use is a conflict', async () => {
    const busy = await create('ws-purged', 'run-p1', { keptVolume: 'ws-purged' });
    await create('ws-kept', 'run-k1', { keptVolume: 'ws-kept' }).then(teardown);
    expect((await rejection(host.removeWorkspaceVolumes('ws-purged'))).code).toBe(WORKSPACE_ERROR.KEPT_VOLUME_IN_USE);
    await teardown(busy);
    expect(await host.removeWorkspaceVolumes('ws-purged')).toBe(1);
    await expect(docker.getVolume(keptVolumeName(scope, 'ws-purged')).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await docker.getVolume(keptVolumeName(scope, 'ws-kept')).inspect()).Name).toBe(keptVolumeName(scope, 'ws-kept'));
    expect(await host.removeWorkspaceVolumes('ws-purged')).toBe(0); // idempotent
  });

  it("is wired into purge: the purge's remover reaches the host, and fails (to be retried) when the Docker host cannot open", async () => {
    await create('ws-wired', 'run-w1', { keptVolume: 'ws-wired' }).then(teardown);
    expect(await sandboxVolumeRemover(async () => host, true)('ws-wired')).toBe(1);
    await expect(docker.getVolume(keptVolumeName(scope, 'ws-wired')).inspect()).rejects.toMatchObject({ statusCode: 404 });
    const engineDown = async (): Promise<DockerSandboxHost> => {
      throw new Error('Docker sandbox host: no engine answers');
    };
    await expect(sandboxVolumeRemover(engineDown, true)('ws-wired')).rejects.toThrow(/no engine answers/);
    expect(await sandboxVolumeRemover(engineDown, false)('ws-wired')).toBe(0); // a host that keeps no volumes has none to remove
  });

  it('gives a workspace a tmpfs of its own size: writing past it fails with ENOSPC inside, and says so in the result', async () => {
    const handle = await create('ws-size', 'run-z1');
    try {
      const { workspace } = host.inspect(handle);
      const fs = statfsSync(workspace);
      expect(fs.blocks * fs.bsize).toBe(WORKSPACE_MB * 1024 * 1024);
      const result = await host.exec(handle, { argv: ['sh', '-c', `head -c ${(WORKSPACE_MB + 4) * 1024 * 1024} /dev/zero > big.bin`], identity: 'agent' });
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toMatch(/No space left on device/);
      // The host's own tmpfs never held it: the file stopped at the limit, on the workspace's tmpfs.
      expect(statfsSync(workspace).bfree).toBeLessThan(64);
      const after = await host.exec(handle, { argv: ['sh', '-c', 'wc -c < big.bin; rm big.bin; echo ok > small.txt && cat small.txt'], identity: 'agent' });
      expect(Number(after.stdout.split('\n')[0])).toBeLessThanOrEqual(WORKSPACE_MB * 1024 * 1024);
      expect(after.stdout.endsWith('ok\n')).toBe(true); // the sandbox goes on once it frees space
    } finally {
      await teardown(handle);
    }
  });
});
