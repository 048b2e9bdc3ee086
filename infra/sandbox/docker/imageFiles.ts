/**
 * What the sandbox image holds besides the machine's own programs, and the identities its processes run as.
 * The scripts are plain CommonJS kept as strings: they run inside the image (and, for the relay, on the host
 * with an empty environment), so they must not depend on this project's build or node_modules.
 */

/** Owns the workspace; every sandbox process is in it. */
export const SANDBOX_GID = 60_000;
/** The agent runtime and anything it runs. */
export const AGENT_UID = 60_001;
/** The forwarder behind the container's loopback doors (the container's main process). */
export const DOOR_UID = 60_002;
/** The first uid of credential-bearing processes: each gets its own, never reused within a container. */
export const FIRST_CREDENTIAL_UID = 60_100;
export const LAST_CREDENTIAL_UID = 64_999;

/** Paths inside the container. */
export const AGENT_HOME = '/home/agent';
export const DOORS_DIR = '/run/dp/doors';
export const LAUNCHER = '/opt/dp/launch.js';
/**
 * A copy of node's dynamic loader that nobody may read (0711): the kernel marks a process that executes an
 * unreadable program non-dumpable, so the launcher started through it keeps its /proc entries (fds, memory, environ)
 * and ptrace from the program it runs under the same uid. The program itself, started by a readable binary, is
 * dumpable as usual.
 */
export const LAUNCHER_LOADER = '/opt/dp/ld.so';
export const DOORS_SCRIPT = '/opt/dp/doors.js';

/** The container's fixed command: the door forwarder. Value-free: its ports come from a file in the doors dir. */
export const CONTAINER_CMD: readonly string[] = ['node', DOORS_SCRIPT];
/** Every exec's fixed command: the launcher, which reads what to run from the exec's stdin. */
export const EXEC_CMD: readonly string[] = [LAUNCHER_LOADER, '/usr/bin/node', LAUNCHER];
/** How long the launcher waits, after its program exits, for output still in its pipes (leftovers may hold them forever). */
export const LAUNCH_OUTPUT_GRACE_MS = 500;

/**
 * The launcher. Its first stdin line is JSON `{argv, env, cwd}`; after it, the program's stdin arrives as
 * frames (u32 big-endian length + bytes, length 0 = end of the program's stdin). The exec's own stdin stays
 * open until the program exits, so a plain EOF means the host's relay is gone: the program's whole process
 * group is killed. The launcher's own environment is the image's, never the program's.
 *
 * The launcher holds the exec's output itself and relays the program's through pipes of its own: a leftover the
 * program set loose (a setsid daemon keeps its descriptors) holds only those pipes, so when the program has exited
 * the launcher waits a short grace for the rest of its output, then closes them and ends the exec; the leftover is
 * killed at teardown with the container. It runs as the program's uid but non-dumpable (LAUNCHER_LOADER): were
 * its /proc/<pid>/fd open to the program, reading them would take the event loop's signal-lock byte and hang it.
 */
export const LAUNCH_JS = `'use strict';
const { spawn } = require('child_process');
const { constants } = require('os');
const GRACE_MS = ${LAUNCH_OUTPUT_GRACE_MS};
let buf = Buffer.alloc(0), child, ended = false, status;
const killGroup = () => { if (child && child.pid) { try { process.kill(-child.pid, 'SIGKILL'); } catch {} } };
process.stdin.on('data', (chunk) => { buf = Buffer.concat([buf, chunk]); pump(); });
process.stdin.on('end', () => { if (!child) process.exit(125); if (status === undefined) { killGroup(); process.exit(137); } });
process.stdin.on('error', () => {});
function pump() {
  if (!child) {
    const nl = buf.indexOf(10);
    if (nl < 0) return;
    const spec = JSON.parse(buf.subarray(0, nl).toString('utf8'));
    buf = buf.subarray(nl + 1);
    start(spec);
  }
  while (buf.length >= 4) {
    const len = buf.readUInt32BE(0);
    if (buf.length < 4 + len) return;
    const data = buf.subarray(4, 4 + len);
    buf = buf.subarray(4 + len);
    if (ended) continue;
    if (len === 0) { ended = true; child.stdin.end(); } else child.stdin.write(data);
  }
}
// Flushes what the launcher still holds of the program's output, then ends the exec with the program's status.
function finish() {
  child.stdout.destroy(); child.stderr.destroy();
  process.stdout.write('', () => process.stderr.write('', () => process.exit(status)));
}
function exited(code) {
  if (status !== undefined) return;
  status = code;
  // The rest of its group goes with it; a leftover outside the group may still hold the pipes: a grace, then close.
  killGroup();
  let open = 2;
  const closed = () => { if (--open === 0) finish(); };
  child.stdout.once('end', closed); child.stderr.once('end', closed);
  if (child.stdout.readableEnded) closed();
  if (child.stderr.readableEnded) closed();
  // A poll phase between the grace and the end reads what is already in the pipes, however late the timer fires.
  setTimeout(() => setImmediate(finish), GRACE_MS);
}
function start(spec) {
  // Files the sandbox's processes make are shared with the sandbox group only (the workspace is the group's).
  process.umask(0o007);
  child = spawn(spec.argv[0], spec.argv.slice(1), { env: spec.env, cwd: spec.cwd, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {});
  child.stdout.on('error', () => {}); child.stderr.on('error', () => {});
  child.stdout.pipe(process.stdout, { end: false });
  child.stderr.pipe(process.stderr, { end: false });
  child.once('error', (error) => { if (child.pid !== undefined) return; status = 127; process.stderr.write('dp-launch: could not start ' + spec.argv[0] + ': ' + (error.code || 'error') + '\\n'); process.exit(127); });
  child.once('exit', (code, signal) => exited(code !== null ? code : 128 + (constants.signals[signal] || 9)));
}
`;

