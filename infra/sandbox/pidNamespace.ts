import { readFile, readdir, readlink } from 'node:fs/promises';
import type { GuardPolicy } from '../../domain/launchGuard';
import type { OutputRedactor } from '../../domain/ports/sandboxHost';
import type { GuardedLauncher, LaunchedProcess } from './guardedLauncher';
import { statFields } from './procStat';
import { ROOT_SCRIPT } from './sandboxRoot';

/**
 * Bash (dash cannot name a descriptor above 9): close every descriptor above 2 this shell inherited, so a
 * sandbox process holds none of the host's (a pipe, a socket or a file that whatever started the host left
 * open without O_CLOEXEC). `[ -e ]` skips the one the glob itself opened.
 */
export const CLOSE_INHERITED_FDS =
  'for fd in /proc/$$/fd/*; do fd=${fd##*/}; if [ "$fd" -gt 2 ] && [ -e "/proc/$$/fd/$fd" ]; then exec {fd}>&-; fi; done';

/** The wrapper for a sandbox process that gets no namespace (isolation off): closes inherited descriptors. */
export function plainPrefix(cwd: string): string[] {
  return ['/bin/bash', '-c', `${CLOSE_INHERITED_FDS}; cd -- "$1" && shift && exec "$@"`, 'sh', cwd];
}

/**
 * One sandbox = one pid namespace and one private mount namespace, held open by a tiny init. Every process
 * of the sandbox joins it with nsenter, so killing the init makes the kernel kill them all: nothing of the
 * sandbox can outlive teardown, whatever it forked or setsid'd. `setpriv --pdeathsig KILL` ties unshare to
 * this host process, and `--kill-child` ties the init to unshare, so a crashed host takes its sandboxes down.
 * The namespace has its own network too, with only loopback up: what a sandbox reaches are the doors
 * (egress/doors.ts) the host opens before any sandbox process starts. Before it says ready, the init builds
 * the sandbox's own root and pivots into it (sandboxRoot.ts); its /proc is mounted with hidepid=2: a sandbox
 * process cannot even see processes of other uids.
 *
 * The init stays a shell, not \`exec sleep\`: a process whose parent dies (a stopped MCP server's nsenter is
 * killed with its group) is reparented to the init, and bash reaps every child on SIGCHLD, job or not. A
 * sleep never reaps: the zombie stayed until the init was killed, was then handed to the host's pid 1, and
 * the dying init waited for that pid 1 to reap it (1.1–2 s here) before unshare, and so teardown, returned.
 */
const INIT_SCRIPT = `${CLOSE_INHERITED_FDS}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ip link set lo up
${ROOT_SCRIPT}
echo dp-sandbox-ready
while :; do sleep 86400 & wait $!; done`;

export interface PidNamespace {
  /** The namespace's init as seen from the host. */
  readonly initPid: number;
  /** `pid:[inode]`: how the host recognises processes of this sandbox in /proc. */
  readonly nsId: string;
  readonly holder: LaunchedProcess;
  /** Kills the init (and with it every process of the namespace) and waits until unshare has reaped it. */
  close(): Promise<void>;
}

export class NamespaceStartError extends Error {
  constructor(detail: string) {
    super(`could not create the sandbox's pid, mount and network namespaces: ${detail}`);
    this.name = 'NamespaceStartError';
  }
}

async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.split(/\s+/).filter(Boolean).map(Number);
}

export async function startPidNamespace(options: {
  launcher: GuardedLauncher;
  env: Readonly<Record<string, string>>;
  guard: GuardPolicy;
  redactor: OutputRedactor;
  cwd: string;
  /** An empty directory the init mounts the sandbox's root on (invisible to the host: private propagation). */
  rootDir: string;
  /** `rw:<path>` / `ro:<path>`: host paths bound into the sandbox's root at the same path. */
  binds: readonly string[];
}): Promise<PidNamespace> {
  let ready!: () => void;
  const readyLine = new Promise<void>((resolve) => (ready = resolve));
  let seen = '';
  const holder = await options.launcher.start({
    argv: ['setpriv', '--pdeathsig', 'KILL', '--', 'unshare', '--pid', '--fork', '--mount', '--net', '--mount-proc', '--kill-child', '--propagation', 'private', '--', '/bin/bash', '-c', INIT_SCRIPT, 'dp-sandbox-init', options.rootDir, ...options.binds],
    standingEnv: options.env,
    guard: options.guard,
    cwd: options.cwd,
    redactor: options.redactor,
    maxOutputBytes: 4096,
    onStdout: (text) => {
      seen += text;
      if (seen.includes('dp-sandbox-ready')) ready();
    },
  });
  const outcome = await Promise.race([readyLine.then(() => 'ready' as const), holder.exited]);
  if (outcome !== 'ready') throw new NamespaceStartError(`exit ${outcome.exitCode ?? outcome.signal}: ${outcome.stderr.trim().slice(0, 300)}`);
  const [initPid] = await childrenOf(holder.pid);
  if (initPid === undefined) {
    await holder.stop();
    throw new NamespaceStartError('the namespace init was not found');
  }
  const nsId = await readlink(`/proc/${initPid}/ns/pid`);
  return {
    initPid,
    nsId,
    holder,
    close: async () => {
      // Only while the pid is still this namespace's init: one that died on its own was reaped by unshare, and its
      // number may since belong to any process of the machine.
      if (await isInitOf(initPid, nsId, holder.pid)) {
        try {
          process.kill(initPid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await holder.exited;
    },
  };
}

/** Whether `pid` is still the init of namespace `nsId`: in it, and a child of the unshare that holds it. */
export async function isInitOf(pid: number, nsId: string, holderPid: number): Promise<boolean> {
  const [link, stat] = await Promise.all([readlink(`/proc/${pid}/ns/pid`).catch(() => undefined), readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')]);
  const ppid = Number(statFields(stat)[1]);
  return link === nsId && ppid === holderPid;
}

/** Host pids of every process in the namespace `nsId` (empty once the namespace is gone). */
export async function processesIn(nsId: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((e) => /^\d+$/.test(e)).map(Number);
  const found: number[] = [];
  for (const pid of pids) {
    const link = await readlink(`/proc/${pid}/ns/pid`).catch(() => undefined);
    if (link === nsId) found.push(pid);
  }
  return found;
}

export interface Identity {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary group: the sandbox group that owns the workspace. */
  readonly groupGid: number;
}

/**
 * The wrapper that puts one command into the sandbox: join its pid and mount namespaces, drop to the given
 * uid with no capabilities (not even in the bounding set) and no_new_privs (so no setuid binary can give
 * any back), a umask that shares files with the sandbox group only, and no descriptor of the host's.
 */
export function enterPrefix(ns: PidNamespace, identity: Identity, cwd: string): string[] {
  return [
    // No --wd: nsenter would fchdir to a directory of the host's mount namespace, which getcwd cannot name.
    'nsenter', `--target=${ns.initPid}`, '--pid', '--mount', '--net', '--',
    'setpriv', `--reuid=${identity.uid}`, `--regid=${identity.gid}`, `--groups=${identity.groupGid}`,
    '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', '--',
    '/bin/bash', '-c', `${CLOSE_INHERITED_FDS}; umask 007 && cd -- "$1" && shift && exec "$@"`, 'sh', cwd,
  ];
}
