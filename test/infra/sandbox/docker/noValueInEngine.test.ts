import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GuardPolicy } from '../../../../domain/launchGuard';
import { prepareProcessEnv } from '../../../../infra/sandbox/channels/processEnv';
import { prepareStdin } from '../../../../infra/sandbox/channels/stdin';
import { prepareTempFile } from '../../../../infra/sandbox/channels/tempFile';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { EXEC_CMD } from '../../../../infra/sandbox/docker/imageFiles';
import { describeWithDocker, dockerForTests, sandboxImageForTests, testScope, removeScope } from '../../../support/dockerEngine';
import { leakForms } from '../../../support/leakScan';
import { aSecretValue, redactorFor } from '../sandboxTestKit';

/**
 * A container's Env and Cmd and every exec's config are engine state: written under the data root and shown by
 * `docker inspect`. Leases reach their process over the exec's stdin instead, so a scan of the data root (and
 * the exec root), of the inspect output of the container and every exec, and of each exec's own process (the
 * in-image launcher: what an exec's Env would have given it) finds none of them. The control at the end puts a
 * value in an exec's Env and Cmd the wrong way and shows the same scan finds it.
 */
const engine = dockerForTests();
const scope = testScope(__filename);
const MAX_SCANNED_FILE = 64 * 1024 * 1024;

type Texts = Array<{ where: string; bytes: Buffer }>;

function filesUnder(root: string, into: Texts): void {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return;
  }
  for (const name of entries) {
    const full = path.join(root, name);
    let stat;
    try {
      stat = lstatSync(full);
    } catch {
      continue;
    }
    if (stat.isDirectory()) filesUnder(full, into);
    else if (stat.isFile() && stat.size > 0 && stat.size < MAX_SCANNED_FILE) {
      try {
        into.push({ where: full, bytes: readFileSync(full) });
      } catch {
        // a socket, a fifo or a file gone meanwhile
      }
    }
  }
}

/** dockerd's --exec-root, from the command line of the daemon serving this socket (default /var/run/docker). */
function execRootOf(socketPath: string): string | undefined {
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let args: string[];
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!args[0]?.endsWith('dockerd') || !args.some((a) => a.includes(socketPath))) continue;
    const at = args.findIndex((a) => a === '--exec-root' || a.startsWith('--exec-root='));
    if (at < 0) return '/var/run/docker';
    return args[at]?.includes('=') ? args[at]?.split('=')[1] : args[at + 1];
  }
  return undefined;
}

async function engineState(docker: Dockerode, socketPath: string, containerIds: readonly string[]): Promise<Texts> {
  const texts: Texts = [];
  for (const id of containerIds) {
    const container = await docker.getContainer(id).inspect();
    texts.push({ where: `inspect container ${id.slice(0, 12)}`, bytes: Buffer.from(JSON.stringify(container)) });
    for (const execId of container.ExecIDs ?? []) {
      const exec = await docker.getExec(execId).inspect();
      texts.push({ where: `inspect exec ${execId.slice(0, 12)}`, bytes: Buffer.from(JSON.stringify(exec)) });
      // The exec's own process: its environ and argv are exactly the exec's Env and Cmd.
      if (exec.Running && exec.Pid > 0)
        for (const file of ['environ', 'cmdline'])
          try {
            texts.push({ where: `exec ${execId.slice(0, 12)} /proc/${exec.Pid}/${file}`, bytes: readFileSync(`/proc/${exec.Pid}/${file}`) });
          } catch {
            // exited meanwhile
          }
    }
  }
  filesUnder((await docker.info()).DockerRootDir as string, texts);
  const execRoot = execRootOf(socketPath);
  if (execRoot) filesUnder(execRoot, texts);
  return texts;
}

function hits(texts: Texts, values: Record<string, string>): string[] {
  const found: string[] = [];
  for (const [name, value] of Object.entries(values))
    for (const form of leakForms(value))
      for (const { where, bytes } of texts) if (bytes.includes(form)) found.push(`${name} in ${where}`);
  return [...new Set(found)];
}

