import type { HostCredentials } from '../ports/hostCredentials';
import { PLATFORM_PARTITION } from '../streams';
import { ENROLMENT_TOKEN_PREFIX, HOST_CREDENTIAL_PREFIX, type HostAddress, onSandboxHost } from './sandboxHosts';
import type { ServiceDependencies } from './dependencies';

/**
 * The platform enrols a managed-pool machine that proved its managed identity (an Entra ID token the caller has
 * verified, for one of the pool's identities): a new host in the platform partition, offered to that identity and
 * exchanged at once, so its stream reads like any other host's and the offer's token is never shown to anyone.
 * Pool hosts belong to no workspace: only runs the platform places on the managed pool reach them.
 */
export async function enrolManagedPoolHost(
  deps: ServiceDependencies,
  credentials: HostCredentials,
  identity: { readonly principalId: string },
): Promise<HostAddress & { credential: string }> {
  const hostId = deps.ids.next();
  const address = { workspaceId: PLATFORM_PARTITION, hostId };
  const by = { actor: `managed-identity:${identity.principalId}`, correlationId: `pool:${hostId}` };
  const offer = credentials.mint(`${ENROLMENT_TOKEN_PREFIX}${PLATFORM_PARTITION}.${hostId}.`);
  const name = `pool-${identity.principalId.replace(/[^A-Za-z0-9]/g, '').slice(0, 12)}`;
  await onSandboxHost(deps, address, { type: 'OfferEnrolment', hostId, name, tokenHash: offer.hash, now: deps.clock.now().toISOString() }, by);
  const credential = credentials.mint(`${HOST_CREDENTIAL_PREFIX}${PLATFORM_PARTITION}.${hostId}.`);
  await onSandboxHost(deps, address, { type: 'Enrol', tokenHash: offer.hash, credentialHash: credential.hash, now: deps.clock.now().toISOString() }, by);
  return { ...address, credential: credential.value };
}
