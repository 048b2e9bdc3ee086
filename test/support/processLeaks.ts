import { readFileSync, readdirSync } from 'node:fs';

export interface ProcessHolding {
  readonly pid: number;
  readonly where: 'cmdline' | 'environ';
  /** The program name only; never the matching text, which is a secret. */
  readonly program: string;
}

function read(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined; // the process exited, or we may not look: either way nothing to report
  }
}

/**
 * Every live process whose argv or environment contains `needle`. Test servers call it while a client
 * request is in flight, so the client's whole process tree (git, git-remote-http, npm) is still alive and
 * visible in /proc; the test then asserts nobody held the token where another process could read it.
 */
export function processesHolding(needle: string): ProcessHolding[] {
  const found: ProcessHolding[] = [];
  const bytes = Buffer.from(needle, 'utf8');
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const cmdline = read(`/proc/${pid}/cmdline`);
    const program = cmdline?.subarray(0, Math.max(0, cmdline.indexOf(0))).toString('utf8') ?? '?';
    if (cmdline?.includes(bytes)) found.push({ pid, where: 'cmdline', program });
    if (read(`/proc/${pid}/environ`)?.includes(bytes)) found.push({ pid, where: 'environ', program });
  }
  return found;
}

/** The argv of every live process whose argv[0] or argv[1] ends with one of `programs`, for the record. */
export function liveCommandLines(programs: readonly string[]): string[][] {
  const out: string[][] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = read(`/proc/${entry}/cmdline`)?.toString('utf8').split('\0').filter((a) => a !== '');
    if (argv === undefined) continue;
    if (argv.slice(0, 2).some((a) => programs.some((p) => a === p || a.endsWith(`/${p}`)))) out.push(argv);
  }
  return out;
}
