import { spawn } from 'node:child_process';
import type { CredentialDelivery } from '../../infra/sandbox/credentialDelivery';

export interface DeliveredRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The exact argv the process was started with. */
  readonly argv: readonly string[];
  /** The exact env the process was started with. */
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Applies a delivery the way the guarded launcher does (env for this process only, args after argv[0],
 * stdin written then closed, cleanup on exit whatever the outcome). Used by the channel tests only where
 * the launcher is not the thing under test.
 */
export async function spawnWithDelivery(
  command: readonly string[],
  delivery: CredentialDelivery | undefined,
  options: { cwd: string; env: Readonly<Record<string, string>> },
): Promise<DeliveredRun> {
  const [program, ...rest] = command;
  if (program === undefined) throw new Error('empty command');
  const argv = [program, ...(delivery?.argsAfterCommand ?? []), ...rest];
  const env = { ...options.env, ...(delivery?.env ?? {}) };
  try {
    return await new Promise<DeliveredRun>((resolve, reject) => {
      const child = spawn(program, argv.slice(1), { cwd: options.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr, argv, env }));
      child.stdin.on('error', () => {}); // a process may exit without reading its stdin
      child.stdin.end(delivery?.stdin ?? '');
    });
  } finally {
    await delivery?.cleanup();
  }
}
