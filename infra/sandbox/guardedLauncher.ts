import * as childProcess from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { argvEntries, checkStandingEnv, checkValues, type GuardPolicy } from '../../domain/launchGuard';
import type { CancelSignal, CommandResult, OutputRedactor, ProcessInput } from '../../domain/ports/sandboxHost';
import type { CredentialDelivery } from './credentialDelivery';
import { DeliveryConflictError, InputConflictError, LaunchCancelledError, LaunchFailedError, LaunchRefusedError } from './launchErrors';
import { launchTickets, TICKET_ENV, type TicketRegistry } from './launchTickets';
import { OutputCollector } from './outputCollector';
import { pipeInput } from './processInput';
import { statFields } from './procStat';

/**
 * The only production path to a sandbox process (the import allow-list enforces it). Every launch:
 * guard the requested standing env → (refused: throw, spawn nothing) → prepare and add the deliveries to
 * this one process → issue a ticket → spawn in its own process group → redact output, then truncate →
 * on exit, timeout or cancellation kill the whole group, clean the deliveries up, retire the ticket.
 */

export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;
/** How long to wait for pipes to drain after the main process exited (a setsid'd leftover may hold them). */
const DRAIN_GRACE_MS = 2000;
/** How long a group leader gets to reap its killed children before it is killed too. */
const LEADER_GRACE_MS = 100;

export interface LaunchRequest {
  /** The command; delivery arguments are inserted right after argv[0]. */
  readonly argv: readonly string[];
  /** The host's isolation wrapper placed before the command (nsenter … setpriv …), not part of argv. */
  readonly prefix?: readonly string[];
  /** Everything in the env except deliveries: checked by the guard on every launch. */
  readonly standingEnv: Readonly<Record<string, string>>;
  readonly guard: GuardPolicy;
  /** Prepared deliveries, or a preparer the launcher calls only after the guard passed. */
  readonly deliveries?: readonly CredentialDelivery[] | (() => Promise<readonly CredentialDelivery[]>);
  readonly cwd: string;
  readonly redactor: OutputRedactor;
  readonly timeoutMs?: number;
  readonly maxOutputBytes?: number;
  readonly signal?: CancelSignal;
  /** Redacted stdout as it arrives (for readiness lines, transcripts). */
  readonly onStdout?: (text: string) => void;
  /** Redacted stderr as it arrives. */
  readonly onStderr?: (text: string) => void;
  /** What the process reads on stdin, pulled as it reads (never with a delivery that claims stdin). */
  readonly input?: ProcessInput;
  /** Kill what is left of the process group when the main process exits. Default true. */
  readonly reapGroupOnExit?: boolean;
}

export interface LaunchedProcess {
  readonly pid: number;
  readonly ticket: string;
  readonly exited: Promise<CommandResult>;
  /** Kills the process group and waits for the result. */
  stop(): Promise<CommandResult>;
}

/** pid, state and process group of every process, from /proc/<pid>/stat. */
function processTable(): Array<{ pid: number; state: string; pgid: number }> {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const table: Array<{ pid: number; state: string; pgid: number }> = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = statFields(stat);
    table.push({ pid: Number(entry), state: fields[0] ?? '', pgid: Number(fields[2]) });
  }
  return table;
}

/**
 * Whether a process of the group still runs. Zombies do not count: inside a pid namespace they wait for the
 * namespace's init to reap them, which may be never, yet they hold nothing and run nothing.
 */
function groupRunning(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  return processTable().some((p) => p.pgid === pgid && p.state !== 'Z');
}

/**
 * Waits (bounded) until no process of the group is left running, so a result means the group is really gone;
 * false when one still ran at the bound. A zombie left holds the number, so nothing new can take it meanwhile.
 */
