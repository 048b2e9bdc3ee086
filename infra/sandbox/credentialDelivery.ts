/**
 * The seam between credential channels and the guarded launcher. A channel prepares the delivery of ONE
 * credential to ONE process; the launcher adds it to that process only, after the launch guard has checked
 * the requested standing env, and calls `cleanup` when the process exits, success or failure.
 */
export interface CredentialDelivery {
  /** Env vars for that one process (for example TRACKER_KEY, or a temp file's path under the `as` name). */
  readonly env: Readonly<Record<string, string>>;
  /** Arguments inserted right after argv[0] (for example `--userconfig <file> --ignore-scripts` for npm). */
  readonly argsAfterCommand: readonly string[];
  /** Written to the process's stdin, then stdin is closed. */
  readonly stdin?: string;
  /** Files (and directories) this delivery created, to be gone after cleanup. */
  readonly paths: readonly string[];
  /** Removes everything the delivery created; idempotent; safe to call after a crash of the process. */
  cleanup(): Promise<void>;
}

/** Where a channel may put credential material: a per-process directory outside the sandbox workspace. */
export interface DeliveryTarget {
  /** A fresh directory (mode 0700) on the credential tmpfs, owned by the receiving process's uid. */
  readonly credentialDir: string;
  /** The uid/gid the receiving process runs as, when the host isolates; files are chowned to it. */
  readonly uid?: number;
  readonly gid?: number;
  /** The egress proxy inside the sandbox's network namespace, when it has one: the only way out. */
  readonly egressProxy?: string;
}

/** What the RunSpec or the gateway asks for: the secret, resolved at the moment of use, and its use. */
export interface CredentialRequest {
  readonly secretName: string;
  readonly value: string;
  readonly use: 'git' | 'npm' | 'file' | 'stdin' | 'env';
  /** For `env` and `file`: the env var name the process sees. */
  readonly as?: string;
  /** For `git` and `npm`: the host the credential is for (e.g. 127.0.0.1:4873 or github.com). */
  readonly host?: string;
}
