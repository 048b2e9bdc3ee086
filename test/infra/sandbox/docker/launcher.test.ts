import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GuardPolicy } from '../../../../domain/launchGuard';
import type { SandboxHandle } from '../../../../domain/ports/sandboxHost';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { describeWithDocker, dockerForTests, removeScope, sandboxImageForTests, testScope } from '../../../support/dockerEngine';
import { IMAGE_NODE } from '../../../../infra/sandbox/docker/sandboxImage';
import { redactorFor } from '../sandboxTestKit';

/**
 * The in-image launcher (imageFiles.ts LAUNCH_JS) ends its exec when its program ends, whatever the program left
 * behind: a leftover that holds the output keeps only the launcher's pipes, and the program cannot reach into the
 * launcher (same uid) to stop it from noticing the exit. Without either defence these execs never end: the
 * command's own timeout (far above what the work needs) would be what stops them, and `timedOut` says so.
 */
const engine = dockerForTests();
const scope = testScope(__filename);
const guard: GuardPolicy = { secretNames: [], managedValues: [] };
const redactor = redactorFor([]);
// The image's node, not the test's: CI runs the suite on Node 20 and 22 against one image.
const node = IMAGE_NODE;
const HANG_BOUND_MS = 90_000;

describeWithDocker('the Docker sandbox launcher', engine, ({ docker, socketPath }) => {
  let host: DockerSandboxHost;
  let sandbox: SandboxHandle;

  beforeAll(async () => {
    host = await DockerSandboxHost.open({ docker, socketPath, image: await sandboxImageForTests(docker), scope });
    sandbox = await host.create({ runId: 'run-launcher', files: {}, redactor, guard });
  }, 120_000);
  afterAll(async () => {
    if (sandbox) await host.teardown(sandbox);
    await removeScope(docker, scope);
  });

  it('ends the exec when the program exits, though a setsid leftover holds its stdout and stderr: all output before the exit, its status', async () => {
    // 256 KiB before exiting: more than a pipe holds, so the launcher must keep reading after the exit.
    const script = 'setsid sleep 600 & i=0; while [ $i -lt 256 ]; do head -c 1024 /dev/zero | tr "\\0" x; i=$((i+1)); done; echo; echo done >&2; exit 7';
    const result = await host.exec(sandbox, { argv: ['sh', '-c', script], identity: 'agent', timeoutMs: HANG_BOUND_MS });
    expect(result.timedOut).toBe(false);
    expect(result.exitCode).toBe(7);
    expect(result.stdout).toBe(`${'x'.repeat(256 * 1024)}\n`);
    expect(result.stderr).toBe('done\n');
    // The leftover outlived its exec (teardown kills it with the container).
    const left = await host.exec(sandbox, { argv: ['sh', '-c', 'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done'], identity: 'agent', timeoutMs: HANG_BOUND_MS });
    expect(left.stdout).toContain('sleep 600');
  }, 2 * HANG_BOUND_MS + 30_000);

  it("keeps its /proc entries from the program it runs under the same uid, so draining them cannot hang the exec", async () => {
    // What the hostile fixture does to every pid it can: read each of its fds (a pipe's byte taken is the launcher's).
    const drain = `const fs=require('fs');const out={};
for(const pid of fs.readdirSync('/proc').filter((p)=>/^\\d+$/.test(p))){
 let cmd='';try{cmd=fs.readFileSync('/proc/'+pid+'/cmdline','latin1')}catch{continue}
 if(!cmd.split('\\0').includes('/opt/dp/launch.js'))continue;
 const uid=Number(/^Uid:\\s+(\\d+)/m.exec(fs.readFileSync('/proc/'+pid+'/status','utf8'))[1]);
 if(uid!==process.getuid())continue;
 let seen;try{const fds=fs.readdirSync('/proc/'+pid+'/fd');for(const fd of fds){try{const h=fs.openSync('/proc/'+pid+'/fd/'+fd,fs.constants.O_RDONLY|fs.constants.O_NONBLOCK);fs.readSync(h,Buffer.alloc(65536));fs.closeSync(h)}catch{}}seen='read '+fds.length}catch(e){seen=e.code}
 let environ;try{fs.readFileSync('/proc/'+pid+'/environ');environ='read'}catch(e){environ=e.code}
 out[pid]=seen+' '+environ}
console.log(JSON.stringify(out))`;
    const result = await host.exec(sandbox, { argv: [node, '-e', drain], identity: 'agent', timeoutMs: HANG_BOUND_MS });
    expect(result.timedOut).toBe(false);
    expect(result.exitCode, result.stderr).toBe(0);
    const seen = Object.values(JSON.parse(result.stdout) as Record<string, string>);
    expect(seen.length).toBeGreaterThanOrEqual(1); // its own launcher, at least: the probe is not vacuous
    for (const entry of seen) expect(entry).toBe('EACCES EACCES');
    // The launcher still notices a later program's exit.
    expect((await host.exec(sandbox, { argv: ['true'], identity: 'agent', timeoutMs: HANG_BOUND_MS })).timedOut).toBe(false);
  }, 2 * HANG_BOUND_MS + 30_000);
});
