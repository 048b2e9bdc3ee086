import { existsSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GuardPolicy } from '../../../../domain/launchGuard';
import type { SandboxHandle } from '../../../../domain/ports/sandboxHost';
import { prepareProcessEnv } from '../../../../infra/sandbox/channels/processEnv';
import { prepareStdin } from '../../../../infra/sandbox/channels/stdin';
import { prepareTempFile } from '../../../../infra/sandbox/channels/tempFile';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { AGENT_UID, DOOR_UID, FIRST_CREDENTIAL_UID } from '../../../../infra/sandbox/docker/imageFiles';
import { LaunchRefusedError } from '../../../../infra/sandbox/launchErrors';
import { containersOfScope, describeWithDocker, dockerForTests, sandboxImageForTests, testScope, removeScope } from '../../../support/dockerEngine';
import { aSecretValue, redactorFor } from '../sandboxTestKit';

/**
 * The Docker sandbox host against a real engine: what a container is given, the channels through the
 * value-free exec, the guard at every launch, a sandbox found by its run id from another host instance, and a
 * teardown that leaves no container, directory or process.
 */
const engine = dockerForTests();
const scope = testScope(__filename);
const SECRET = aSecretValue('dock');
const guard: GuardPolicy = { secretNames: ['API_KEY'], managedValues: [{ name: 'API_KEY', value: SECRET }] };
const redactor = redactorFor([{ name: 'API_KEY', value: SECRET }]);

/** Host processes whose command line mentions this scope (the relays) or that run as a sandbox uid. */
/**
 * The processes of one sandbox, seen from the host: those inside its container (their cgroup names the container)
 * and the host-side ones whose command line names its directory (relays, doors). Other suites' sandboxes run
 * beside this one under the same uids, so neither the uid nor the shared parent directory may decide.
 */
