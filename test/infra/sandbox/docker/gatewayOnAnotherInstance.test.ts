import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunEvent } from '../../../../domain/run';
import type { Gateway } from '../../../../domain/services/gateway';
import type { RunRuntime } from '../../../../domain/services/runContext';
import type { RunStores } from '../../../../domain/services/runPorts';
import { requestRun } from '../../../../domain/services/runs';
import { install, mcp, seed, turn } from '../../../../domain/services/runSteps';
import { finish, teardown } from '../../../../domain/services/runTeardown';
import { runStreamId } from '../../../../domain/streams';
import { sandboxGateway } from '../../../../functions/gateway.wiring';
import type { TableGatewayBearers } from '../../../../infra/gateway/tableGatewayBearers';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { createApiHarness, type ApiHarness } from '../../../support/apiHarness';
import { containersOfScope, describeWithDocker, dockerForTests, removeScope, sandboxImageForTests, testScope } from '../../../support/dockerEngine';
import { callGateway, serveGateway } from '../../../support/gatewayOverHttp';
import { startGitHttpServer, type GitHttpServer } from '../../../support/gitHttpServer';
import { aRunRuntime, runStoresOnAzurite } from '../../../support/runRuntime';
import { aSecretValue } from '../sandboxTestKit';

/**
 * The gateway on an instance that does not hold the run's sandbox (several instances behind one route): instance A
 * seeds the run and runs its steps; the agent's gateway call reaches instance B, which shares the container from
 * the Docker host, found by the run id and checked against the run's events. A keeps its MCP server and its leases;
 * B's bearer checks are as strict as A's.
 */
const engine = dockerForTests();
const scope = testScope(__filename);
const VALUES = { TRACKER_KEY: aSecretValue('trk'), GIT_TOKEN: aSecretValue('ghp') };
const caller = { actor: 'alice', correlationId: 'gateway-another-instance' };

/** An MCP server answering on a unix socket in the workspace with its pid; and the agent's way to ask it. */
const MCP_SERVER = `const fs=require('fs'),net=require('net');try{fs.unlinkSync('mcp.sock')}catch{}net.createServer((c)=>c.end('up pid='+process.pid+'\\n')).listen('mcp.sock');`;
const ASK_MCP = `const net=require('net');let n=0;const go=()=>net.connect('mcp.sock').on('data',(d)=>process.stdout.write(d)).on('error',()=>{if(++n>300)process.exit(3);setTimeout(go,100)});go();`;
/** The agent: asks the gateway (GATEWAY_URL, its bearer) to clone the remote, then reads what landed. */
const AGENT = `const http=require('http'),fs=require('fs');const u=new URL(process.env.GATEWAY_URL);
const body=JSON.stringify({kind:'git',action:'clone',remote:process.argv[2],secret:'GIT_TOKEN'});
http.request({host:u.hostname,port:u.port,path:u.pathname,method:'POST',headers:{'content-type':'application/json',authorization:'Bearer '+process.env.GATEWAY_TOKEN}},(res)=>{
let t='';res.on('data',(d)=>t+=d);res.on('end',()=>{console.log('gateway '+res.statusCode+' '+t);
try{console.log('readme: '+fs.readFileSync('project/README.md','utf8'))}catch{console.log('no clone');process.exit(2)}})}).on('error',(e)=>{console.log('no gateway '+e.code);process.exit(3)}).end(body);`;

