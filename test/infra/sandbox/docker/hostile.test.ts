import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GuardPolicy } from '../../../../domain/launchGuard';
import type { SandboxHandle } from '../../../../domain/ports/sandboxHost';
import { prepareProcessEnv } from '../../../../infra/sandbox/channels/processEnv';
import { prepareTempFile } from '../../../../infra/sandbox/channels/tempFile';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { FIRST_CREDENTIAL_UID } from '../../../../infra/sandbox/docker/imageFiles';
import { azuriteConnectionString } from '../../../support/azurite';
import { describeWithDocker, dockerForTests, sandboxImageForTests, testScope, removeScope } from '../../../support/dockerEngine';
import { aSecretValue, redactorFor } from '../sandboxTestKit';

/**
 * A hostile agent inside a Docker sandbox: the metadata addresses, IPv6, the host's loopback ports (Azurite,
 * the API beside the gateway, a listener), the engine's socket, the host's abstract unix sockets, the doors'
 * sockets and the credential uid's /proc entries and files all answer nothing; the gateway door answers.
 */
const engine = dockerForTests();
const scope = testScope(__filename);
const marker = `dp-hostile-${randomBytes(6).toString('hex')}`;
const SECRET = aSecretValue('hostile');
const guard: GuardPolicy = { secretNames: ['MCP_KEY'], managedValues: [{ name: 'MCP_KEY', value: SECRET }] };
const redactor = redactorFor([{ name: 'MCP_KEY', value: SECRET }]);
const gatewayPath = '/api/gateway/operations';

/** Runs inside the container as the agent: tries each target, reports what happened (never throws). */
const PROBE = String.raw`
const net=require('net'),http=require('http'),fs=require('fs');const plan=JSON.parse(process.argv[1]);const out={};
const connect=(opts)=>new Promise((r)=>{const s=net.connect(opts);const t=setTimeout(()=>{s.destroy();r('timeout')},1500);
 s.on('connect',()=>{clearTimeout(t);s.destroy();r('connected')});s.on('error',(e)=>{clearTimeout(t);r(e.code)})});
const get=(url,method)=>new Promise((r)=>{const q=http.request(url,{method:method||'GET',timeout:3000},(res)=>{let b='';res.on('data',(d)=>b+=d);res.on('end',()=>r(res.statusCode+' '+b.trim()))});
 q.on('error',(e)=>r(e.code));q.on('timeout',()=>{q.destroy();r('timeout')});q.end()});
const via=(target)=>new Promise((r)=>{const q=http.request({host:'127.0.0.1',port:3128,method:'CONNECT',path:target,timeout:3000});
 q.on('connect',(res,s)=>{s.destroy();r(String(res.statusCode))});q.on('response',(res)=>r(String(res.statusCode)));q.on('error',(e)=>r(e.code));q.end()});
const read=(p)=>{try{return 'read:'+fs.readFileSync(p,'latin1')}catch(e){return e.code}};
const list=(p)=>{try{return 'listed:'+fs.readdirSync(p).join(',')}catch(e){return e.code}};
const signal=(pid)=>{try{process.kill(pid,0);return 'signalled'}catch(e){return e.code}};
(async()=>{
 for(const [h,p] of plan.tcp) out['tcp '+h+':'+p]=await connect({host:h,port:p});
 for(const p of plan.unix) out['unix '+p]=await connect({path:p});
 for(const t of plan.viaProxy) out['proxy '+t]=await via(t);
 out.gateway=await get('http://127.0.0.1:'+plan.gatewayPort+plan.gatewayPath,'POST');
 out.apiBesideGateway=await get('http://127.0.0.1:'+plan.gatewayPort+'/api/workspaces');
 const cred=fs.readdirSync('/proc').filter((e)=>/^\d+$/.test(e)).filter((pid)=>{try{return Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync('/proc/'+pid+'/status','utf8'))[1])>=plan.firstCredentialUid}catch{return false}});
 out.credentialPids=cred.length;
 for(const pid of cred){for(const f of ['environ','mem','maps','root/','cwd/']) out['proc '+f]=f.endsWith('/')?list('/proc/'+pid+'/'+f):read('/proc/'+pid+'/'+f);
  out['cmdline']=read('/proc/'+pid+'/cmdline');out['kill']=signal(Number(pid));}
 out.forwarderEnviron=read('/proc/1/environ');
 for(const p of plan.files) out['file '+p]=read(p);
 for(const p of plan.dirs) out['dir '+p]=list(p);
 out.abstractSockets=fs.readFileSync('/proc/net/unix','utf8').split('\n').slice(1).map((l)=>l.trim().split(/\s+/)[7]).filter((p)=>p&&p.startsWith('@'));
 console.log(JSON.stringify(out));
})();`;