async function groupGone(pgid: number): Promise<boolean> {
  for (let i = 0; i < DRAIN_GRACE_MS / 10; i++) {
    if (!groupRunning(pgid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return false;
}

async function cleanupAll(deliveries: readonly CredentialDelivery[]): Promise<void> {
  await Promise.all(deliveries.map((d) => d.cleanup().catch(() => undefined)));
}

function mergeDeliveries(standing: Readonly<Record<string, string>>, deliveries: readonly CredentialDelivery[]) {
  const env: Record<string, string> = {};
  const args: string[] = [];
  let stdin: string | undefined;
  for (const delivery of deliveries) {
    for (const [key, value] of Object.entries(delivery.env)) {
      if (key === TICKET_ENV) throw new DeliveryConflictError(key, 'is reserved for the launch ticket');
      if (Object.prototype.hasOwnProperty.call(standing, key)) throw new DeliveryConflictError(key, 'would override the standing env');
      if (Object.prototype.hasOwnProperty.call(env, key)) throw new DeliveryConflictError(key, 'is set by two deliveries');
      env[key] = value;
    }
    args.push(...delivery.argsAfterCommand);
    if (delivery.stdin !== undefined) {
      if (stdin !== undefined) throw new DeliveryConflictError('stdin', 'is claimed by two deliveries');
      stdin = delivery.stdin;
    }
  }
  return { env, args, stdin };
}

export class GuardedLauncher {
  constructor(private readonly tickets: TicketRegistry = launchTickets) {}

  async run(request: LaunchRequest): Promise<CommandResult> {
    try {
      return await (await this.start(request)).exited;
    } catch (error) {
      if (error instanceof LaunchCancelledError)
        return { exitCode: null, signal: null, stdout: '', stderr: '', truncated: false, timedOut: false, cancelled: true };
      throw error;
    }
  }

  async start(request: LaunchRequest): Promise<LaunchedProcess> {
    const given = Array.isArray(request.deliveries) ? (request.deliveries as readonly CredentialDelivery[]) : [];
    const envDecision = checkStandingEnv(request.standingEnv, request.guard);
    const decision = envDecision.ok ? checkValues(argvEntries(request.argv), request.guard) : envDecision;
    if (!decision.ok) {
      await cleanupAll(given);
      throw new LaunchRefusedError(decision);
    }
    const [program, ...rest] = request.argv;
    if (program === undefined) throw new LaunchFailedError('(empty argv)', 'EINVAL');
    let deliveries: readonly CredentialDelivery[] = given;
    try {
      if (request.signal?.aborted) throw new LaunchCancelledError();
      if (typeof request.deliveries === 'function') deliveries = await request.deliveries();
      if (request.signal?.aborted) throw new LaunchCancelledError();
      const merged = mergeDeliveries(request.standingEnv, deliveries);
      // A lease's stdin is that process's alone: nothing else may be written after (or around) the value.
      if (merged.stdin !== undefined && request.input !== undefined) throw new InputConflictError();
      const ticket = this.tickets.issue();
      const env = { ...request.standingEnv, ...merged.env, [TICKET_ENV]: ticket };
      const full = [...(request.prefix ?? []), program, ...merged.args, ...rest];
      return await this.spawn(full, env, ticket, merged.stdin, deliveries, request);
    } catch (error) {
      await cleanupAll(deliveries);
      throw error;
    }
  }

  private spawn(
    full: readonly string[],
    env: Record<string, string>,
    ticket: string,
    stdin: string | undefined,
    deliveries: readonly CredentialDelivery[],
    request: LaunchRequest,
  ): Promise<LaunchedProcess> {
    const [file, ...args] = full as [string, ...string[]];
    const child = childProcess.spawn(file, args, { cwd: request.cwd, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    const limit = request.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const out = new OutputCollector(request.redactor, limit, request.onStdout);
    const err = new OutputCollector(request.redactor, limit, request.onStderr);
    let timedOut = false;
    let cancelled = false;

    let leaderExited = false;
    // Once the group is known gone its number is free: the kernel may hand it to a new process, which may lead a
    // group of its own (every sandbox process does, on this machine and in neighbouring hosts). A stop that comes
    // later must signal nothing, or it kills whatever took the number.
    let groupEnded = false;
    const killWholeGroup = (): void => {
      if (child.pid === undefined || groupEnded) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    // The leader last when it is nsenter: it stays outside the pid namespace, and a child it did not reap is
    // handed to the host's pid 1. Until that pid 1 reaps it (seconds, in a container), the namespace cannot
    // end, so the sandbox's teardown waited on it. Killed first, the children are reaped by nsenter, which
    // then exits on its own with their signal; it is killed anyway after a short grace. Other leaders go with
    // their group at once (a shell leader would otherwise exit with a status instead of the signal). The
    // leader is nsenter also when the prefix only execs into it: the cgroup join comes first.
    const leaderReaps = request.prefix?.includes('nsenter') === true;
    const killGroup = (): void => {
      if (child.pid === undefined || groupEnded) return;
      const leader = child.pid;
      if (leaderExited || !leaderReaps) return killWholeGroup();
      let others = 0;
      for (const p of processTable())
        if (p.pgid === leader && p.pid !== leader && p.state !== 'Z') {
          others++;
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {
            // gone meanwhile
          }
        }
      if (others === 0) return killWholeGroup();
      setTimeout(killWholeGroup, LEADER_GRACE_MS).unref();
    };
    const onAbort = (): void => {
      cancelled = true;
      killGroup();
    };

    return new Promise<LaunchedProcess>((resolveStart, rejectStart) => {
      let settle!: (result: CommandResult) => void;
      const exited = new Promise<CommandResult>((resolve) => (settle = resolve));
      const timer = request.timeoutMs !== undefined ? setTimeout(() => ((timedOut = true), killGroup()), request.timeoutMs) : undefined;
      const finish = async (exitCode: number | null, signal: string | null): Promise<void> => {
        if (timer) clearTimeout(timer);
        request.signal?.removeEventListener('abort', onAbort);
        await cleanupAll(deliveries);
        this.tickets.retire(ticket);
        settle({ exitCode, signal, stdout: out.text(), stderr: err.text(), truncated: out.truncated || err.truncated, timedOut, cancelled });
      };
      const drained = (stream: Readable, collector: OutputCollector): Promise<void> =>
        new Promise((resolve) => {
          stream.on('data', (chunk: Buffer) => collector.push(chunk));
          stream.once('close', () => (collector.end(), resolve()));
        });
      const outputs = Promise.all([drained(child.stdout, out), drained(child.stderr, err)]);

      child.once('error', (error: NodeJS.ErrnoException) => {
        if (child.pid !== undefined) return;
        void finish(null, null).then(() => rejectStart(new LaunchFailedError(file, error.code ?? 'unknown')));
      });
      child.once('spawn', () => {
        child.stdin.on('error', () => undefined);
        if (request.input) void pipeInput(request.input, child.stdin, new Promise((resolve) => child.once('exit', resolve))).catch(() => undefined);
        else child.stdin.end(stdin ?? '');
        request.signal?.addEventListener('abort', onAbort, { once: true });
        if (request.signal?.aborted) onAbort();
        resolveStart({
          pid: child.pid as number,
          ticket,
          exited,
          stop: () => (killGroup(), exited),
        });
      });
      child.once('exit', (code, signal) => {
        leaderExited = true;
        if (request.reapGroupOnExit !== false) killGroup();
        let grace: NodeJS.Timeout | undefined;
        const late = new Promise<void>((resolve) => (grace = setTimeout(resolve, DRAIN_GRACE_MS)));
        const reaped = request.reapGroupOnExit !== false && child.pid !== undefined ? groupGone(child.pid).then((gone) => void (groupEnded = gone)) : Promise.resolve();
        void Promise.race([outputs, late]).then(async () => {
          if (grace) clearTimeout(grace);
          await reaped;
          child.stdout.destroy();
          child.stderr.destroy();
          out.end();
          err.end();
          return finish(code, signal);
        });
      });
    });
  }
}

/** The process-wide launcher: every host uses it unless a test injects its own ticket registry. */
export const guardedLauncher = new GuardedLauncher();
