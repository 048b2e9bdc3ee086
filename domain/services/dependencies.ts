import type { CommandContext } from '../commandHandler';
import type { Ids } from '../ports/ids';
import type { LeaseRevocationNotice } from '../ports/leaseRevocations';
import type { SecretResolver, SecretVault } from '../ports/secretVault';

/** What the use cases need; built once per process by the composition root. */
export interface ServiceDependencies extends CommandContext {
  readonly ids: Ids;
  readonly vault: SecretVault;
  readonly resolver: SecretResolver;
  /** This instance's live leases, told at once when a secret is revoked (their own timer catches the rest). */
  readonly revocations?: LeaseRevocationNotice;
}