describeWithDocker('no value where the engine keeps state', engine, ({ docker, socketPath }) => {
  let host: DockerSandboxHost;
  const values = { ENV_LEASE: aSecretValue('env'), FILE_LEASE: aSecretValue('file'), STDIN_LEASE: aSecretValue('stdin'), MODEL_KEY: aSecretValue('model') };
  const guard: GuardPolicy = { secretNames: Object.keys(values), managedValues: Object.entries(values).map(([name, value]) => ({ name, value })) };
  const redactor = redactorFor(Object.entries(values).map(([name, value]) => ({ name, value })));

  beforeAll(async () => {
    host = await DockerSandboxHost.open({ docker, socketPath, image: await sandboxImageForTests(docker), scope });
  });
  afterAll(async () => {
    await removeScope(docker, scope);
  });

  it('leases through env, file and stdin: the data root, the exec root, every inspect and every exec process hold none of them', async () => {
    const handle = await host.create({ runId: 'run-leak', workspaceId: 'ws-leak', files: { 'README.md': 'nothing here' }, redactor, guard });
    const containerId = host.inspect(handle).containerId;
    const leases = async (target: Parameters<typeof prepareTempFile>[1]) => [
      await prepareProcessEnv({ secretName: 'ENV_LEASE', value: values.ENV_LEASE, use: 'env', as: 'ENV_LEASE' }, target),
      await prepareTempFile({ secretName: 'FILE_LEASE', value: values.FILE_LEASE, use: 'file', as: 'FILE_LEASE_PATH' }, target),
      await prepareStdin({ secretName: 'STDIN_LEASE', value: values.STDIN_LEASE, use: 'stdin' }, target),
    ];
    // A finished credential process that used all three, and a credential process and an agent runtime still
    // running with theirs (an MCP server, the agent holding its model key), so their execs are live while scanned.
    const finished = await host.exec(handle, {
      argv: ['sh', '-c', 'test -n "$ENV_LEASE" && test -s "$FILE_LEASE_PATH" && test -n "$(cat)" && echo used'], identity: 'credential', credentials: leases,
    });
    expect(finished.stdout).toBe('used\n');
    const server = await host.start(handle, { argv: ['sh', '-c', 'cat >/dev/null; sleep 60'], identity: 'credential', credentials: leases });
    const agent = await host.start(handle, {
      argv: ['sh', '-c', 'sleep 60'], identity: 'agent',
      credentials: async (target) => [await prepareProcessEnv({ secretName: 'MODEL_KEY', value: values.MODEL_KEY, use: 'env', as: 'MODEL_KEY' }, target)],
    });
    try {
      // Both execs must be live when scanned; under load they take a moment to start.
      const liveExecs = (scanned: Texts) => scanned.filter((t) => t.where.startsWith('exec ') && t.where.endsWith('environ')).length;
      let texts = await engineState(docker, socketPath, [containerId]);
      for (const end = Date.now() + 20_000; liveExecs(texts) < 2 && Date.now() < end; texts = await engineState(docker, socketPath, [containerId]))
        await new Promise((r) => setTimeout(r, 250));
      expect(texts.filter((t) => t.where.startsWith('exec ') && t.where.endsWith('environ')).length).toBeGreaterThanOrEqual(2); // the live execs were scanned
      expect(texts.filter((t) => t.where.includes('/containers/')).length).toBeGreaterThan(0); // and the container's files in the data root
      expect(hits(texts, values)).toEqual([]);
      // The process itself has its lease (the env channel is the point), so the scan is not vacuous.
      const inside = await host.exec(handle, { argv: ['sh', '-c', 'echo "$MODEL_KEY"'], identity: 'agent', credentials: async (t) => [await prepareProcessEnv({ secretName: 'MODEL_KEY', value: values.MODEL_KEY, use: 'env', as: 'MODEL_KEY' }, t)] });
      expect(inside.stdout).toBe('[REDACTED:MODEL_KEY]\n');
    } finally {
      await server.stop();
      await agent.stop();
      await host.teardown(handle);
    }
  });

  it('control: the same scan finds a value put in an exec’s Env or Cmd', async () => {
    const handle = await host.create({ runId: 'run-leak-control', files: {}, redactor, guard });
    try {
      const containerId = host.inspect(handle).containerId;
      const canaries = { IN_ENV: aSecretValue('canary'), IN_CMD: aSecretValue('canary') };
      const wrong = await docker.getContainer(containerId).exec({ Cmd: [...EXEC_CMD, canaries.IN_CMD], Env: [`LEASE=${canaries.IN_ENV}`], User: '60001:60000', AttachStdin: true, AttachStdout: false });
      // The launcher waits on its stdin, which stays open while the attach stream does.
      const stream = await wrong.start({ hijack: true, stdin: true });
      try {
        const bothFound = (seen: string[]) =>
          seen.some((hit) => hit.startsWith('IN_ENV in exec ') && hit.endsWith('/environ')) && seen.some((hit) => hit.startsWith('IN_CMD in inspect exec '));
        let found = hits(await engineState(docker, socketPath, [containerId]), canaries);
        for (const end = Date.now() + 20_000; !bothFound(found) && Date.now() < end; found = hits(await engineState(docker, socketPath, [containerId]), canaries))
          await new Promise((r) => setTimeout(r, 250));
        expect(found.some((hit) => hit.startsWith('IN_ENV in exec ') && hit.endsWith('/environ'))).toBe(true);
        expect(found.some((hit) => hit.startsWith('IN_CMD in inspect exec '))).toBe(true);
      } finally {
        stream.destroy();
      }
    } finally {
      await host.teardown(handle);
    }
  });
});
