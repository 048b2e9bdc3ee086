import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { DomainError } from '../../domain/errors';

/**
 * Where a credential process's program may come from: the system's own directories and the directory of the
 * Node.js running this host (npm and node live there). None of them is writable by a sandbox uid, and none is
 * the sandbox's workspace, so a template file named `git` or `npm` can never be the program that receives a
 * credential, whatever PATH or relative path the RunSpec tries.
 */
export const TRUSTED_PROGRAM_DIRS: readonly string[] = [
  ...new Set(['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin', path.dirname(process.execPath)]),
];

/** The whole environment of a credential process, besides HOME, TMPDIR and its own deliveries. */
export const CREDENTIAL_PROCESS_ENV: Readonly<Record<string, string>> = {
  PATH: TRUSTED_PROGRAM_DIRS.join(':'),
  LANG: 'C.UTF-8',
  LC_ALL: 'C.UTF-8',
  TZ: 'UTC',
};

export class UntrustedProgramError extends DomainError {
  constructor(program: string, why: string) {
    super('SANDBOX.UNTRUSTED_PROGRAM', `a credential process may not run "${program}": ${why}`, 'forbidden');
    this.name = 'UntrustedProgramError';
  }
}

function executable(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The absolute path a credential process's argv[0] runs: a bare name found in the trusted directories, or an
 * absolute path inside one of them. A relative path (`./git`, `bin/npm`) names a file in the workspace and is
 * refused; so is an absolute path anywhere else. Throws `UntrustedProgramError` naming the program.
 */
export function resolveTrustedProgram(program: string): string {
  if (program.length === 0 || program.includes('\0')) throw new UntrustedProgramError(program, 'not a program name');
  if (program.includes('/')) {
    if (!path.isAbsolute(program)) throw new UntrustedProgramError(program, 'a relative path names a file in the workspace');
    const normalised = path.normalize(program);
    if (!TRUSTED_PROGRAM_DIRS.includes(path.dirname(normalised))) throw new UntrustedProgramError(program, `not in ${TRUSTED_PROGRAM_DIRS.join(', ')}`);
    if (!executable(normalised)) throw new UntrustedProgramError(program, 'no such executable');
    return normalised;
  }
  for (const dir of TRUSTED_PROGRAM_DIRS) {
    const candidate = path.join(dir, program);
    if (executable(candidate)) return candidate;
  }
  throw new UntrustedProgramError(program, `not found in ${TRUSTED_PROGRAM_DIRS.join(', ')}`);
}
