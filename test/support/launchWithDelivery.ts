import { createRedactor } from '../../domain/redaction';
import type { CredentialDelivery } from '../../infra/sandbox/credentialDelivery';
import { guardedLauncher } from '../../infra/sandbox/guardedLauncher';

export interface DeliveredRun {
  readonly code: number | null;
  /** Redacted by the workspace redactor built from `secrets`, as everything the launcher returns. */
  readonly stdout: string;
  readonly stderr: string;
  /** The argv the launcher starts: argv[0], the delivery's args, the rest of the command. */
  readonly argv: readonly string[];
  /** The env the launcher starts the process with, apart from its launch ticket. */
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Runs one command through the real guarded launcher with at most one channel delivery: the guard checks
 * `env` (the standing env) against `secrets`, the launcher adds the delivery to this process only and calls
 * its cleanup when the process exits. `argv` and `env` are reported as the launcher composes them.
 */
export async function launchWithDelivery(
  command: readonly string[],
  delivery: CredentialDelivery | undefined,
  options: { cwd: string; env: Readonly<Record<string, string>>; secrets: ReadonlyArray<{ name: string; value: string }> },
): Promise<DeliveredRun> {
  const [program, ...rest] = command;
  if (program === undefined) throw new Error('empty command');
  const result = await guardedLauncher.run({
    argv: command,
    standingEnv: options.env,
    guard: { secretNames: options.secrets.map((s) => s.name), managedValues: options.secrets },
    deliveries: delivery === undefined ? [] : [delivery],
    cwd: options.cwd,
    redactor: createRedactor(options.secrets),
    timeoutMs: 60_000,
  });
  return {
    code: result.exitCode,
    stdout: result.stdout,
    stderr: result.stderr,
    argv: [program, ...(delivery?.argsAfterCommand ?? []), ...rest],
    env: { ...options.env, ...(delivery?.env ?? {}) },
  };
}
