import type { LeaseRevocationNotice } from '../../domain/ports/leaseRevocations';
import type { LiveLease, LiveLeaseRegistry } from '../../domain/ports/liveLeases';
import { isDomainError } from '../../domain/errors';
import { isRevokedVersion } from '../../domain/secret';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import { onRun } from '../../domain/services/runStream';
import { readSecret } from '../../domain/services/secretStream';

/** How often an instance re-checks its live leases against the secrets' logs: the bound on a missed notice. */
export const REVOCATION_CHECK_MS = 2_000;
const ACTOR = 'system:leaseRevocation';

export interface HeldLiveLease {
  /** Whether the lease was ended by a revocation (then the step fails with that reason). */
  readonly revoked: boolean;
  readonly secretName: string;
  readonly secretVersion: number;
  /** The process ended on its own: nothing left to stop. */
  drop(): void;
}

interface Entry extends LiveLease {
  revoked: boolean;
}

/**
 * The leases the processes of this instance hold (MCP servers, commands, gateway operations). On a revocation
 * notice, and on a timer whatever happens, it reads each held secret's log (never a projection row), stops
 * every process whose version is revoked and records `LeaseRevoked` on its run. The run that holds a sandbox is
 * on exactly one instance, so whichever instance took the revoke request, the holder's own timer ends it.
 */
export class LiveLeases implements LeaseRevocationNotice, LiveLeaseRegistry {
  private readonly entries = new Map<string, Entry>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly deps: ServiceDependencies,
    private readonly options: { readonly checkMs?: number } = {},
  ) {}

  hold(lease: LiveLease): HeldLiveLease {
    const entry: Entry = { ...lease, revoked: false };
    this.entries.set(lease.leaseId, entry);
    this.start();
    return {
      get revoked() {
        return entry.revoked;
      },
      secretName: lease.secretName,
      secretVersion: lease.secretVersion,
      drop: () => {
        this.entries.delete(lease.leaseId);
        if (this.entries.size === 0) this.stop();
      },
    };
  }

  get size(): number {
    return this.entries.size;
  }

  secretRevoked(workspaceId: string, secretName: string): void {
    void this.check({ workspaceId, secretName }).catch(() => undefined);
  }

  /** Ends every held lease whose version the log revoked (of one secret, or of all); returns how many it ended. */
  async check(only?: { workspaceId: string; secretName: string }): Promise<number> {
    const bySecret = new Map<string, Entry[]>();
    for (const entry of this.entries.values()) {
      if (entry.revoked) continue;
      if (only && (entry.workspaceId !== only.workspaceId || entry.secretName !== only.secretName)) continue;
      const key = `${entry.workspaceId}\u0000${entry.secretName}`;
      bySecret.set(key, [...(bySecret.get(key) ?? []), entry]);
    }
    let ended = 0;
    for (const entries of bySecret.values()) {
      const first = entries[0];
      if (!first) continue;
      const secret = await readSecret(this.deps.store, first.workspaceId, first.secretName);
      for (const entry of entries) {
        if (entry.revoked || !isRevokedVersion(secret, entry.secretVersion)) continue;
        entry.revoked = true;
        ended++;
        await Promise.resolve(entry.end()).catch(() => undefined);
        await this.record(entry, secret.revokedThrough);
      }
    }
    return ended;
  }

  /** Runs the timer while any lease is held (unref'd: it never keeps a process alive). */
  private start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.check().catch(() => undefined), this.options.checkMs ?? REVOCATION_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async record(entry: Entry, revokedThrough: number): Promise<void> {
    try {
      await onRun(this.deps, entry.workspaceId, entry.runId, { type: 'RevokeLeases', secretName: entry.secretName, revokedThrough }, { actor: ACTOR, correlationId: entry.runId });
    } catch (error) {
      // The run finished meanwhile (teardown expired the lease): the process is stopped all the same.
      if (!isDomainError(error)) throw error;
    }
  }
}