/**
 * The container's main process (the door uid): listens on 127.0.0.1:<port> for each door in doors.json and
 * relays every connection to its unix socket, which the host serves (egress proxy, gateway, test servers).
 * It writes \`ready\` once every port is bound, before any sandbox process exists, so none can take a port first.
 */
export const DOORS_JS = `'use strict';
const net = require('net'), fs = require('fs'), path = require('path');
const dir = ${JSON.stringify(DOORS_DIR)};
// Read at every connection: a host that adopts the container after a restart serves the doors from new sockets.
const socketFor = (port) => (JSON.parse(fs.readFileSync(path.join(dir, 'doors.json'), 'utf8')).find((d) => d.port === port) || {}).socket;
const doors = JSON.parse(fs.readFileSync(path.join(dir, 'doors.json'), 'utf8'));
let ready = 0;
const done = () => fs.writeFileSync(path.join(dir, 'ready'), '');
for (const { port } of doors) {
  net.createServer((c) => {
    let socket;
    try { socket = socketFor(port); } catch {}
    if (!socket) return c.destroy();
    const u = net.connect(path.join(dir, socket));
    c.pipe(u).pipe(c);
    c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
    c.on('close', () => u.destroy()); u.on('close', () => c.destroy());
  }).listen(port, '127.0.0.1', () => { if (++ready === doors.length) done(); });
}
if (doors.length === 0) done();
process.on('SIGTERM', () => process.exit(0));
`;

/**
 * The host-side relay, one per process, started by the guarded launcher behind a shell that hands it the
 * process's environment on fd 3 and starts it with an empty one (the RunSpec's env never steers a root
 * process of the host). It creates an exec with the fixed command and no env, sends the real argv, env and cwd
 * as the first stdin line, relays stdin as frames and the exec's output to its own, and exits with the
 * program's status. argv: <docker socket> <container> <user> <cwd> -- <program> <args...>
 */
export const RELAY_JS = `'use strict';
const http = require('http'), fs = require('fs');
const [socketPath, container, user, cwd, , ...argv] = process.argv.slice(2);
const env = {};
for (const entry of fs.readFileSync(3).toString('utf8').split('\\0')) {
  const at = entry.indexOf('=');
  if (at > 0) env[entry.slice(0, at)] = entry.slice(at + 1);
}
delete env.PWD;
const fail = (message) => { process.stderr.write('dp-relay: ' + message + '\\n'); process.exit(126); };
function api(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = ''; res.setEncoding('utf8'); res.on('data', (c) => (text += c));
      res.on('end', () => (res.statusCode >= 300 ? reject(new Error(method + ' ' + path.split('?')[0] + ': ' + res.statusCode + ' ' + text.slice(0, 200))) : resolve(text ? JSON.parse(text) : {})));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
(async () => {
  const exec = await api('POST', '/v1.41/containers/' + container + '/exec', {
    AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: false, User: user, WorkingDir: '/', Cmd: ${JSON.stringify(EXEC_CMD)},
  });
  const req = http.request({ socketPath, method: 'POST', path: '/v1.41/exec/' + exec.Id + '/start', headers: { 'content-type': 'application/json', connection: 'Upgrade', upgrade: 'tcp' } });
  req.on('error', (e) => fail(e.message));
  req.on('response', (res) => fail('exec start answered ' + res.statusCode));
  req.on('upgrade', (res, socket, head) => {
    let pending = head;
    const demux = (chunk) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= 8) {
        const size = pending.readUInt32BE(4);
        if (pending.length < 8 + size) break;
        const payload = pending.subarray(8, 8 + size);
        (pending[0] === 2 ? process.stderr : process.stdout).write(payload);
        pending = pending.subarray(8 + size);
      }
    };
    socket.on('data', demux);
    if (head.length) { pending = Buffer.alloc(0); demux(head); }
    socket.write(JSON.stringify({ argv, env, cwd }) + '\\n');
    const frame = (data) => { const h = Buffer.alloc(4); h.writeUInt32BE(data.length); return socket.write(Buffer.concat([h, data])); };
    // Held back while the engine's side is full: a program that reads slowly slows its writer, not this relay's memory.
    process.stdin.on('data', (d) => { if (d.length && !frame(d)) { process.stdin.pause(); socket.once('drain', () => process.stdin.resume()); } });
    process.stdin.on('end', () => frame(Buffer.alloc(0)));
    process.stdin.on('error', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', async () => {
      process.stdin.destroy();
      try {
        // The stream closes as the launcher exits; the engine records the exit code a moment later.
        for (let i = 0; ; i++) {
          const state = await api('GET', '/v1.41/exec/' + exec.Id + '/json');
          if (typeof state.ExitCode === 'number' && !state.Running) return void (process.exitCode = state.ExitCode);
          if (i === 50) return void (process.exitCode = 125);
          await new Promise((r) => setTimeout(r, 100));
        }
      } catch (e) { fail(e.message); }
    });
  });
  req.end(JSON.stringify({ Detach: false, Tty: false }));
})().catch((e) => fail(e.message));
`;

/** Names the in-image scripts' version: an image built with other scripts is refused at host start. */
export function imageScriptsHash(hash: (text: string) => string): string {
  return hash([LAUNCH_JS, DOORS_JS, ...EXEC_CMD].join('\0')).slice(0, 16);
}

/** The shell that starts the relay: the environment goes to fd 3 as NUL-separated entries, the relay starts with none. */
export const RELAY_SHELL = '{ /usr/bin/env -0 | /usr/bin/env -i "$@" 3<&0 0<&4 4<&-; } 4<&0';
