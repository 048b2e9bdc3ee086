import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDomainError } from '../../domain/errors';
import type { GuardPolicy } from '../../domain/launchGuard';
import type { ProcessCredentialTarget, SandboxHandle, SandboxHost, SandboxRequest } from '../../domain/ports/sandboxHost';
import { createRedactor } from '../../domain/redaction';
import { NPM_CREDENTIAL_FLAGS } from '../../domain/secretPolicy';
import { assertGitCommand, planPackageInstall, preparerFor } from '../../infra/sandbox/channels';
import type { CredentialDelivery, CredentialRequest } from '../../infra/sandbox/credentialDelivery';
import { findProjectRoot } from '../../infra/system/projectRoot';
import { azuriteConnectionString } from '../support/azurite';
import { startGitHttpServer, type GitHttpServer } from '../support/gitHttpServer';
import { startNpmRegistry, type NpmRegistry } from '../support/npmRegistry';
import { aSecretValue, envDelivery, fixture, npmConfigDelivery, tempFileDelivery } from '../infra/sandbox/sandboxTestKit';

/**
 * One behaviour, every SandboxHost (DESIGN.md §1.5–1.7, issues 14 and 15): the launch guard at launch, each
 * credential channel to exactly one process, a hostile agent that gets nothing but its own model key, the
 * network and filesystem probes, nothing left after teardown, output redacted as it streams.
 *
 * Every probe runs inside the sandbox through the port (`exec`/`start`), so a container host is attacked the
 * same way as the local one; what only the host knows (its pids and disk, where credential material lives)
 * comes from the harness. Root assumption: these tests run as root here and in CI. A host that reports
 * `capabilities.isolated === false` (not root, or isolation off) gets the control instead of the attack:
 * the probe reaches what isolation would have hidden, which is why such a host records IsolationDegraded.
 */

/** What the suite runs for the host before creating it: loopback servers the host must let sandboxes reach. */
export interface SandboxHostSetup {
  /** GATEWAY_URL on the host's loopback; sandboxes must reach this route and nothing else of its port. */
  readonly gatewayUrl: string;
  /** Loopback `host:port` servers sandboxes may reach (a git server, an npm registry): a test-only allowance. */
  readonly testServers: readonly string[];
}

/** Host-side views of a live sandbox, taken before teardown and re-read after it. */
export interface SandboxTraces {
  /** Host pids belonging to the sandbox now (re-evaluated: after teardown it must be empty). */
  processes(): number[];
  /** Host paths of the sandbox (its disk, its credential material): gone after teardown. */
  readonly paths: readonly string[];
}

export interface SandboxHostHarness {
  readonly host: SandboxHost;
  /** Where, as the sandbox sees it, this host keeps credential material and other sandboxes (the hostile fixture walks them). */
  huntDirs(handle: SandboxHandle): readonly string[];
  /** Everything of the sandbox on the machine, for the teardown checks. */
  traces(handle: SandboxHandle): SandboxTraces;
  /** Credential material of finished processes still on disk (none expected). */
  credentialLeftovers(handle: SandboxHandle): readonly string[];
  /**
   * Every regular file under the sandbox's workspace, read from the host side: what the agent wrote there
   * (loot, a kept volume) is checked without passing it through `exec`, whose output the redactor masks.
   */
  workspaceFiles(handle: SandboxHandle): Promise<ReadonlyArray<{ readonly path: string; readonly content: Buffer }>>;
  /** Launches the host's guarded launcher has ticketed so far: a refused launch adds none. */
  launches(): number;
  /**
   * Where the sandbox's machine keeps its copy of a file a delivery prepared, while the copy exists. A host that
   * prepares deliveries on its own machine leaves this out (the prepared file is the copy); a host that prepares
   * them on the platform and ships them inside the exec (RemoteSandboxHost) maps the staging path to the agent's.
   */
  hostCopyOf?(preparedPath: string): string;
  /** Removes a kept volume the suite created (hosts with kept volumes only). */
  removeVolume?(name: string): Promise<void>;
  close(): Promise<void>;
}

export interface SandboxHostContractCapabilities {
  /** RunSpec `keptVolume`: kept across teardown on this host, or refused at create. */
  readonly keptVolumes: boolean;
  /**
   * Whether an isolated sandbox's /proc lists only the caller's own processes (hidepid=2, the local host). A
   * container's /proc is mounted by the engine without hidepid and nobody inside may remount it: the agent lists
   * every process of its container, and reads none of another uid's entries (the ptrace access check; the loot
   * and ptrace checks hold either way).
   */
  readonly ownProcessesOnly: boolean;
  /**
   * The node program as the sandbox sees it. The local host shares this machine's files, so the test's own node;
   * a container has its image's `/usr/bin/node`, which need not be the node running the tests (CI runs the suite
   * on Node 20 and 22 against one image).
   */
  readonly nodeProgram?: string;
}

export type SandboxHostFactory = (setup: SandboxHostSetup) => Promise<SandboxHostHarness>;

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const HASH = 'const h=(t)=>require("crypto").createHash("sha256").update(t).digest("hex");';
const GATEWAY_PATH = '/api/gateway/operations';

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

function expectLaunchRefused(error: unknown, key: string, value?: string): void {
  expect(isDomainError(error), String(error)).toBe(true);
  expect((error as { code: string }).code).toBe('SANDBOX.LAUNCH_REFUSED');
  expect((error as { offendingKey: string }).offendingKey).toBe(key);
  expect((error as Error).message).toContain(key);
  if (value !== undefined) expect(`${(error as Error).message} ${(error as Error).stack ?? ''}`).not.toContain(value);
}

/** Path-bound unix sockets of the host's network namespace, as /proc/net/unix lists them. */
function hostUnixSockets(): string[] {
  return readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/)[7])
    .filter((p): p is string => p !== undefined && p.startsWith('/'));
}

