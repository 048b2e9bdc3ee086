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

/** Whether a request target carries `needle`, raw or percent-decoded (a malformed escape counts as raw only). */
export function urlCarries(url: string, needle: string): boolean {
  if (url.includes(needle)) return true;
  try {
    return decodeURIComponent(url).includes(needle);
  } catch {
    return false;
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
