import { createRequire, syncBuiltinESMExports } from 'node:module';

type SpawnFn = (...args: unknown[]) => unknown;
const childProcess = createRequire(__filename)('node:child_process') as Record<string, SpawnFn>;
const WRAPPED = ['spawn', 'spawnSync', 'execFile', 'execFileSync', 'exec', 'execSync', 'fork'] as const;

export interface SpawnCall {
  readonly fn: string;
  readonly file: string;
  readonly env: Record<string, string | undefined> | undefined;
}

/**
 * Wraps every process-starting function of node:child_process in this process (CommonJS exports and, via
 * syncBuiltinESMExports, the ESM bindings), recording each call's env, so a test can check that every
 * process started while it ran carried a launch ticket.
 */
export function spySpawns(): { calls: SpawnCall[]; restore(): void } {
  const calls: SpawnCall[] = [];
  const originals = new Map<string, SpawnFn>();
  for (const name of WRAPPED) {
    const original = childProcess[name] as SpawnFn;
    originals.set(name, original);
    childProcess[name] = function (this: unknown, ...args: unknown[]) {
      const options = args.find((a, i) => i > 0 && typeof a === 'object' && a !== null && !Array.isArray(a)) as { env?: Record<string, string> } | undefined;
      calls.push({ fn: name, file: String(args[0]), env: options?.env });
      return original.apply(this, args);
    };
  }
  syncBuiltinESMExports();
  return {
    calls,
    restore: () => {
      for (const [name, original] of originals) childProcess[name] = original;
      syncBuiltinESMExports();
    },
  };
}
