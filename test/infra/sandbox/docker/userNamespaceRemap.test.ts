import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { GuardPolicy } from '../../../../domain/launchGuard';
import { prepareProcessEnv } from '../../../../infra/sandbox/channels/processEnv';
import { prepareTempFile } from '../../../../infra/sandbox/channels/tempFile';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { engineIsolation } from '../../../../infra/sandbox/docker/engineIsolation';
import { AGENT_UID, FIRST_CREDENTIAL_UID } from '../../../../infra/sandbox/docker/imageFiles';
import { buildSandboxImage } from '../../../../infra/sandbox/docker/sandboxImage';
import { aSecretValue, redactorFor } from '../sandboxTestKit';
import { describeWithDocker, dockerForTests } from '../../../support/dockerEngine';
import { importSleepImage, REMAP_BASE, remappedEngineUnavailable, startRemappedEngine, type RemappedEngine } from '../../../support/remappedDockerEngine';

/**
 * What user-namespace remapping changes, on a second engine of its own started with `--userns-remap` (the
 * `dockremap` ranges exist only in that engine's private mount namespace): the container's root is an
 * unprivileged host uid, the isolation report says so, and the Docker host runs on it, giving the sandbox's
 * directories and leases on its side to the remapped uids (userNamespaceIds.ts). Runs where the Docker suites
 * run (root, dockerd).
 */
const unavailable = remappedEngineUnavailable();
const SCOPE = 'userns-test';
const SECRET = aSecretValue('userns');
const guard: GuardPolicy = { secretNames: ['API_KEY'], managedValues: [{ name: 'API_KEY', value: SECRET }] };
const redactor = redactorFor([{ name: 'API_KEY', value: SECRET }]);

