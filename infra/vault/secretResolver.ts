import type { Clock } from '../../domain/ports/clock';
import {
  secretNotFoundError,
  type CurrentSecretVersion,
  type ResolvedSecret,
  type SecretResolver,
  type SecretVault,
} from '../../domain/ports/secretVault';

export interface CachingSecretResolverOptions {
  readonly vault: Pick<SecretVault, 'resolve'>;
  readonly clock: Clock;
  /** How long a value may be served from memory; 0 disables the cache. */
  readonly ttlMs: number;
  /** The metadata projection's version of a secret: the cache's freshness check, one point read. */
  readonly currentVersion: CurrentSecretVersion;
  readonly maxEntries?: number;
}

export interface ResolverStats {
  /** Calls that reached the vault. */
  readonly vaultCalls: number;
  /** Resolves answered from memory after the version check. */
  readonly cacheHits: number;
  readonly resolves: number;
}

interface Entry {
  readonly secret: ResolvedSecret;
  readonly fetchedAt: number;
}

/**
 * Resolves a secret at the moment of use (DESIGN.md §1 promise 2). A value is kept in memory for at most
 * `ttlMs`, and even within that time it is used only while its version equals the projection's current
 * version, so a rotation or delete made on another instance is seen by the very next resolve. The values
 * never leave this object except as the result of `resolve`.
 */
export class CachingSecretResolver implements SecretResolver {
  private readonly cache = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<ResolvedSecret>>();
  private counters = { vaultCalls: 0, cacheHits: 0, resolves: 0 };

  constructor(private readonly options: CachingSecretResolverOptions) {}

  async resolve(workspaceId: string, name: string): Promise<ResolvedSecret> {
    this.counters.resolves++;
    const key = `${workspaceId}\u0000${name}`;
    const current = await this.options.currentVersion(workspaceId, name);
    if (current === undefined) {
      // Deleted (or never set): the projection is the authority on existence, whatever the vault still holds.
      this.cache.delete(key);
      throw secretNotFoundError(name);
    }
    const cached = this.cache.get(key);
    if (cached && cached.secret.version === current && this.options.clock.now().getTime() - cached.fetchedAt < this.options.ttlMs) {
      this.counters.cacheHits++;
      return cached.secret;
    }
    this.cache.delete(key);
    return this.fetch(key, workspaceId, name, current);
  }

  invalidate(workspaceId: string, name?: string): void {
    const prefix = `${workspaceId}\u0000`;
    for (const key of [...this.cache.keys()])
      if (name === undefined ? key.startsWith(prefix) : key === `${prefix}${name}`) this.cache.delete(key);
  }

  stats(): ResolverStats {
    return { ...this.counters };
  }

  /** Concurrent resolves of one secret share one vault call. */
  private fetch(key: string, workspaceId: string, name: string, current: number): Promise<ResolvedSecret> {
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const call = (async () => {
      this.counters.vaultCalls++;
      const secret = await this.options.vault.resolve(workspaceId, name);
      // A vault that is behind or ahead of the projection (a write in progress) is answered but not cached.
      if (secret.version === current && this.options.ttlMs > 0) this.remember(key, secret);
      return secret;
    })();
    this.inFlight.set(key, call);
    return call.finally(() => this.inFlight.delete(key));
  }

  private remember(key: string, secret: ResolvedSecret): void {
    const max = this.options.maxEntries ?? 10_000;
    while (this.cache.size >= max) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
    this.cache.set(key, { secret, fetchedAt: this.options.clock.now().getTime() });
  }
}
