import { isDomainError } from '../../domain/errors';
import type { Clock } from '../../domain/ports/clock';
import { PLATFORM_PARTITION } from '../../domain/streams';
import { ROTATION_WINDOW_MS } from '../../domain/catalogue';
import { createRedactor, type RedactableSecret } from '../../domain/redaction';
import type { SecretVault } from '../../domain/ports/secretVault';
import type { Redact } from '../tables/logRecord';

interface Cached {
  readonly versions: string;
  readonly checkedAt: number;
  readonly redact: Redact | undefined;
}

/**
 * The event store's second line of defence (DESIGN.md §3), per workspace: a redactor over its current values and
 * the previous ones within the rotation window, the same material a run masks with. Rebuilt when the vault's
 * list of name@version changes; that list is re-read at most every `recheckMs`, so a value set on another
 * instance is masked here within that delay.
 */
export class WorkspaceStoreRedactors {
  private readonly cache = new Map<string, Cached>();

  constructor(
    private readonly deps: { readonly vault: SecretVault; readonly clock: Clock },
    private readonly options: { readonly recheckMs: number } = { recheckMs: 1000 },
  ) {}

  readonly redactorFor = async (workspaceId: string): Promise<Redact | undefined> => {
    if (workspaceId === PLATFORM_PARTITION) return undefined;
    const now = this.deps.clock.now().getTime();
    const cached = this.cache.get(workspaceId);
    if (cached && now - cached.checkedAt < this.options.recheckMs) return cached.redact;
    let versions: string;
    try {
      versions = (await this.deps.vault.list(workspaceId)).map((m) => `${m.name}@${m.version}`).join(',');
    } catch (error) {
      // A vault soft-deleted or purged holds nothing this workspace's events can still be given.
      if (isDomainError(error)) return cached?.redact;
      throw error;
    }
    if (cached && cached.versions === versions) {
      this.cache.set(workspaceId, { ...cached, checkedAt: now });
      return cached.redact;
    }
    const values = await this.values(workspaceId);
    const redactor = createRedactor(values);
    const redact: Redact | undefined = values.length === 0 ? undefined : (text) => redactor.redact(text);
    this.cache.set(workspaceId, { versions, checkedAt: now, redact });
    return redact;
  };


  /**
   * Straight from the vault, not through the resolver: the resolver trusts the secret's projection, which the
   * very append that records a `SecretSet` has not written yet.
   */
  private async values(workspaceId: string): Promise<RedactableSecret[]> {
    const listed = await this.deps.vault.list(workspaceId);
    const current = await Promise.all(
      listed.map(async (m) => {
        try {
          return { name: m.name, value: (await this.deps.vault.resolve(workspaceId, m.name)).value };
        } catch (error) {
          if (isDomainError(error)) return undefined; // deleted meanwhile
          throw error;
        }
      }),
    );
    const previous = await this.deps.vault.previousValues(workspaceId, new Date(this.deps.clock.now().getTime() - ROTATION_WINDOW_MS));
    return [...current.filter((c): c is RedactableSecret => c !== undefined), ...previous.map(({ name, value }) => ({ name, value }))];
  }

  /** The next append of the workspace re-reads its values (this instance just wrote one). */
  forget(workspaceId: string): void {
    this.cache.delete(workspaceId);
  }
}

/** The vault as the services see it, telling `forget` after every write, so this instance masks a new value at once. */
export function forgettingOnWrite(vault: SecretVault, forget: (workspaceId: string) => void): SecretVault {
  const wrapped = Object.create(vault) as SecretVault;
  return Object.assign(wrapped, {
    set: async (...args: Parameters<SecretVault['set']>) => {
      try {
        return await vault.set(...args);
      } finally {
        forget(args[0]);
      }
    },
    delete: async (...args: Parameters<SecretVault['delete']>) => {
      try {
        return await vault.delete(...args);
      } finally {
        forget(args[0]);
      }
    },
  });
}