function azuritePorts(): number[] {
  return [...azuriteConnectionString().matchAll(/Endpoint=http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
}

/** Runs inside the sandbox: tries each TCP target, unix socket and HTTP URL, reports what happened. */
const NETWORK_PROBE = String.raw`
const net=require('net'),http=require('http');const plan=JSON.parse(process.argv[1]);const out={};
const connect=(opts)=>new Promise((r)=>{const s=net.connect(opts);const t=setTimeout(()=>{s.destroy();r('timeout')},1500);
 s.on('connect',()=>{clearTimeout(t);s.destroy();r('connected')});s.on('error',(e)=>{clearTimeout(t);r(e.code)})});
const get=(url,opts={})=>new Promise((r)=>{const q=http.request(url,{method:opts.method||'GET',timeout:3000,...(opts.path?{path:opts.path}:{})},(res)=>{let b='';res.on('data',(d)=>b+=d);res.on('end',()=>r(res.statusCode+' '+b.trim()))});
 q.on('error',(e)=>r(e.code));q.on('timeout',()=>{q.destroy();r('timeout')});q.end()});
const connectVia=(target)=>new Promise((r)=>{const q=http.request({host:'127.0.0.1',port:3128,method:'CONNECT',path:target,timeout:3000});
 q.on('connect',(res,s)=>{s.destroy();r(String(res.statusCode))});q.on('response',(res)=>r(String(res.statusCode)));q.on('error',(e)=>r(e.code));q.end()});
(async()=>{
 for(const [h,p] of plan.tcp) out['tcp '+h+':'+p]=await connect({host:h,port:p});
 for(const p of plan.unix) out['unix '+p]=await connect({path:p});
 for(const t of plan.viaProxy) out['proxy '+t]=await connectVia(t);
 out.gateway=await get(process.env.GATEWAY_URL,{method:'POST'});
 out.apiBesideGateway=await get(plan.api);
 out.proxyEnv=process.env.HTTPS_PROXY||'';
 console.log(JSON.stringify(out));
})();`;

/** Reads each path from inside the sandbox: its content (a directory: its entries), or the error code. */
const READ_PROBE = `const fs=require('fs');const out={};for(const p of JSON.parse(process.argv[1])){try{out[p]=fs.statSync(p).isDirectory()?fs.readdirSync(p):fs.readFileSync(p,'utf8')}catch(e){out[p]=e.code}}console.log(JSON.stringify(out))`;

/** A value and the encoded forms a careless tool or a hostile one would write it in. */
const formsOf = (v: string): string[] => [v, Buffer.from(v).toString('base64'), Buffer.from(v).toString('hex'), Buffer.from(v).toString('base64url')];

export function describeSandboxHostContract(name: string, factory: SandboxHostFactory, capabilities: SandboxHostContractCapabilities): void {
  const node = capabilities.nodeProgram ?? process.execPath;
  describe(`${name} (SandboxHost contract)`, () => {
    const secrets = {
      MODEL_KEY: aSecretValue('sk'),
      TRACKER_KEY: aSecretValue('mcp'),
      DEPLOY_KEY: aSecretValue('op'),
      NPM_TOKEN: `dp-tok-${randomBytes(18).toString('hex')}`,
      GIT_TOKEN: `dp-tok-${randomBytes(18).toString('hex')}`,
      STDIN_KEY: aSecretValue('in'),
      OTHER_SANDBOX_KEY: aSecretValue('other'),
    };
    const managed = Object.entries(secrets).map(([n, value]) => ({ name: n, value }));
    const guard: GuardPolicy = { secretNames: Object.keys(secrets), managedValues: managed };
    const redactor = createRedactor(managed);
    const marker = `dp-contract-${randomBytes(6).toString('hex')}`;
    const unixPath = path.join(os.tmpdir(), `${marker}.sock`);
    const planted = {
      // World-readable, as Azurite leaves its files: the mode must not be what keeps them out.
      azuriteLike: path.join(os.tmpdir(), `${marker}-azurite`, '__azurite_db_table__.json'),
      hostTmp: path.join(os.tmpdir(), `${marker}.txt`),
      hostShm: path.join('/dev/shm', `${marker}.txt`),
    };
    let api: http.Server;
    let listener: net.Server;
    let unixListener: net.Server;
    let apiPort = 0;
    let listenerPort = 0;
    let gitServer: GitHttpServer;
    let registry: NpmRegistry;
    let harness: SandboxHostHarness;
    let host: SandboxHost;
    let gatewayUrl = '';
    const live = new Set<SandboxHandle>();
    const isolated = (): boolean => host.capabilities.isolated;
    const onHost = (prepared: string): string => harness.hostCopyOf?.(prepared) ?? prepared;

    const aSandbox = async (overrides: Partial<SandboxRequest> = {}): Promise<SandboxHandle> => {
      const handle = await host.create({ runId: 'contract', files: { 'agent.js': 'console.log("agent")' }, redactor, guard, ...overrides });
      live.add(handle);
      return handle;
    };
    const teardown = async (handle: SandboxHandle): Promise<void> => {
      await host.teardown(handle);
      live.delete(handle);
    };
    const readInside = async (sandbox: SandboxHandle, paths: string[]): Promise<Record<string, unknown>> => {
      const result = await host.exec(sandbox, { argv: [node, '-e', READ_PROBE, JSON.stringify(paths)], identity: 'agent' });
      expect(result.exitCode, result.stderr).toBe(0);
      return JSON.parse(result.stdout) as Record<string, unknown>;
    };
    /** Workspace files (relative paths) holding any form of `value`. */
    const filesHolding = async (sandbox: SandboxHandle, value: string): Promise<string[]> =>
      (await harness.workspaceFiles(sandbox))
        .filter((f) => formsOf(value).some((form) => f.content.includes(Buffer.from(form))))
        .map((f) => path.relative(sandbox.workspace, f.path));
    const waitInside = async (sandbox: SandboxHandle, file: string): Promise<string> => {
      const wait = `const fs=require('fs');const f=process.argv[1];const t=setInterval(()=>{try{const c=fs.readFileSync(f,'utf8');if(c){clearInterval(t);process.stdout.write(c,()=>process.exit(0))}}catch{}},20);setTimeout(()=>process.exit(3),20000)`;
      const result = await host.exec(sandbox, { argv: [node, '-e', wait, file], identity: 'agent', timeoutMs: 30_000 });
      expect(result.exitCode, `${file} never appeared`).toBe(0);
      return result.stdout;
    };

    beforeAll(async () => {
      // Stands for the Function App: the gateway route and, beside it, the rest of the API on the same port.
      api = http.createServer((req, res) => res.end(req.url === GATEWAY_PATH ? 'gateway-ok' : `api-${marker}`));
      // A probe connects and hangs up at once: a reset is expected, not an error of the test.
      const answer = (s: net.Socket): void => void s.on('error', () => undefined).end(marker);
      listener = net.createServer(answer);
      unixListener = net.createServer(answer);
      await Promise.all([
        new Promise<void>((r) => api.listen(0, '127.0.0.1', r)),
        new Promise<void>((r) => listener.listen(0, '127.0.0.1', r)),
        new Promise<void>((r) => unixListener.listen(unixPath, r)),
      ]);
      apiPort = (api.address() as net.AddressInfo).port;
      listenerPort = (listener.address() as net.AddressInfo).port;
      gatewayUrl = `http://127.0.0.1:${apiPort}${GATEWAY_PATH}`;
      [gitServer, registry] = await Promise.all([startGitHttpServer(secrets.GIT_TOKEN), startNpmRegistry(secrets.NPM_TOKEN)]);
      await gitServer.createRepo('project', { 'README.md': 'hello\n' });
      mkdirSync(path.dirname(planted.azuriteLike), { mode: 0o755 });
      for (const file of Object.values(planted)) {
        writeFileSync(file, marker);
        chmodSync(file, 0o644);
      }
      harness = await factory({ gatewayUrl, testServers: [new URL(gitServer.origin).host, new URL(registry.origin).host] });
      host = harness.host;
    });
    afterAll(async () => {
      for (const handle of live) await host.teardown(handle).catch(() => undefined);
      await harness?.close();
      await Promise.all([api, listener, unixListener].map((s) => new Promise((r) => (s ? s.close(r) : r(undefined)))));
      await Promise.all([gitServer?.close(), registry?.close()]);
      rmSync(unixPath, { force: true });
      rmSync(path.dirname(planted.azuriteLike), { recursive: true, force: true });
      rmSync(planted.hostTmp, { force: true });
      rmSync(planted.hostShm, { force: true });
    });

    describe('the launch guard, re-checked at launch', () => {
      it('refuses LD_PRELOAD, NODE_OPTIONS, PATH, GIT_* and a secret name in the standing env at create, naming the key', async () => {
        for (const key of ['LD_PRELOAD', 'NODE_OPTIONS', 'PATH', 'GIT_CONFIG_GLOBAL', 'npm_config_proxy']) {
          const refused = await rejection(aSandbox({ env: { LOG_LEVEL: 'debug', [key]: '/tmp/x' } }));
          expectLaunchRefused(refused, key);
          expect((refused as { reason: string }).reason).toBe('reserved-name');
        }
        expectLaunchRefused(await rejection(aSandbox({ env: { NPM_TOKEN: 'x' } })), 'NPM_TOKEN');
        expectLaunchRefused(await rejection(aSandbox({ env: { CFG: `token=${secrets.NPM_TOKEN}` } })), 'CFG', secrets.NPM_TOKEN);
      });

      it('refuses a managed value in a template file at create, naming the file', async () => {
        const refused = await rejection(aSandbox({ files: { 'agent.js': 'ok', 'config/app.json': JSON.stringify({ key: secrets.DEPLOY_KEY }) } }));
        expectLaunchRefused(refused, 'file config/app.json', secrets.DEPLOY_KEY);
        // Encoded, it is the same value.
        const encoded = await rejection(aSandbox({ files: { 'b64.txt': Buffer.from(secrets.DEPLOY_KEY).toString('base64') } }));
        expectLaunchRefused(encoded, 'file b64.txt', secrets.DEPLOY_KEY);
      });

      it("refuses a managed value in one command's env or argv, naming the key; nothing runs", async () => {
        const sandbox = await aSandbox();
        try {
          const before = harness.launches();
          const write = (file: string): string => `require("fs").writeFileSync(${JSON.stringify(file)},"ran")`;
          expectLaunchRefused(await rejection(host.exec(sandbox, { argv: [node, '-e', write('env.ran')], identity: 'agent', env: { CFG: `token=${secrets.NPM_TOKEN}` } })), 'CFG', secrets.NPM_TOKEN);
          expectLaunchRefused(await rejection(host.exec(sandbox, { argv: [node, '-e', write('argv.ran'), secrets.DEPLOY_KEY], identity: 'agent' })), 'argv[3]', secrets.DEPLOY_KEY);
          expectLaunchRefused(
            await rejection(host.exec(sandbox, { argv: [node, '-e', write('cred.ran'), `--token=${secrets.GIT_TOKEN}`], identity: 'credential' })),
            'argv[3]',
            secrets.GIT_TOKEN,
          );
          expect(harness.launches()).toBe(before);
          const seen = await readInside(sandbox, ['env.ran', 'argv.ran', 'cred.ran']);
          expect(Object.values(seen)).toEqual(['ENOENT', 'ENOENT', 'ENOENT']);
        } finally {
          await teardown(sandbox);
        }
      });
    });

    describe('each credential channel delivers to exactly one process', () => {
      /** Holds the delivery until `release` appears; meanwhile the agent and a sibling look for it. */
      const HOLD = `${HASH}const fs=require('fs');const from=process.argv[1];let v='';
if(from==='env')v=process.env.THE_KEY||'';if(from==='file')v=fs.readFileSync(process.env.THE_KEY_FILE,'utf8');if(from==='stdin')v=fs.readFileSync(0,'utf8');
fs.writeFileSync('held.tmp',JSON.stringify({hash:h(v),file:process.env.THE_KEY_FILE||null,pid:process.pid}));fs.renameSync('held.tmp','held.json');
const t=setInterval(()=>{if(fs.existsSync('release')){clearInterval(t);process.exit(0)}},20);`;
      const LOOK = `${HASH}const fs=require('fs');const file=process.argv[1];let read='no-file';if(file!=='null'){try{read=h(fs.readFileSync(file,'utf8'))}catch(e){read=e.code}}
let stdin='';try{stdin=fs.readFileSync(0,'utf8')}catch{};console.log(JSON.stringify({keys:Object.keys(process.env).filter(k=>k.startsWith('THE_KEY')),read,stdinHash:h(stdin)}))`;

      it.each([
        ['env', { use: 'env', as: 'THE_KEY' }],
        ['file', { use: 'file', as: 'THE_KEY_FILE' }],
        ['stdin', { use: 'stdin' }],
      ] as const)('%s: the receiving process has it; the agent and a sibling credential process do not; nothing remains after', async (from, use) => {
        const sandbox = await aSandbox();
        const request: CredentialRequest = { secretName: 'STDIN_KEY', value: secrets.STDIN_KEY, ...use };
        const delivered: CredentialDelivery[] = [];
        let heldOnHost: string[] = [];
        try {
          const holder = await host.start(sandbox, {
            argv: [node, '-e', HOLD, from],
            identity: 'credential',
            credentials: async (target: ProcessCredentialTarget) => {
              const delivery = await preparerFor(request)(request, target);
              delivered.push(delivery);
              return [delivery];
            },
          });
          const held = JSON.parse(await waitInside(sandbox, 'held.json')) as { hash: string; file: string | null };
          expect(held.hash).toBe(sha256(secrets.STDIN_KEY));
          if (from === 'file') {
            expect(held.file).not.toBeNull();
            heldOnHost = delivered.flatMap((d) => d.paths).map(onHost);
            for (const p of heldOnHost) expect(statSync(p).mode & 0o777).toBe(0o600);
            if (isolated()) for (const p of heldOnHost) expect(statSync(p).uid, p).not.toBe(0);
          }
          for (const identity of ['agent', 'credential'] as const) {
            const look = await host.exec(sandbox, { argv: [node, '-e', LOOK, String(held.file)], identity });
            const seen = JSON.parse(look.stdout) as { keys: string[]; read: string; stdinHash: string };
            expect(seen.keys, identity).toEqual([]);
            expect(seen.stdinHash).toBe(sha256(''));
            // The control where the host does not isolate: the file is the same uid's, and readable.
            if (from === 'file' && isolated()) expect(['EACCES', 'ENOENT', 'EPERM']).toContain(seen.read);
            if (from !== 'file') expect(seen.read).toBe('no-file');
          }
          await host.exec(sandbox, { argv: [node, '-e', 'require("fs").writeFileSync("release","go")'], identity: 'agent' });
          expect((await holder.exited).exitCode).toBe(0);
          for (const p of [...delivered.flatMap((d) => d.paths), ...heldOnHost]) expect(existsSync(p), p).toBe(false);
          if (held.file !== null) expect((await readInside(sandbox, [held.file]))[held.file]).toBe('ENOENT');
          expect(harness.credentialLeftovers(sandbox)).toEqual([]);
        } finally {
          await teardown(sandbox);
        }
      });

      describe('git credential helper and package-manager config, against real servers', () => {
        let sandbox: SandboxHandle;
        /** What each delivery looked like on disk when the host handed it to the launcher. */
        const seen: Array<{ credentialDir: string; paths: readonly string[]; uid: number; mode: number; targetUid?: number }> = [];
        const credentials = (request: CredentialRequest) => async (target: ProcessCredentialTarget): Promise<CredentialDelivery[]> => {
          const delivery = await preparerFor(request)(request, target);
          for (const p of delivery.paths) {
            const stat = statSync(p);
            seen.push({ credentialDir: target.credentialDir, paths: delivery.paths, uid: stat.uid, mode: stat.mode & 0o777, ...(target.uid !== undefined ? { targetUid: target.uid } : {}) });
          }
          return [delivery];
        };
        beforeAll(async () => {
          sandbox = await aSandbox({
            files: { 'package.json': JSON.stringify({ name: 'app', version: '1.0.0', private: true }) },
            env: { GIT_AUTHOR_NAME: 'Agent', GIT_AUTHOR_EMAIL: 'agent@example.invalid', GIT_COMMITTER_NAME: 'Agent', GIT_COMMITTER_EMAIL: 'agent@example.invalid' },
          });
        });
        afterAll(async () => {
          if (sandbox) await teardown(sandbox);
        });

        it('clone as a credential process, commit as the agent, push as another credential process', async () => {
          const clone = ['git', 'clone', '--quiet', `${gitServer.origin}/project.git`, 'project'];
          assertGitCommand('GIT_TOKEN', clone);
          const gitRequest: CredentialRequest = { secretName: 'GIT_TOKEN', value: secrets.GIT_TOKEN, use: 'git', host: gitServer.origin };
          const cloned = await host.exec(sandbox, { argv: clone, identity: 'credential', credentials: credentials(gitRequest) });
          expect(cloned.stderr).toBe('');
          expect(cloned.exitCode).toBe(0);

          const commit = await host.exec(sandbox, {
            argv: ['sh', '-c', 'echo change > CHANGE.md && git -c safe.directory="*" add CHANGE.md && git -c safe.directory="*" commit --quiet -m Change && git -c safe.directory="*" rev-parse HEAD'],
            identity: 'agent',
            cwd: 'project',
          });
          expect(commit.exitCode).toBe(0);

          const push = ['git', 'push', '--quiet', 'origin', 'main'];
          assertGitCommand('GIT_TOKEN', push);
          const pushed = await host.exec(sandbox, { argv: push, identity: 'credential', cwd: 'project', credentials: credentials(gitRequest) });
          expect(pushed.stderr).toBe('');
          expect(pushed.exitCode).toBe(0);
          expect(await gitServer.revParse('project', 'main')).toBe(commit.stdout.trim());

          expect(await filesHolding(sandbox, secrets.GIT_TOKEN)).toEqual([]);
          expect(gitServer.leaks).toEqual([]);
          expect(gitServer.tokenSeenInUrl).toBe(false);
        });

        it('npm install as a credential process, then its scripts as the agent without the credential', async () => {
          const npmRequest: CredentialRequest = { secretName: 'NPM_TOKEN', value: secrets.NPM_TOKEN, use: 'npm', host: registry.origin };
          const [install, ...scripts] = planPackageInstall(['npm', 'install', registry.packageName, '--no-audit', '--no-fund'], npmRequest);
          const installed = await host.exec(sandbox, { argv: install?.command ?? [], identity: 'credential', credentials: credentials(npmRequest) });
          expect(installed.exitCode, installed.stderr).toBe(0);
          expect((await readInside(sandbox, ['install-marker.json']))['install-marker.json']).toBe('ENOENT');
          for (const step of scripts) expect((await host.exec(sandbox, { argv: step.command, identity: 'agent' })).exitCode).toBe(0);
          const marker = JSON.parse(String((await readInside(sandbox, ['install-marker.json']))['install-marker.json'])) as { userconfigHasAuthToken: boolean };
          expect(marker.userconfigHasAuthToken).toBe(false);
          expect(registry.leaks).toEqual([]);
          expect(registry.requests.every((r) => r.authorized)).toBe(true);
        });

        it("isolated, npm with its credential flags still goes by the platform's egress proxy (HTTPS_PROXY), never around it", async () => {
          host.drainEgress(sandbox);
          const view = ['npm', 'view', 'left-pad', '--registry=https://registry.dp-test.invalid/', '--fetch-retries=0', ...NPM_CREDENTIAL_FLAGS];
          const viewed = await host.exec(sandbox, { argv: view, identity: 'credential' });
          expect(viewed.exitCode).not.toBe(0);
          // `--no-https-proxy` outranks a planted .npmrc proxy and falls back to the env's HTTPS_PROXY: the proxy
          // resolved the name itself (and found nothing), so npm did not go around it.
          if (sandbox.isolated) expect(host.drainEgress(sandbox)?.refusals).toContainEqual({ host: 'registry.dp-test.invalid', port: 443, reason: 'does not resolve' });
        });

        it('every delivery was owned by its process uid (not the agent, not root when isolated), 0600/0700, and is gone', async () => {
          expect(sandbox.isolated).toBe(host.capabilities.isolated);
          const agentUid = Number((await host.exec(sandbox, { argv: [node, '-e', 'process.stdout.write(String(process.getuid()))'], identity: 'agent' })).stdout);
          expect(seen.length).toBe(5); // two git deliveries of two files each (token, helper), one npm config
          for (const d of seen) {
            expect([0o600, 0o700]).toContain(d.mode);
            // A shipped delivery's prepared copy is the platform's staging file: its owner on the host is the agent's
            // to give (the file and hostile cases check the host's copy).
            if (sandbox.isolated && !harness.hostCopyOf) {
              expect(d.uid).toBe(d.targetUid);
              expect(d.uid).not.toBe(agentUid);
              expect(d.uid).not.toBe(0);
            }
            for (const p of [...d.paths, d.credentialDir]) expect(existsSync(p), p).toBe(false);
          }
          expect(new Set(seen.map((d) => d.credentialDir)).size).toBe(3);
          expect(harness.credentialLeftovers(sandbox)).toEqual([]);
          for (const token of [secrets.GIT_TOKEN, secrets.NPM_TOKEN]) expect(await filesHolding(sandbox, token)).toEqual([]);
        });
      });
    });

    describe('a hostile agent', () => {
      const files = { 'hunt.js': fixture('hunt.js'), 'holder.js': fixture('holder.js') };
      const holderArgs = (config: object): string[] => [node, 'holder.js', JSON.stringify(config)];
      /** Tries to ptrace-attach to each pid; attaching to a child of its own first shows the probe can attach. */
      const PTRACE = String.raw`my $child = fork(); if ($child == 0) { sleep 30; exit 0 }
select(undef, undef, undef, 0.2); my %r; $r{own} = syscall(101, 16, $child, 0, 0) == -1 ? "refused:" . ($!+0) : "attached"; kill 9, $child;
for my $p (@ARGV) { $r{$p} = syscall(101, 16, $p + 0, 0, 0) == -1 ? "refused:" . ($!+0) : "attached" }
print join(",", map { "$_=$r{$_}" } sort keys %r), "\n";`;

      it('gets no managed value but its own model key, while an MCP server and an operation hold theirs', async () => {
        const sandbox = await aSandbox({ files, env: { LOG_LEVEL: 'debug' } });
        const neighbour = await aSandbox({ files });
        try {
          // Another sandbox on the same host, with a server holding its own key.
          const other = await host.start(neighbour, {
            argv: holderArgs({ envName: 'OTHER_KEY', readyFile: 'other.ready' }),
            identity: 'credential',
            credentials: async () => [envDelivery('OTHER_KEY', secrets.OTHER_SANDBOX_KEY)],
          });
          expect(await waitInside(neighbour, 'other.ready')).toBe('has-credential');

          // An MCP server with a process-env credential, for its lifetime; it tells where it lives.
          const mcp = await host.start(sandbox, {
            argv: [node, '-e', `require('fs').writeFileSync('mcp.pid',String(process.pid));process.argv.splice(1,0,'holder.js');require('./holder.js')`, JSON.stringify({ envName: 'TRACKER_KEY', readyFile: 'mcp.ready' })],
            identity: 'credential',
            credentials: async () => [envDelivery('TRACKER_KEY', secrets.TRACKER_KEY)],
          });
          expect(await waitInside(sandbox, 'mcp.ready')).toBe('has-credential');

          // An operation with a 0600 temp-file credential and an npm config file, held until released.
          let opFiles: string[] = [];
          let opDir = '';
          const op = await host.start(sandbox, {
            argv: holderArgs({ fileEnv: 'DEPLOY_KEY_FILE', readyFile: 'op.ready', untilFile: 'release' }),
            identity: 'credential',
            credentials: async (target) => {
              opDir = target.credentialDir;
              const deliveries = [await tempFileDelivery(target, 'DEPLOY_KEY_FILE', secrets.DEPLOY_KEY), await npmConfigDelivery(target, secrets.NPM_TOKEN)];
              opFiles = deliveries.flatMap((d) => [...d.paths]);
              return deliveries;
            },
          });
          expect(await waitInside(sandbox, 'op.ready')).toBe('has-credential');
          const opOnHost = opFiles.map(onHost);
          const opDirOnHost = opOnHost[0] === undefined ? opDir : path.dirname(opOnHost[0]);

          const hunt = await host.exec(sandbox, {
            argv: [
              node,
              'hunt.js',
              JSON.stringify({
                files: [...opOnHost, path.join(opDirOnHost, '.npmrc'), path.join(opDirOnHost, '.gitconfig')],
                dirs: [...harness.huntDirs(sandbox), opDirOnHost, ...harness.huntDirs(neighbour), neighbour.workspace],
                lootFile: 'loot.txt',
                raceAttempts: 300,
                // Without isolation the hunt would read every process's pipes on the machine (the test runner's too).
                fds: isolated(),
              }),
            ],
            identity: 'agent',
            credentials: async () => [envDelivery('OPENAI_API_KEY', secrets.MODEL_KEY)],
            timeoutMs: 120_000,
          });
          expect(hunt.exitCode, hunt.stderr).toBe(0);
          const stats = JSON.parse(hunt.stdout) as { reads: number; raceAttempts: number; raceOpened: number; pidsSeen: number[] };
          // The credential files existed for the whole hunt: the race really raced.
          expect(opFiles.length).toBe(2);
          for (const file of opOnHost) expect(existsSync(file), file).toBe(true);

          // The loot is read on the host side of the port: through `exec` it would pass the redactor.
          const mcpPid = (await readInside(sandbox, ['mcp.pid']))['mcp.pid'];
          const ptrace = await host.exec(sandbox, { argv: ['perl', '-e', PTRACE, String(mcpPid)], identity: 'agent' });
          // Positive control: the probe can attach (to a child of its own); without isolation, to the server too.
          expect(ptrace.stdout).toMatch(/(^|,)own=attached(,|\n)/);
          expect(ptrace.stdout).toMatch(new RegExp(`(^|,)${String(mcpPid)}=${isolated() ? 'refused' : 'attached'}`));

          const lootFile = (await harness.workspaceFiles(sandbox)).find((f) => path.relative(sandbox.workspace, f.path) === 'loot.txt');
          const loot = lootFile?.content.toString('latin1') ?? '';
          const lootOf = async (name: keyof typeof secrets): Promise<boolean> => formsOf(secrets[name]).some((form) => loot.includes(form));
          // Positive control: the hunt reads what it may read, including its own environ with its own lease.
          expect(await lootOf('MODEL_KEY')).toBe(true);
          expect(stats.reads).toBeGreaterThan(500);
          expect(stats.raceAttempts).toBe(300);
          // The attack: nothing of anyone else's, in any encoding the redactor knows.
          if (isolated()) {
            expect(stats.raceOpened).toBe(0);
            for (const n of ['TRACKER_KEY', 'DEPLOY_KEY', 'NPM_TOKEN', 'OTHER_SANDBOX_KEY'] as const) expect(await lootOf(n), n).toBe(false);
            expect(createRedactor(managed.filter((m) => m.name !== 'MODEL_KEY')).matches(loot)).toBe(false);
          }
          // The control: without isolation the MCP server's environ is there to read.
          if (!isolated()) expect(await lootOf('TRACKER_KEY')).toBe(true);
          // hidepid: the agent sees only its own processes, none of the credential holders.
          if (isolated() && capabilities.ownProcessesOnly) expect(stats.pidsSeen.length).toBeLessThanOrEqual(2);
          // Without it (a container's /proc) the holder is listed, and the checks above show it was not read.
          if (isolated() && !capabilities.ownProcessesOnly) expect(stats.pidsSeen).toContain(Number(mcpPid));
          // Output still passes the redactor: no key reaches the result, whatever the hunt found.
          expect(redactor.matches(hunt.stdout + hunt.stderr)).toBe(false);

          await host.exec(sandbox, { argv: [node, '-e', 'require("fs").writeFileSync("release","go")'], identity: 'agent' });
          expect((await op.exited).exitCode).toBe(0);
          for (const file of [...opFiles, ...opOnHost]) expect(existsSync(file)).toBe(false);
          await mcp.stop();
          await other.stop();
        } finally {
          await teardown(sandbox);
          await teardown(neighbour);
        }
      });
    });

    describe("a sandbox's network", () => {
      it('reaches the gateway and nothing else of the host: not Azurite, the API, a loopback listener, a unix socket, IPv6 loopback or the metadata service', async () => {
        const sandbox = await aSandbox({ files: {} });
        try {
          expect(azuritePorts().length).toBeGreaterThanOrEqual(3); // blob, queue, table: the probe is not vacuous
          const loopbackTargets: Array<[string, number]> = [
            ...azuritePorts().map((p): [string, number] => ['127.0.0.1', p]),
            ['127.0.0.1', listenerPort],
            ['::1', listenerPort],
            ['::1', apiPort],
          ];
          const plan = {
            tcp: [...loopbackTargets, ['169.254.169.254', 80], ['168.63.129.16', 80]],
            unix: [unixPath, ...hostUnixSockets()],
            viaProxy: [
              ...loopbackTargets.map(([h, p]) => (h.includes(':') ? `[${h}]:${p}` : `${h}:${p}`)),
              '169.254.169.254:80', '168.63.129.16:443', `[::ffff:127.0.0.1]:${listenerPort}`, `2130706433:${listenerPort}`, `localhost:${apiPort}`,
            ],
            api: `http://127.0.0.1:${apiPort}/api/workspaces`,
          };
          const result = await host.exec(sandbox, { argv: [node, '-e', NETWORK_PROBE, JSON.stringify(plan)], identity: 'agent', timeoutMs: 60_000, env: { GATEWAY_URL: gatewayUrl } });
          expect(result.exitCode, result.stderr).toBe(0);
          const seen = JSON.parse(result.stdout) as Record<string, string>;
          expect(seen.gateway).toBe('200 gateway-ok');
          if (!isolated()) {
            // The control, and why a host without isolation records IsolationDegraded: the host's loopback is open.
            expect(seen[`tcp 127.0.0.1:${listenerPort}`]).toBe('connected');
            return;
          }
          expect(seen.proxyEnv).toBe('http://127.0.0.1:3128');
          expect(seen.apiBesideGateway).toBe('404 not the gateway');
          for (const [h, p] of plan.tcp) expect(seen[`tcp ${h}:${p}`], `${h}:${p}`).not.toBe('connected');
          for (const p of plan.unix) expect(seen[`unix ${p}`], p).not.toBe('connected');
          for (const t of plan.viaProxy) expect(seen[`proxy ${t}`], t).toBe('403');
          const counts = host.drainEgress(sandbox);
          expect(counts?.allowed).toBe(0);
          expect(counts?.refused).toBe(plan.viaProxy.length);
          expect(JSON.stringify(Object.values(seen))).not.toContain(marker);
        } finally {
          await teardown(sandbox);
        }
      });
    });

    describe("a sandbox's own root", () => {
      const projectRoot = findProjectRoot(__dirname);

      it('holds no project checkout, no dev storage and nothing of the host /tmp or /dev/shm, yet its workspace works', async () => {
        const a = await aSandbox({ files: { 'hello.txt': 'hello' } });
        try {
          const hidden = [projectRoot, path.join(projectRoot, 'package.json'), path.join(projectRoot, '.azurite'), ...Object.values(planted)];
          const seen = await readInside(a, [...hidden, path.join(a.workspace, 'hello.txt')]);
          expect(seen[path.join(a.workspace, 'hello.txt')]).toBe('hello');
          if (!isolated()) {
            // The control, and why a host without isolation records IsolationDegraded: everything is in reach.
            expect(seen[planted.hostTmp]).toBe(marker);
            return;
          }
          for (const p of hidden) expect(seen[p], p).toBe('ENOENT');
          expect(JSON.stringify(Object.values(seen))).not.toContain(marker);
        } finally {
          await teardown(a);
        }
      });

      it('gives every sandbox its own /tmp and /dev/shm, and a root nobody inside can write', async () => {
        const a = await aSandbox({ files: { 'hello.txt': 'hello' } });
        const b = await aSandbox({ files: {} });
        try {
          const write = `const fs=require('fs');const r={};for(const p of ['/tmp/mine','/dev/shm/mine','/planted','/usr/planted','/etc/planted']){try{fs.writeFileSync(p,process.argv[1]);r[p]='written'}catch(e){r[p]=e.code}}console.log(JSON.stringify(r))`;
          const wrote = await host.exec(a, { argv: [node, '-e', write, marker], identity: 'agent' });
          const written = JSON.parse(wrote.stdout) as Record<string, string>;
          expect(written['/tmp/mine']).toBe('written');
          expect(written['/dev/shm/mine']).toBe('written');
          const aFile = path.join(a.workspace, 'hello.txt');
          const fromB = await readInside(b, ['/tmp/mine', '/dev/shm/mine', aFile, ...(a.workspace === b.workspace ? [] : [a.workspace])]);
          if (!isolated()) return;
          for (const p of ['/planted', '/usr/planted', '/etc/planted']) expect(['EROFS', 'EACCES']).toContain(written[p]);
          expect(fromB['/tmp/mine']).toBe('ENOENT');
          expect(fromB['/dev/shm/mine']).toBe('ENOENT');
          expect(['ENOENT', 'EACCES']).toContain(fromB[aFile]);
          if (a.workspace !== b.workspace) expect(['ENOENT', 'EACCES']).toContain(fromB[a.workspace]);
          expect((await readInside(a, ['/tmp/mine']))['/tmp/mine']).toBe(marker);
        } finally {
          await teardown(a);
          await teardown(b);
        }
      });
    });

    describe('teardown', () => {
      it('leaves no process of the sandbox alive, not even a setsid daemon, and none of its files; it is idempotent', async () => {
        const sandbox = await aSandbox();
        const traces = harness.traces(sandbox);
        const server = await host.start(sandbox, {
          argv: [node, '-e', 'require("fs").writeFileSync("server.ready","1");setInterval(()=>{},1000)'],
          identity: 'credential',
          credentials: async () => [envDelivery('TRACKER', 'tracker-credential-value')],
        });
        await waitInside(sandbox, 'server.ready');
        // The agent plants a daemon that leaves the process group and the session.
        await host.exec(sandbox, {
          argv: ['/bin/sh', '-c', 'setsid sh -c "echo \\$\\$ > daemon.tmp && mv daemon.tmp daemon.pid; exec sleep 600" > /dev/null 2>&1 & while [ ! -s daemon.pid ]; do sleep 0.05; done'],
          identity: 'agent',
        });
        // It outlived its command (a launcher reaps only the command's process group).
        const daemonPid = Number(await waitInside(sandbox, 'daemon.pid'));
        expect(daemonPid).toBeGreaterThan(1);
        const pids = traces.processes();
        if (isolated()) expect(pids.length).toBeGreaterThanOrEqual(3);

        await host.teardown(sandbox);
        for (const pid of [...pids, server.pid]) expect(isAlive(pid), `pid ${pid}`).toBe(false);
        expect(traces.processes()).toEqual([]);
        for (const p of traces.paths) expect(existsSync(p), p).toBe(false);
        expect((await server.exited).exitCode).not.toBe(0);
        const gone = await rejection(host.exec(sandbox, { argv: [node, '-e', '1'], identity: 'agent' }));
        expect((gone as { code?: string }).code).toBe('SANDBOX.GONE');
        await host.teardown(sandbox);
        live.delete(sandbox);
      });

      if (capabilities.keptVolumes) {
        it('keeps an opt-in volume across teardown, and never writes a credential into it', async () => {
          const volume = `vol-${randomBytes(4).toString('hex')}`;
          const first = await aSandbox({ keptVolume: volume });
          await host.exec(first, {
            argv: [node, '-e', 'require("fs").writeFileSync("kept.txt", require("fs").readFileSync(process.env.KEY_FILE).length + " bytes seen")'],
            identity: 'credential',
            credentials: async (target) => [await tempFileDelivery(target, 'KEY_FILE', secrets.DEPLOY_KEY), await npmConfigDelivery(target, secrets.NPM_TOKEN)],
          });
          await host.exec(first, { argv: [node, 'agent.js'], identity: 'agent', credentials: async () => [envDelivery('OPENAI_API_KEY', secrets.MODEL_KEY)] });
          await teardown(first);

          // The next sandbox on the same volume sees the kept file, under its own identities, and no credential.
          const second = await aSandbox({ keptVolume: volume });
          try {
            const read = await host.exec(second, { argv: [node, '-e', 'const fs=require("fs");process.stdout.write(JSON.stringify({text:fs.readFileSync("kept.txt","utf8"),mine:fs.statSync("kept.txt").uid===process.getuid()}))'], identity: 'agent' });
            const kept = JSON.parse(read.stdout) as { text: string; mine: boolean };
            expect(kept.text).toBe(`${secrets.DEPLOY_KEY.length} bytes seen`);
            if (isolated()) expect(kept.mine).toBe(true);
            const everything = (await harness.workspaceFiles(second)).map((f) => f.content.toString('latin1')).join('\n');
            expect(everything).toContain('bytes seen');
            expect(redactor.matches(everything)).toBe(false);
          } finally {
            await teardown(second);
            await harness.removeVolume?.(volume);
          }
        });
      } else {
        it('refuses a kept volume at create', async () => {
          const refused = await rejection(aSandbox({ keptVolume: 'vol-refused' }));
          expect(isDomainError(refused)).toBe(true);
          expect((refused as { kind?: string }).kind).toBe('invalid');
        });
      }
    });

    describe('stdin', () => {
      const COUNT_STDIN = `const c=[];process.stdin.on('data',(d)=>c.push(d)).on('end',()=>{const b=Buffer.concat(c);console.log(b.length+' '+require('crypto').createHash('sha256').update(b).digest('hex'))})`;
      it("streams the caller's input into the process in order to its end, stops pulling when it exits, and never beside a stdin lease", async () => {
        const sandbox = await aSandbox({ files: {} });
        try {
          // Larger than one frame of a remote host, in uneven pieces, text and bytes.
          const bytes = randomBytes(100 * 1024);
          const whole = Buffer.concat([Buffer.from('hello '), bytes]);
          async function* pieces(): AsyncGenerator<Uint8Array | string> {
            yield 'hello ';
            yield bytes.subarray(0, 40_000);
            yield bytes.subarray(40_000);
          }
          const read = await host.exec(sandbox, { argv: [node, '-e', COUNT_STDIN], identity: 'agent', stdin: pieces() });
          expect(read.exitCode, read.stderr).toBe(0);
          expect(read.stdout.trim()).toBe(`${whole.length} ${createHash('sha256').update(whole).digest('hex')}`);

          // Input that never ends: the process's exit ends it, and the input is told (its generator's finally runs).
          let released = false;
          async function* endless(): AsyncGenerator<string> {
            try {
              for (;;) {
                yield 'y\n';
                await new Promise((resolve) => setTimeout(resolve, 5));
              }
            } finally {
              released = true;
            }
          }
          const head = await host.exec(sandbox, { argv: ['sh', '-c', 'head -n 2'], identity: 'agent', stdin: endless(), timeoutMs: 60_000 });
          expect(head.exitCode, head.stderr).toBe(0);
          expect(head.stdout).toBe('y\ny\n');
          for (let i = 0; !released && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 50));
          expect(released).toBe(true);

          // A lease's stdin is its process's alone: input beside it is refused, and nothing of the lease is left.
          const request: CredentialRequest = { secretName: 'STDIN_KEY', value: secrets.STDIN_KEY, use: 'stdin' };
          const refused = await rejection(host.exec(sandbox, {
            argv: [node, '-e', COUNT_STDIN], identity: 'credential', stdin: pieces(),
            credentials: async (target: ProcessCredentialTarget) => [await preparerFor(request)(request, target)],
          }));
          expect(refused).toMatchObject({ code: 'SANDBOX.INPUT_CONFLICT' });
          expect(harness.credentialLeftovers(sandbox)).toEqual([]);
        } finally {
          await teardown(sandbox);
        }
      });
    });

    describe('output', () => {
      it('is redacted as it streams: raw, split across writes, and encoded forms never reach the result', async () => {
        const sandbox = await aSandbox({ files: {} });
        try {
          const v = secrets.TRACKER_KEY;
          const half = Math.floor(v.length / 2);
          // The process gets the value by lease and prints it every way a careless tool might.
          const script = `const v=process.env.TRACKER_KEY;const pct=[...Buffer.from(v)].map(b=>'%'+b.toString(16).padStart(2,'0')).join('');
process.stdout.write('before '+v.slice(0,${half}));setTimeout(()=>{process.stdout.write(v.slice(${half})+' after\\n');
console.log('b64 '+Buffer.from(v).toString('base64'));console.log('pct '+pct+' PCT '+pct.toUpperCase());console.log('b64b64 '+Buffer.from(Buffer.from(v).toString('base64')).toString('base64'));
console.error('err '+v);},150)`;
          const result = await host.exec(sandbox, { argv: [node, '-e', script], identity: 'credential', credentials: async () => [envDelivery('TRACKER_KEY', v)] });
          expect(result.exitCode, result.stderr).toBe(0);
          const both = result.stdout + result.stderr;
          expect(result.stdout).toMatch(/^before /);
          expect(result.stdout).toContain(' after\n');
          expect(result.stderr).toMatch(/^err /);
          const pct = [...Buffer.from(v)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
          for (const form of [v, v.slice(0, half), Buffer.from(v).toString('base64'), pct, pct.toUpperCase(), Buffer.from(Buffer.from(v).toString('base64')).toString('base64')])
            expect(both.includes(form), form).toBe(false);
          expect(redactor.matches(both)).toBe(false);
        } finally {
          await teardown(sandbox);
        }
      });
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}
