import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CommandResult } from '../../domain/ports/sandboxHost';

/**
 * Resource limits per sandbox through the kernel's cgroups: a pids, a memory and (where there is one) a cpu
 * cgroup of its own, so a fork bomb stops at `pidsMax`, a memory hog is OOM-killed inside its sandbox rather
 * than somewhere on the host, and a busy loop gets its share of `cpus`. Every process of the sandbox joins
 * before it runs anything (`joinPrefix`), so all it forks stays inside; teardown kills whatever is left in
 * the cgroups and removes them, which also catches a process that escaped the pid namespace's teardown.
 *
 * cgroup v1 (one hierarchy per controller, as on this kind of machine) and v2 (the unified hierarchy, when
 * it has the controllers) are both handled. The cgroups go under the host process's own cgroup, so the
 * host's own limits still bound its sandboxes: `<mount><own path>/disco-parrot/<sandboxId>`.
 */

export interface SandboxLimits {
  /** Processes and threads the sandbox may have at once. */
  readonly pidsMax: number;
  /** Memory (and, where the kernel accounts it, memory plus swap) in bytes. */
  readonly memoryBytes: number;
  /** CPU time as a number of cores (0.5 = half a core); 0 for no CPU limit. */
  readonly cpus: number;
}

export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = { pidsMax: 512, memoryBytes: 2 * 1024 ** 3, cpus: 2 };

const GROUP = 'disco-parrot';
const CPU_PERIOD_US = 100_000;

interface Hierarchy {
  readonly controller: 'pids' | 'memory' | 'cpu' | 'unified';
  /** Where this hierarchy keeps the sandboxes' cgroups. */
  readonly parent: string;
}

/** Where the limits can be put on this machine, or why they cannot. */
export type CgroupSupport =
  | { readonly available: true; readonly version: 'v1' | 'v2'; readonly hierarchies: readonly Hierarchy[] }
  | { readonly available: false; readonly reason: string };

interface Mount {
  readonly point: string;
  readonly root: string;
  readonly type: string;
  readonly options: readonly string[];
}

async function mounts(): Promise<Mount[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [before = '', after = ''] = line.split(' - ');
      const fields = before.split(' ');
      const [type = '', , superOptions = ''] = after.split(' ');
      return { point: fields[4] ?? '', root: fields[3] ?? '/', type, options: superOptions.split(',') };
    })
    .filter((m) => m.type === 'cgroup' || m.type === 'cgroup2');
}

/** This process's path in each hierarchy (`/proc/self/cgroup`), keyed by controller; `''` is the unified one. */
async function ownPaths(): Promise<Map<string, string>> {
  const text = await readFile('/proc/self/cgroup', 'utf8').catch(() => '');
  const paths = new Map<string, string>();
  for (const line of text.split('\n').filter(Boolean)) {
    const [, controllers = '', own = '/'] = line.split(':');
    for (const controller of controllers.split(',')) paths.set(controller, own);
  }
  return paths;
}

/** The host's own cgroup directory in a mount (the mount's root when the mount shows only part of the tree). */
function ownDir(mount: Mount, own: string): string {
  const relative = mount.root !== '/' && own.startsWith(mount.root) ? own.slice(mount.root.length) : own;
  const dir = path.join(mount.point, relative);
  return existsSync(dir) ? dir : mount.point;
}

async function writable(parent: string): Promise<boolean> {
  try {
    await mkdir(parent, { recursive: true, mode: 0o755 });
    return true;
  } catch {
    return false;
  }
}

async function v1Support(all: readonly Mount[], own: Map<string, string>): Promise<CgroupSupport> {
  const hierarchies: Hierarchy[] = [];
  for (const controller of ['pids', 'memory', 'cpu'] as const) {
    const mount = all.find((m) => m.type === 'cgroup' && m.options.includes(controller));
    if (!mount) {
      if (controller === 'cpu') continue;
      return { available: false, reason: `no cgroup v1 ${controller} hierarchy is mounted` };
    }
    const parent = path.join(ownDir(mount, own.get(controller) ?? '/'), GROUP);
    if (!(await writable(parent))) {
      if (controller === 'cpu') continue;
      return { available: false, reason: `cannot create cgroups in ${path.dirname(parent)}` };
    }
    hierarchies.push({ controller, parent });
  }
  return { available: true, version: 'v1', hierarchies };
}