describeWithDocker('the gateway on another instance than the one holding the sandbox', engine, ({ docker, socketPath }) => {
  let h: ApiHarness;
  let stores: RunStores;
  let bearers: TableGatewayBearers;
  let ws: string;
  let git: GitHttpServer;
  let image = '';
  let a: RunRuntime & { host: DockerSandboxHost };
  let b: RunRuntime & { host: DockerSandboxHost };
  let gatewayB: Gateway;
  let servedB: Awaited<ReturnType<typeof serveGateway>>;

  const eventsOf = async (runId: string): Promise<readonly RunEvent[]> => (await h.store.readStream<RunEvent>(ws, runStreamId(runId))).events;
  const remote = (): string => `${git.origin}/project.git`;

  async function anInstance(gatewayUrl: string): Promise<RunRuntime & { host: DockerSandboxHost }> {
    const testServers = [new URL(git.origin).host];
    const host = await DockerSandboxHost.open({ docker, socketPath, image, scope, gatewayUrl, egress: { testServers: () => testServers } });
    return { ...aRunRuntime({ deps: h.deps, stores, host, bearers, removeLeftovers: (id) => host.removeLeftover(id) }), gatewayUrl };
  }

  async function aRun(spec: Record<string, unknown> = {}): Promise<string> {
    const { runId } = await requestRun(h.deps, stores, { start: async () => undefined, raiseCancel: async () => undefined }, caller, {
      workspaceId: ws,
      spec: { template: { files: { 'agent.js': AGENT } }, turns: [{ command: ['node', 'agent.js', remote()] }], deadlineSeconds: 300, ...spec },
    });
    return runId;
  }

  beforeAll(async () => {
    image = await sandboxImageForTests(docker);
    h = await createApiHarness();
    ({ stores, bearers } = await runStoresOnAzurite());
    git = await startGitHttpServer(VALUES.GIT_TOKEN);
    await git.createRepo('project', { 'README.md': 'hello from the remote\n' });
    const token = await h.issuer.token('alice');
    ws = ((await h.call('POST', '/api/workspaces', { token, body: { name: 'Gateway on B' } })).json as { id: string }).id;
    await h.call('PUT', `/api/workspaces/${ws}/secrets/TRACKER_KEY`, { token, body: { value: VALUES.TRACKER_KEY, uses: { mcp: 'members' } } });
    await h.call('PUT', `/api/workspaces/${ws}/secrets/GIT_TOKEN`, { token, body: { value: VALUES.GIT_TOKEN, allowedHosts: [new URL(git.origin).host] } });

    // B's route on a port of its own; A's agents are told it is the gateway (the load balancer sent them there).
    b = await anInstance('http://127.0.0.1:9/api/gateway/operations');
    gatewayB = sandboxGateway({ deps: h.deps, bearers, sandboxes: b.sandboxes, host: b.host, specs: stores.specs, leases: b.leases, limits: { operationTimeoutMs: 120_000 } });
    servedB = await serveGateway(gatewayB);
    a = await anInstance(servedB.url);
  }, 180_000);

  afterAll(async () => {
    await servedB?.close();
    await git?.close();
    await removeScope(docker, scope);
  });

  it("an agent's clone served by B lands in the sandbox A holds; A's MCP server and leases are untouched, and every lease ends once", async () => {
    const runId = await aRun({
      template: { files: { 'agent.js': AGENT, 'mcp.js': MCP_SERVER, 'ask.js': ASK_MCP } },
      mcp: [{ name: 'issues', command: ['node', 'mcp.js'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'TRACKER_KEY' }] }],
    });
    expect(await seed(a, ws, runId)).toMatchObject({ ok: true });
    expect(await install(a, ws, runId)).toEqual({ ok: true });
    expect(await mcp(a, ws, runId)).toEqual({ ok: true });
    const handle = a.sandboxes.get(runId)?.handle;
    if (!handle) throw new Error('A holds no sandbox');
    const pidOfMcp = async (): Promise<string | undefined> => /up pid=(\d+)/.exec((await a.host.exec(handle, { argv: ['node', 'ask.js'], identity: 'agent' })).stdout)?.[1];
    const mcpPid = await pidOfMcp();
    expect(mcpPid).toBeDefined();

    const servedBefore = servedB.served.length;
    expect(await turn(a, ws, runId, 1)).toEqual({ ok: true });
    expect(servedB.served.slice(servedBefore)).toEqual([200]);
    const transcript = await stores.transcripts.read(ws, runId);
    expect(transcript).toContain('readme: hello from the remote');
    expect(transcript).toMatch(/gateway 200 \{"ok":true/);
    expect(readFileSync(path.join(handle.workspace, 'project', 'README.md'), 'utf8')).toBe('hello from the remote\n');
    expect(git.requests.some((r) => r.user !== undefined)).toBe(true);

    // B served the operation without taking the run over: A still holds it, with the same MCP server.
    expect(b.sandboxes.get(runId)).toBeUndefined();
    expect(b.live.get(runId)).toBeUndefined();
    expect(await pidOfMcp()).toBe(mcpPid);
    // The MCP server's uid and the gateway's credential process's uid, each claimed once, never shared.
    const claims = readdirSync(path.join(a.host.inspect(handle).hostDir, 'uids'));
    expect(claims).toHaveLength(2);
    expect(new Set(claims).size).toBe(2);

    let events = await eventsOf(runId);
    const grants = events.flatMap((e) => (e.type === 'LeaseGranted' ? [e.data] : []));
    expect(grants.map((g) => g.operation).sort()).toEqual(['gateway:git:clone', 'mcp:issues']);
    expect(events.filter((e) => e.type === 'LeaseExpired')).toEqual([]);
    expect(events.filter((e) => e.type === 'OperationCompleted').map((e) => e.data)).toEqual([expect.objectContaining({ exitCode: 0 })]);
    const endsOf = (leaseId: string) => events.filter((e) => e.type !== 'LeaseGranted' && 'leaseId' in e.data && e.data.leaseId === leaseId).map((e) => e.type);
    const gatewayLease = grants.find((g) => g.operation === 'gateway:git:clone')!.leaseId;
    const mcpLease = grants.find((g) => g.operation === 'mcp:issues')!.leaseId;
    expect(endsOf(gatewayLease)).toEqual(['LeaseReleased']);
    expect(endsOf(mcpLease)).toEqual([]); // A's server holds it through the turn

    expect(await teardown(a, ws, runId)).toEqual({ ok: true });
    expect(await finish(a, ws, runId)).toEqual({ status: 'Completed' });
    events = await eventsOf(runId);
    for (const grant of events.flatMap((e) => (e.type === 'LeaseGranted' ? [e.data.leaseId] : []))) expect(endsOf(grant)).toEqual(['LeaseReleased']);
    expect(events.filter((e) => e.type === 'SandboxLaunched')).toHaveLength(1);
    expect((await containersOfScope(docker, scope)).filter((c) => c.Labels['disco-parrot.run'] === runId)).toEqual([]);
  }, 240_000);

  it("B refuses a bearer of another container of the run, or naming another run's live container; a torn-down run is 410, then 401", async () => {
    const runId = await aRun();
    const otherRunId = await aRun();
    expect(await seed(a, ws, runId)).toMatchObject({ ok: true });
    expect(await seed(a, ws, otherRunId)).toMatchObject({ ok: true });
    const handle = a.sandboxes.get(runId)!.handle;
    const deadline = a.sandboxes.get(runId)!.deadline;
    const clone = { kind: 'git', action: 'clone', remote: remote(), secret: 'GIT_TOKEN', dir: 'again' };
    const mint = (containerId: string) => bearers.mint({ workspaceId: ws, runId, containerId, expiresAt: deadline });

    const earlier = await callGateway(gatewayB, await mint('an-earlier-sandbox-of-the-run'), clone);
    expect(earlier.status).toBe(410);
    expect(earlier.json.code).toBe('GATEWAY.SANDBOX_GONE');
    expect(String(earlier.json.detail)).toContain('another container of the run');
    const foreign = await callGateway(gatewayB, await mint(a.sandboxes.get(otherRunId)!.handle.sandboxId), clone);
    expect(foreign.status).toBe(410);
    expect(existsSync(path.join(handle.workspace, 'again'))).toBe(false);
    const refusals = (await eventsOf(runId)).flatMap((e) => (e.type === 'OperationRefused' ? [e.data.reason] : []));
    expect(refusals).toEqual([expect.stringContaining('another container of the run'), expect.stringContaining('another container of the run')]);
    expect((await eventsOf(otherRunId)).some((e) => e.type === 'OperationRefused' || e.type === 'LeaseGranted')).toBe(false);

    const current = await mint(handle.sandboxId);
    const served = await callGateway(gatewayB, current, clone);
    expect(served.status, JSON.stringify(served.json)).toBe(200);
    expect(readFileSync(path.join(handle.workspace, 'again', 'README.md'), 'utf8')).toBe('hello from the remote\n');

    // The container goes first, the bearers after: in between, 410; once revoked, 401.
    await a.host.teardown(handle);
    const gone = await callGateway(gatewayB, current, clone);
    expect(gone.status).toBe(410);
    expect(String(gone.json.detail)).toMatch(/no sandbox of the run is running|no longer running/);
    expect(await teardown(a, ws, runId)).toEqual({ ok: true });
    const revoked = await callGateway(gatewayB, current, clone);
    expect(revoked.status).toBe(401);
    expect(revoked.json.code).toBe('GATEWAY.BEARER_REVOKED');
    expect(await teardown(a, ws, otherRunId)).toEqual({ ok: true });
  }, 240_000);
});