function hostProcessesOf(sandbox: { hostDir: string; containerId: string }): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      if (cmdline.includes(sandbox.hostDir) || cgroup.includes(sandbox.containerId)) found.push(`${pid} ${cmdline.replaceAll('\0', ' ')}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describeWithDocker('DockerSandboxHost', engine, ({ docker, socketPath }) => {
  let host: DockerSandboxHost;
  let image = '';
  const timings: Record<string, number[]> = { create: [], teardown: [] };

  const create = async (runId: string, extra: { files?: Record<string, string>; env?: Record<string, string> } = {}): Promise<SandboxHandle> => {
    const started = performance.now();
    const handle = await host.create({ runId, workspaceId: 'ws-docker-test', files: extra.files ?? {}, redactor, guard, ...(extra.env ? { env: extra.env } : {}) });
    timings.create?.push(performance.now() - started);
    return handle;
  };
  const teardown = async (handle: SandboxHandle): Promise<void> => {
    const started = performance.now();
    await host.teardown(handle);
    timings.teardown?.push(performance.now() - started);
  };

  beforeAll(async () => {
    image = await sandboxImageForTests(docker);
    host = await DockerSandboxHost.open({ docker, socketPath, image, scope });
  });
  afterAll(async () => {
    await removeScope(docker, scope);
    await removeScope(docker, `${scope}-other`);
    const ms = (list: number[] = []) => list.map((t) => Math.round(t)).join(', ');
    console.info(`docker sandbox timings (ms): create [${ms(timings.create)}], teardown [${ms(timings.teardown)}]`);
  });

  it('says in one line what is missing: an image the engine lacks', async () => {
    await expect(DockerSandboxHost.open({ docker, socketPath, image: 'disco-parrot-sandbox:does-not-exist', scope })).rejects.toThrow(
      /^Docker sandbox host: image disco-parrot-sandbox:does-not-exist is missing \(run `npm run sandbox-image`/,
    );
  });

  it('gives the container no value, no capability, no network, a read-only root, tmpfs for the workspace, limits and no logs', async () => {
    const handle = await create('run-config', { files: { 'src/hello.txt': 'hello' }, env: { GREETING: 'hi' } });
    try {
      const info = await docker.getContainer(host.inspect(handle).containerId).inspect();
      expect(info.Config.Labels).toMatchObject({ 'disco-parrot.scope': scope, 'disco-parrot.run': 'run-config', 'disco-parrot.workspace': 'ws-docker-test', 'disco-parrot.sandbox': handle.sandboxId });
      expect(info.Config.Env).toEqual(['PATH=/usr/local/bin:/usr/bin:/bin']); // the image's, nothing of the run
      expect(info.Config.Cmd).toEqual(['node', '/opt/dp/doors.js']);
      expect(info.Config.User).toBe(`${DOOR_UID}:${DOOR_UID}`);
      const hc = info.HostConfig;
      expect(hc.CapDrop).toEqual(['ALL']);
      expect(hc.CapAdd ?? []).toEqual([]);
      expect(hc.SecurityOpt).toEqual(['no-new-privileges']);
      expect(hc.Privileged).toBe(false);
      expect(hc.ReadonlyRootfs).toBe(true);
      expect(hc.NetworkMode).toBe('none');
      expect(hc.LogConfig).toEqual({ Type: 'none', Config: {} });
      expect(hc.PidsLimit).toBeGreaterThan(0);
      expect(hc.Memory).toBeGreaterThan(0);
      expect(hc.NanoCpus).toBeGreaterThan(0);
      expect(Object.keys(hc.Tmpfs ?? {}).sort()).toEqual(['/home/agent', '/tmp']);
      const { workspace, credentialDir } = host.inspect(handle);
      expect(workspace.startsWith('/dev/shm/')).toBe(true); // the host's tmpfs, mounted at the same path
      expect(hc.Binds).toEqual([expect.stringMatching(/:\/run\/dp\/doors:rw$/), `${credentialDir}:${credentialDir}:rw`, `${workspace}:${workspace}:rw`]);
      const seen = await host.exec(handle, {
        argv: ['sh', '-c', 'id -u; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status; cat src/hello.txt; echo; echo "$GREETING"; touch /usr/x 2>&1; ls /sys/class/net; pwd'],
        identity: 'agent',
      });
      expect(seen.exitCode, seen.stderr).toBe(0);
      const lines = seen.stdout.split('\n');
      expect(lines[0]).toBe(String(AGENT_UID));
      expect(seen.stdout).toMatch(/CapEff:\s+0000000000000000/);
      expect(seen.stdout).toMatch(/NoNewPrivs:\s+1/);
      expect(seen.stdout).toMatch(/Seccomp:\s+2/); // the engine's default profile
      expect(seen.stdout).toContain('hello\nhi\n');
      expect(seen.stdout).toMatch(/Read-only file system/);
      expect(seen.stdout.endsWith(`\nlo\n${workspace}\n`)).toBe(true); // loopback only
    } finally {
      await teardown(handle);
    }
  });

  it('delivers env, file and stdin leases to a credential process of its own uid, redacts its output and removes the file', async () => {
    const handle = await create('run-channels');
    try {
      let filePath = '';
      const result = await host.exec(handle, {
        argv: ['sh', '-c', 'id -u; printf "%s|" "$API_KEY"; cat "$KEY_FILE"; printf "|"; cat; printf "|%s" "$KEY_FILE"'],
        identity: 'credential',
        credentials: async (target) => {
          const file = await prepareTempFile({ secretName: 'API_KEY', value: SECRET, use: 'file', as: 'KEY_FILE' }, target);
          filePath = file.paths[0] ?? '';
          return [
            await prepareProcessEnv({ secretName: 'API_KEY', value: SECRET, use: 'env', as: 'API_KEY' }, target),
            file,
            await prepareStdin({ secretName: 'API_KEY', value: SECRET, use: 'stdin' }, target),
          ];
        },
      });
      expect(result.exitCode, result.stderr).toBe(0);
      const [uid, rest] = [result.stdout.split('\n')[0], result.stdout.split('\n').slice(1).join('\n')];
      expect(Number(uid)).toBeGreaterThanOrEqual(FIRST_CREDENTIAL_UID);
      expect(rest.split('|').slice(0, 3)).toEqual(['[REDACTED:API_KEY]', '[REDACTED:API_KEY]', '[REDACTED:API_KEY]']);
      expect(result.stdout).not.toContain(SECRET);
      expect(filePath.startsWith(host.inspect(handle).credentialDir)).toBe(true);
      expect(existsSync(filePath)).toBe(false);
      // A second credential process gets another uid (a leftover child of the first cannot read its leases).
      const second = await host.exec(handle, { argv: ['id', '-u'], identity: 'credential' });
      expect(Number(second.stdout.trim())).toBe(Number(uid) + 1);
    } finally {
      await teardown(handle);
    }
  });

  it('re-checks the guard at every launch: a standing env carrying a managed value starts nothing and prepares no delivery', async () => {
    await expect(create('run-refused', { env: { DEPLOY_URL: `https://x:${SECRET}@example.com` } })).rejects.toBeInstanceOf(LaunchRefusedError);
    expect((await containersOfScope(docker, scope)).filter((c) => c.Labels['disco-parrot.run'] === 'run-refused')).toEqual([]);
    const handle = await create('run-guard');
    try {
      const before = (await docker.getContainer(host.inspect(handle).containerId).inspect()).ExecIDs ?? [];
      let prepared = false;
      await expect(
        host.exec(handle, {
          argv: ['sh', '-c', 'true'], identity: 'agent', env: { NOTE: Buffer.from(SECRET).toString('base64') },
          credentials: async () => ((prepared = true), []),
        }),
      ).rejects.toBeInstanceOf(LaunchRefusedError);
      expect(prepared).toBe(false);
      const after = (await docker.getContainer(host.inspect(handle).containerId).inspect()).ExecIDs ?? [];
      expect(after.length).toBe(before.length); // no exec was created
    } finally {
      await teardown(handle);
    }
  });

  it('kills a process at its timeout and what it left running, inside the container', async () => {
    const handle = await create('run-timeout');
    try {
      const result = await host.exec(handle, { argv: ['sh', '-c', 'sleep 120 & sleep 121'], identity: 'agent', timeoutMs: 1500 });
      expect(result.timedOut).toBe(true);
      // The kill is asynchronous: look until the leftovers are gone (a bound, not a timing claim).
      const processList = async () =>
        (await host.exec(handle, { argv: ['sh', '-c', 'for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr "\\0" " "; echo; done'], identity: 'agent' })).stdout;
      let left = await processList();
      for (const end = Date.now() + 15_000; /sleep 12[01]/.test(left) && Date.now() < end; left = await processList())
        await new Promise((r) => setTimeout(r, 200));
      expect(left).not.toMatch(/sleep 12[01]/);
    } finally {
      await teardown(handle);
    }
  });

  it('finds a run’s sandbox by its run id from another host instance, which removes it once the run is over', async () => {
    const handle = await create('run-found');
    const other = await DockerSandboxHost.open({ docker, socketPath, image, scope });
    const stranger = await DockerSandboxHost.open({ docker, socketPath, image, scope: `${scope}-other` });
    expect(await other.find('run-found')).toEqual(handle);
    expect(await stranger.find('run-found')).toBeUndefined(); // another scope never sees it
    expect(await host.removeOrphans(async () => true)).toBe(0); // its own live sandbox is left to its teardown
    expect(await other.removeOrphans(async () => false)).toBe(0); // the run is not over
    expect(await other.removeOrphans(async (runId) => runId === 'run-found')).toBe(1);
    expect(await other.find('run-found')).toBeUndefined();
    await teardown(handle); // idempotent with the container already gone
  });

  it('is adopted by another instance after this one stops: the same container and workspace, doors served anew, its credential processes stopped, no uid reused', async () => {
    const gatewayPath = '/api/gateway/operations';
    const gateway = http.createServer((req, res) => res.end(req.url === gatewayPath ? 'gateway-ok' : 'not-gateway'));
    await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r));
    const gatewayUrl = `http://127.0.0.1:${(gateway.address() as net.AddressInfo).port}${gatewayPath}`;
    const first = await DockerSandboxHost.open({ docker, socketPath, image, scope, gatewayUrl });
    const second = await DockerSandboxHost.open({ docker, socketPath, image, scope, gatewayUrl });
    const ask = `require('http').request(process.argv[1],{method:'POST'},(r)=>{let b='';r.on('data',(d)=>b+=d);r.on('end',()=>console.log(b))}).on('error',(e)=>console.log(e.code)).end()`;
    try {
      const handle = await first.create({ runId: 'run-adopted', files: {}, redactor, guard });
      await first.exec(handle, { argv: ['sh', '-c', 'echo installed > state.txt'], identity: 'agent' });
      const mcp = await first.start(handle, { argv: ['sleep', '120'], identity: 'credential' });
      await first.close(); // the instance goes away between phases; its container keeps running
      await expect(first.exec(handle, { argv: ['true'], identity: 'agent' })).rejects.toThrow(/torn down or unknown/);
      const found = await second.find('run-adopted');
      expect(found?.sandboxId).toBe(handle.sandboxId);
      await second.adopt(found as SandboxHandle, { redactor, guard });
      // Nobody supervises the first instance's credential process any more: adopting stopped it.
      expect((await mcp.exited).exitCode).not.toBe(0);
      const turn = await second.exec(handle, { argv: ['sh', '-c', 'cat state.txt && node -e "$1" "$2"', 'turn', ask, gatewayUrl], identity: 'agent' });
      expect(turn.stdout).toBe('installed\ngateway-ok\n');
      const uids = await second.exec(handle, { argv: ['id', '-u'], identity: 'credential' });
      expect(Number(uids.stdout.trim())).toBeGreaterThan(FIRST_CREDENTIAL_UID); // 60100 was the first instance's MCP server's
      await teardown(handle);
      expect(await second.find('run-adopted')).toBeUndefined();
    } finally {
      await new Promise((r) => gateway.close(r));
    }
  });

  it('is shared by another instance while this one holds it: nothing of the holder stopped, its doors kept, no credential uid used twice by either', async () => {
    const first = await DockerSandboxHost.open({ docker, socketPath, image, scope });
    const second = await DockerSandboxHost.open({ docker, socketPath, image, scope });
    const handle = await first.create({ runId: 'run-shared', files: {}, redactor, guard });
    try {
      const uidOf = async (on: DockerSandboxHost): Promise<number> => Number((await on.exec(handle, { argv: ['id', '-u'], identity: 'credential' })).stdout.trim());
      const mcp = await first.start(handle, { argv: ['sleep', '120'], identity: 'credential' });
      const doorsJson = path.join(first.inspect(handle).hostDir, 'doors', 'doors.json');
      const doors = readFileSync(doorsJson, 'utf8');
      const shared = await second.share((await second.find('run-shared')) as SandboxHandle, { redactor, guard });
      const sharerUid = await uidOf(second);
      const holderUid = await uidOf(first);
      expect(new Set([FIRST_CREDENTIAL_UID, sharerUid, holderUid]).size).toBe(3); // the holder's next uid skips the sharer's
      // The holder's credential process still runs (as the first credential uid), and its doors are the same.
      const statuses = (await first.exec(handle, { argv: ['sh', '-c', 'cat /proc/[0-9]*/status 2>/dev/null'], identity: 'agent' })).stdout;
      expect(statuses.split(/^(?=Name:)/m).some((s) => /^Name:\s+sleep/m.test(s) && new RegExp(`^Uid:\\s+${FIRST_CREDENTIAL_UID}\\b`, 'm').test(s))).toBe(true);
      expect(readFileSync(doorsJson, 'utf8')).toBe(doors);
      await shared.leave();
      await expect(second.exec(handle, { argv: ['true'], identity: 'agent' })).rejects.toThrow(/torn down or unknown/);
      await mcp.stop();
    } finally {
      await first.teardown(handle);
    }
  });

  it('tears down without leaving a container, a directory, a relay or a sandbox process, even with processes running', async () => {
    const volumesBefore = ((await docker.listVolumes()).Volumes ?? []).map((v) => v.Name);
    const handle = await create('run-teardown');
    const { hostDir, credentialDir, containerId, workspace } = host.inspect(handle);
    const running = await host.start(handle, { argv: ['sh', '-c', 'sleep 300 & sleep 301'], identity: 'agent' });
    const holder = await host.start(handle, { argv: ['sleep', '302'], identity: 'credential' });
    await new Promise((r) => setTimeout(r, 500));
    expect(hostProcessesOf({ hostDir, containerId }).length).toBeGreaterThan(0); // the probe sees them while they run
    await teardown(handle);
    await Promise.all([running.exited, holder.exited]);
    await expect(docker.getContainer(containerId).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await containersOfScope(docker, scope)).filter((c) => c.Labels['disco-parrot.run'] === 'run-teardown')).toEqual([]);
    expect(existsSync(hostDir)).toBe(false);
    expect(existsSync(credentialDir)).toBe(false);
    expect(existsSync(workspace)).toBe(false);
    expect(hostProcessesOf({ hostDir, containerId })).toEqual([]);
    expect(((await docker.listVolumes()).Volumes ?? []).map((v) => v.Name).filter((name) => !volumesBefore.includes(name))).toEqual([]);
    await host.teardown(handle); // idempotent
  });
});