describeWithDocker('a hostile agent in a Docker sandbox', engine, ({ docker, socketPath }) => {
  let host: DockerSandboxHost;
  let sandbox: SandboxHandle;
  let api: http.Server;
  let listener: net.Server;
  let abstract: net.Server;
  let apiPort = 0;
  let listenerPort = 0;

  beforeAll(async () => {
    api = http.createServer((req, res) => res.end(req.url === gatewayPath ? 'gateway-ok' : `api-${marker}`));
    listener = net.createServer((s) => s.end(marker));
    abstract = net.createServer((s) => s.end(marker));
    await Promise.all([
      new Promise<void>((r) => api.listen(0, '127.0.0.1', r)),
      new Promise<void>((r) => listener.listen(0, '127.0.0.1', r)),
      new Promise<void>((r) => abstract.listen(`\0${marker}`, r)),
    ]);
    apiPort = (api.address() as net.AddressInfo).port;
    listenerPort = (listener.address() as net.AddressInfo).port;
    host = await DockerSandboxHost.open({ docker, socketPath, image: await sandboxImageForTests(docker), scope, gatewayUrl: `http://127.0.0.1:${apiPort}${gatewayPath}` });
    sandbox = await host.create({ runId: 'run-hostile', files: {}, redactor, guard });
  });
  afterAll(async () => {
    if (sandbox) await host.teardown(sandbox);
    await removeScope(docker, scope);
    await Promise.all([api, listener, abstract].map((s) => new Promise((r) => s?.close(r))));
  });

  it('reaches the gateway and nothing else: no metadata address, IPv6, host loopback port, Azurite, engine socket or host abstract socket', async () => {
    const azurite = [...azuriteConnectionString().matchAll(/Endpoint=http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    expect(azurite.length).toBeGreaterThanOrEqual(3); // the probe is not vacuous
    const loopback: Array<[string, number]> = [...azurite.map((p): [string, number] => ['127.0.0.1', p]), ['127.0.0.1', listenerPort], ['::1', listenerPort], ['::1', apiPort]];
    const plan = {
      tcp: [...loopback, ['169.254.169.254', 80], ['168.63.129.16', 80], ['fd00:ec2::254', 80], ['2001:4860:4860::8888', 443], ['1.1.1.1', 443]],
      unix: [socketPath, '/var/run/docker.sock', '/run/containerd/containerd.sock', `\0${marker}`, '/run/dp/doors/g1/egress.sock'],
      viaProxy: [
        ...loopback.map(([h, p]) => (h.includes(':') ? `[${h}]:${p}` : `${h}:${p}`)),
        '169.254.169.254:80', '[fd00:ec2::254]:80', '168.63.129.16:443', `[::ffff:127.0.0.1]:${listenerPort}`, `2130706433:${listenerPort}`, `localhost:${apiPort}`,
      ],
      gatewayPort: apiPort,
      gatewayPath,
      firstCredentialUid: FIRST_CREDENTIAL_UID,
      files: [],
      dirs: [],
    };
    const result = await host.exec(sandbox, { argv: ['node', '-e', PROBE, JSON.stringify(plan)], identity: 'agent', timeoutMs: 60_000 });
    expect(result.exitCode, result.stderr).toBe(0);
    const seen = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(seen.gateway).toBe('200 gateway-ok');
    expect(seen.apiBesideGateway).toBe('404 not the gateway');
    for (const [h, p] of plan.tcp) expect(seen[`tcp ${h}:${p}`], `${h}:${p}`).not.toBe('connected');
    for (const p of plan.unix) expect(seen[`unix ${p}`], JSON.stringify(p)).not.toBe('connected');
    for (const t of plan.viaProxy) expect(seen[`proxy ${t}`], t).toBe('403');
    expect(seen.abstractSockets).toEqual([]); // the host's abstract sockets live in another network namespace
    expect(JSON.stringify(Object.values(seen))).not.toContain(marker); // no listener of the host answered
  });

  it('cannot read a credential process through /proc, its files or its directory, nor signal it', async () => {
    let leaseFile = '';
    const holder = await host.start(sandbox, {
      argv: ['sh', '-c', 'cat "$MCP_KEY_FILE" >/dev/null; sleep 60'], identity: 'credential',
      credentials: async (target) => {
        const file = await prepareTempFile({ secretName: 'MCP_KEY', value: SECRET, use: 'file', as: 'MCP_KEY_FILE' }, target);
        leaseFile = file.paths[0] ?? '';
        return [await prepareProcessEnv({ secretName: 'MCP_KEY', value: SECRET, use: 'env', as: 'MCP_KEY' }, target), file];
      },
    });
    try {
      await new Promise((r) => setTimeout(r, 500));
      const credentialDir = host.inspect(sandbox).credentialDir;
      const plan = {
        tcp: [], unix: [], viaProxy: [], gatewayPort: apiPort, gatewayPath, firstCredentialUid: FIRST_CREDENTIAL_UID,
        files: [leaseFile, '/run/dp/doors/doors.json', '/etc/shadow'],
        dirs: [credentialDir, path.dirname(leaseFile), '/run/dp/doors'],
      };
      const result = await host.exec(sandbox, { argv: ['node', '-e', PROBE, JSON.stringify(plan)], identity: 'agent', timeoutMs: 60_000 });
      expect(result.exitCode, result.stderr).toBe(0);
      const seen = JSON.parse(result.stdout) as Record<string, unknown>;
      expect(seen.credentialPids).toBeGreaterThanOrEqual(1); // the holder (and its sleep) are visible as pids, nothing more
      for (const entry of ['proc environ', 'proc mem', 'proc maps', 'proc root/', 'proc cwd/']) expect(seen[entry], entry).toBe('EACCES');
      expect(seen.kill).toBe('EPERM');
      expect(seen.forwarderEnviron).toBe('EACCES');
      expect(seen[`file ${leaseFile}`]).toBe('EACCES');
      expect(seen['file /run/dp/doors/doors.json']).toBe('EACCES');
      expect(seen['file /etc/shadow']).toBe('ENOENT');
      for (const dir of plan.dirs) expect(seen[`dir ${dir}`], dir).toBe('EACCES');
      expect(String(seen.cmdline)).not.toContain(SECRET); // argv is world-readable: it never carries a value
      expect(result.stdout).not.toContain(SECRET);
    } finally {
      await holder.stop();
    }
  });
});
