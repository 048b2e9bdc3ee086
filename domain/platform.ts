import type { DomainEvent } from './events';

/**
 * The platform's own partition in the event store. Workspace ids are generated UUIDs, so this id can never be
 * a workspace's; no member is ever added to it, so no API caller can read or verify it through the workspace
 * routes.
 */
export const PLATFORM_WORKSPACE_ID = 'platform';

/** The stream of signing-key rotations: version n is the rotation that made generation n current. */
export const signingKeysStreamId = (): string => 'platform:signing-keys';

/** The RS256 workload identity ring's rotations (docs/identity.md), recorded the same way. */
export const workloadIdentityKeysStreamId = (): string => 'platform:workload-identity-keys';

/**
 * A new platform signing key became current. Carries identifiers only, never key material: `kid` is the key's
 * RFC 7638 thumbprint, so the chained log pins which public key each generation was.
 */
export type SigningKeyRotated = DomainEvent<
  'SigningKeyRotated',
  {
    readonly kid: string;
    readonly generation: number;
    /** The key it replaced, absent for the first key. */
    readonly previousKid?: string;
    /** ISO-8601: when the key was created (the rotation commit), which may precede the event's `meta.at`. */
    readonly activatedAt: string;
  }
>;

export type PlatformEvent = SigningKeyRotated;