async function v2Support(all: readonly Mount[], own: Map<string, string>): Promise<CgroupSupport> {
  const mount = all.find((m) => m.type === 'cgroup2');
  if (!mount) return { available: false, reason: 'no cgroup v2 hierarchy is mounted' };
  const base = ownDir(mount, own.get('') ?? '/');
  const controllers = (await readFile(path.join(base, 'cgroup.controllers'), 'utf8').catch(() => '')).split(/\s+/);
  if (!controllers.includes('pids') || !controllers.includes('memory'))
    return { available: false, reason: `the cgroup v2 hierarchy at ${base} has no pids and memory controllers` };
  const wanted = ['pids', 'memory', ...(controllers.includes('cpu') ? ['cpu'] : [])];
  const parent = path.join(base, GROUP);
  try {
    // v2 lets a cgroup hand controllers to its children only while it has no processes of its own: the host's
    // cgroup may refuse (EBUSY), and then there is nothing to limit sandboxes with from here.
    await writeFile(path.join(base, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
    await mkdir(parent, { recursive: true, mode: 0o755 });
    await writeFile(path.join(parent, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
  } catch (error) {
    return { available: false, reason: `cannot delegate cgroup v2 controllers under ${base} (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  return { available: true, version: 'v2', hierarchies: [{ controller: 'unified', parent }] };
}

/** Finds where sandboxes' cgroups can go: v1 pids + memory (+ cpu), else v2 with those controllers. */
export async function detectCgroupSupport(): Promise<CgroupSupport> {
  const [all, own] = await Promise.all([mounts(), ownPaths()]);
  const v1 = await v1Support(all, own);
  if (v1.available) return v1;
  const v2 = await v2Support(all, own);
  if (v2.available) return v2;
  return { available: false, reason: `no cgroup limits for sandboxes: ${v1.reason}; ${v2.reason}` };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function readNumber(file: string, key: string): Promise<number> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return Number(new RegExp(`^${key}\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
}

/** One sandbox's cgroups. */
export class SandboxCgroup {
  private oomKillsSeen = 0;
  private pidsRefusalsSeen = 0;

  private constructor(
    private readonly version: 'v1' | 'v2',
    private readonly groups: ReadonlyArray<{ readonly controller: Hierarchy['controller']; readonly dir: string }>,
    readonly limits: SandboxLimits,
  ) {}

  /** One directory per hierarchy. */
  get dirs(): string[] {
    return this.groups.map((g) => g.dir);
  }

  private dirOf(controller: 'pids' | 'memory'): string | undefined {
    return this.groups.find((g) => g.controller === controller || g.controller === 'unified')?.dir;
  }

  static async create(support: Extract<CgroupSupport, { available: true }>, sandboxId: string, limits: SandboxLimits): Promise<SandboxCgroup> {
    const groups = support.hierarchies.map((h) => ({ controller: h.controller, dir: path.join(h.parent, sandboxId) }));
    const cgroup = new SandboxCgroup(support.version, groups, limits);
    try {
      for (const { controller, dir } of groups) {
        await mkdir(dir, { mode: 0o755 });
        await cgroup.limit(controller, dir);
      }
    } catch (error) {
      await cgroup.remove();
      throw error;
    }
    return cgroup;
  }

  private async limit(controller: Hierarchy['controller'], dir: string): Promise<void> {
    const { pidsMax, memoryBytes, cpus } = this.limits;
    const set = (file: string, value: string | number): Promise<void> => writeFile(path.join(dir, file), String(value));
    const quota = Math.round(cpus * CPU_PERIOD_US);
    switch (controller) {
      case 'pids':
        return set('pids.max', pidsMax);
      case 'memory':
        await set('memory.limit_in_bytes', memoryBytes);
        // Memory plus swap, where the kernel accounts swap: otherwise a hog would page out instead of stopping.
        if (existsSync(path.join(dir, 'memory.memsw.limit_in_bytes'))) await set('memory.memsw.limit_in_bytes', memoryBytes);
        return;
      case 'cpu':
        if (cpus > 0) {
          await set('cpu.cfs_period_us', CPU_PERIOD_US);
          await set('cpu.cfs_quota_us', quota);
        }
        return;
      case 'unified':
        await set('pids.max', pidsMax);
        await set('memory.max', memoryBytes);
        if (existsSync(path.join(dir, 'memory.swap.max'))) await set('memory.swap.max', 0);
        if (cpus > 0 && existsSync(path.join(dir, 'cpu.max'))) await set('cpu.max', `${quota} ${CPU_PERIOD_US}`);
        return;
    }
  }

  /**
   * A wrapper (run as root, before the namespace and uid wrapper) that moves itself into every cgroup of
   * the sandbox and then execs the rest of the command line: the sandbox process and all it forks are
   * limited from their first instruction. Refuses to run the command when it cannot join.
   */
  joinPrefix(): string[] {
    const procs = this.dirs.map((d) => path.join(d, 'cgroup.procs'));
    return ['/bin/sh', '-c', 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"', 'dp-cgroup', String(procs.length), ...procs];
  }

  /** Host pids in the sandbox's cgroups. */
  async processes(): Promise<number[]> {
    const pids = new Set<number>();
    for (const dir of this.dirs) {
      const text = await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const pid of text.split('\n').filter(Boolean)) pids.add(Number(pid));
    }
    return [...pids];
  }

  /**
   * Says in the result why a process of the sandbox died or could not fork, when a limit did it since the
   * last result: the kernel's SIGKILL alone does not tell a memory limit from anything else.
   */
  async explain(result: CommandResult): Promise<CommandResult> {
    const memory = this.dirOf('memory');
    const pids = this.dirOf('pids');
    const oomKills = memory ? await readNumber(path.join(memory, this.version === 'v1' ? 'memory.oom_control' : 'memory.events'), 'oom_kill') : 0;
    const pidsRefusals = pids ? await readNumber(path.join(pids, 'pids.events'), 'max') : 0;
    const notes: string[] = [];
    if (oomKills > this.oomKillsSeen) notes.push(`sandbox: the memory limit (${Math.round(this.limits.memoryBytes / 1024 ** 2)} MiB) was reached; the kernel killed a process of the sandbox`);
    if (pidsRefusals > this.pidsRefusalsSeen) notes.push(`sandbox: the process limit (${this.limits.pidsMax}) was reached; ${pidsRefusals - this.pidsRefusalsSeen} fork(s) refused`);
    this.oomKillsSeen = oomKills;
    this.pidsRefusalsSeen = pidsRefusals;
    return notes.length === 0 ? result : { ...result, stderr: `${result.stderr}${result.stderr === '' || result.stderr.endsWith('\n') ? '' : '\n'}${notes.join('\n')}\n` };
  }

  /**
   * Kills every process left in the cgroups (no new one can be forked meanwhile: pids.max drops to 0) and
   * removes them. Idempotent; throws when a cgroup still cannot be removed after the processes are gone.
   */
  async remove(): Promise<void> {
    for (const { controller, dir } of this.groups) {
      if (!existsSync(dir)) continue;
      const procs = path.join(dir, 'cgroup.procs');
      if (controller === 'pids' || controller === 'unified') await writeFile(path.join(dir, 'pids.max'), '0').catch(() => undefined);
      for (let attempt = 0; ; attempt++) {
        const pids = (await readFile(procs, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        try {
          await rmdir(dir);
          break;
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          // EBUSY while the killed processes are still exiting.
          if (code !== 'EBUSY' || attempt >= 200) throw new Error(`cgroup ${dir} could not be removed (${code ?? 'error'})`);
          await sleep(attempt < 20 ? 5 : 25);
        }
      }
    }
  }
}
