import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { engineIsolation } from '../../../../infra/sandbox/docker/engineIsolation';
import { AGENT_UID } from '../../../../infra/sandbox/docker/imageFiles';
import { describeWithDocker, dockerForTests } from '../../../support/dockerEngine';
import { importSleepImage, REMAP_BASE, remappedEngineUnavailable, startRemappedEngine, type RemappedEngine } from '../../../support/remappedDockerEngine';

/**
 * What user-namespace remapping changes, on a second engine of its own started with `--userns-remap` (the
 * `dockremap` ranges exist only in that engine's private mount namespace): the container's root is an
 * unprivileged host uid, the isolation report says so, and the Docker host refuses the engine in one line rather
 * than hand its directories to uids the container does not have. Runs where the Docker suites run (root, dockerd).
 */
const unavailable = remappedEngineUnavailable();

describeWithDocker('user-namespace remapping on an engine of its own', unavailable === undefined ? dockerForTests() : undefined, () => {
  let engine: RemappedEngine;

  beforeAll(async () => {
    engine = await startRemappedEngine();
    await importSleepImage(engine.docker, 'dp-userns-sleep:1');
  }, 180_000);
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

  it('is refused by the Docker sandbox host in one line, naming userns-remap', async () => {
    await expect(DockerSandboxHost.open({ docker: engine.docker, socketPath: engine.socketPath, scope: 'userns-test' })).rejects.toThrow(
      /^Docker sandbox host: the engine remaps user namespaces \(userns-remap\)/,
    );
  });
});