describeWithDocker('user-namespace remapping on an engine of its own', unavailable === undefined ? dockerForTests() : undefined, () => {
  let engine: RemappedEngine;
  let image = '';

  beforeAll(async () => {
    engine = await startRemappedEngine();
    await importSleepImage(engine.docker, 'dp-userns-sleep:1');
    // The sandbox image, built into this engine (it shifts the layers' owners into its range on import).
    image = (await buildSandboxImage(engine.docker)).image;
  }, 300_000);
  afterAll(async () => {
    await engine?.stop();
  }, 60_000);

  it("maps the container's root, and the agent's uid, to unprivileged host uids", async () => {
    expect((await engineIsolation(engine.docker)).userNamespaceRemap).toBe(true);
    for (const [user, hostUid] of [['0:0', REMAP_BASE], [`${AGENT_UID}:${AGENT_UID}`, REMAP_BASE + AGENT_UID]] as const) {
      const container = await engine.docker.createContainer({
        Image: 'dp-userns-sleep:1', Cmd: ['/bin/sleep', '120'], User: user,
        HostConfig: { NetworkMode: 'none', LogConfig: { Type: 'none', Config: {} }, AutoRemove: false },
      });
      try {
        await container.start();
        const pid = (await container.inspect()).State.Pid;
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        expect(status).toMatch(new RegExp(`^Uid:\\s+${hostUid}\\s+${hostUid}\\s+${hostUid}\\s+${hostUid}$`, 'm'));
        expect(readFileSync(`/proc/${pid}/uid_map`, 'utf8').trim().split(/\s+/)).toEqual(['0', String(REMAP_BASE), '65536']);
      } finally {
        await container.remove({ force: true });
      }
    }
  }, 120_000);

  it('refuses to start when SANDBOX_USERNS_BASE disagrees with the map the engine applies', async () => {
    await expect(DockerSandboxHost.open({ docker: engine.docker, socketPath: engine.socketPath, image, scope: SCOPE, workspaceRoot: engine.workspaceRoot, usernsBase: '1000000' })).rejects.toThrow(
      new RegExp(`^Docker sandbox host: user-namespace remapping: SANDBOX_USERNS_BASE is 1000000:1000000, but the engine maps container root to ${REMAP_BASE}:${REMAP_BASE}`),
    );
  });

  it('runs a sandbox on it: the agent and a credential process as remapped host uids, a lease only the credential uid can read, nothing left after teardown', async () => {
    const host = await DockerSandboxHost.open({ docker: engine.docker, socketPath: engine.socketPath, image, scope: SCOPE, workspaceRoot: engine.workspaceRoot, usernsBase: String(REMAP_BASE) });
    expect(host.isolation.userNamespaceRemap).toBe(true);
    const handle = await host.create({ runId: 'run-userns', workspaceId: 'ws-userns', files: { 'src/hello.txt': 'hello' }, redactor, guard });
    const { containerId, credentialDir, hostDir, workspace } = host.inspect(handle);
    try {
      // The agent: its container uid inside, its workspace (the host's tmpfs) its own, what it writes owned by base + its uid here.
      const agent = await host.exec(handle, { argv: ['sh', '-c', 'id -u; cat src/hello.txt; echo; echo written > out.txt'], identity: 'agent' });
      expect(agent.exitCode, agent.stderr).toBe(0);
      expect(agent.stdout).toBe(`${AGENT_UID}\nhello\n`);
      expect(statSync(path.join(workspace, 'out.txt')).uid).toBe(REMAP_BASE + AGENT_UID);
      expect(statSync(path.join(workspace, 'src/hello.txt')).uid).toBe(REMAP_BASE + AGENT_UID);

      // A credential process with an env and a file lease; while it waits, the agent tries the file.
      let filePath = '';
      const credential = await host.start(handle, {
        argv: ['sh', '-c', 'id -u; printf "%s|" "$API_KEY"; cat "$KEY_FILE"; printf "|\\n"; while [ ! -e go-on ]; do sleep 0.1; done'],
        identity: 'credential',
        credentials: async (target) => {
          const file = await prepareTempFile({ secretName: 'API_KEY', value: SECRET, use: 'file', as: 'KEY_FILE' }, target);
          filePath = file.paths[0] ?? '';
          return [await prepareProcessEnv({ secretName: 'API_KEY', value: SECRET, use: 'env', as: 'API_KEY' }, target), file];
        },
      });
      await until(() => filePath !== '' && existsSync(filePath), 'the file lease is delivered');
      expect(filePath.startsWith(credentialDir)).toBe(true);
      const lease = statSync(filePath);
      expect(lease.uid).toBeGreaterThanOrEqual(REMAP_BASE + FIRST_CREDENTIAL_UID);
      expect(lease.mode & 0o077).toBe(0);
      // The credential process runs (as a host uid of the container's range) once its relay's exec is in.
      const credentialPids = (): Array<{ pid: string; uids: number[] }> => containerProcesses(containerId).filter((p) => p.uids[0] === lease.uid);
      await until(() => credentialPids().length > 0, 'the credential process runs');
      const stolen = await host.exec(handle, { argv: ['sh', '-c', 'cat "$1"', 'steal', filePath], identity: 'agent' });
      expect(stolen.exitCode).not.toBe(0);
      expect(stolen.stderr).toMatch(/Permission denied/);
      expect(stolen.stdout).not.toContain(SECRET);
      // From the host, every process of the container is an unprivileged uid of the remapped range: none is root or a host user.
      const seen = containerProcesses(containerId);
      expect(seen.length).toBeGreaterThan(0);
      for (const { pid, uids } of seen) for (const uid of uids) expect(uid, `pid ${pid}`).toBeGreaterThanOrEqual(REMAP_BASE);
      writeFileSync(path.join(workspace, 'go-on'), '');
      const done = await credential.exited;
      expect(done.exitCode, done.stderr).toBe(0);
      const [uid, rest = ''] = done.stdout.split('\n');
      expect(Number(uid)).toBe(lease.uid - REMAP_BASE);
      expect(rest).toBe('[REDACTED:API_KEY]|[REDACTED:API_KEY]|');
      expect(done.stdout).not.toContain(SECRET);
      expect(existsSync(filePath)).toBe(false);

      // Another instance adopts the sandbox: it stops the credential process the first one left running (an exec
      // as that container uid) and gives the next one a uid past it.
      const left = await host.start(handle, { argv: ['sh', '-c', 'while :; do sleep 0.1; done'], identity: 'credential' });
      await until(() => containerProcesses(containerId).some((p) => p.uids[0] === lease.uid + 1), 'the left credential process runs');
      await host.close();
      const other = await DockerSandboxHost.open({ docker: engine.docker, socketPath: engine.socketPath, image, scope: SCOPE, workspaceRoot: engine.workspaceRoot });
      try {
        const found = await other.find('run-userns');
        expect(found?.sandboxId).toBe(handle.sandboxId);
        await other.adopt(handle, { redactor, guard, egress: undefined });
        expect((await left.exited).exitCode).not.toBe(0);
        const next = await other.exec(handle, { argv: ['id', '-u'], identity: 'credential' });
        expect(Number(next.stdout.trim())).toBe(lease.uid - REMAP_BASE + 2);
      } finally {
        await other.teardown(handle);
        await other.close();
      }
    } finally {
      await host.teardown(handle);
      await host.close();
    }
    expect(await engine.docker.listContainers({ all: true, filters: { label: [`disco-parrot.scope=${SCOPE}`] } })).toEqual([]);
    for (const dir of [credentialDir, hostDir, workspace]) expect(existsSync(dir), dir).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${workspace} `);
    await until(() => containerProcesses(containerId).length === 0, 'no process of the container is left');
  }, 180_000);
});

/** Processes of one container seen from the host (their cgroup names it), with their real, effective, saved and fs uids. */
function containerProcesses(containerId: string): Array<{ pid: string; uids: number[] }> {
  const found: Array<{ pid: string; uids: number[] }> = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      if (!readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(containerId)) continue;
      const uids = (/^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '').trim().split(/\s+/).map(Number);
      found.push({ pid, uids });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
