import { assertNever } from './errors';
import type { DomainEvent } from './events';

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

export type PlatformCommand = {
  readonly type: 'RecordSigningKeyRotation';
  readonly kid: string;
  readonly generation: number;
  readonly previousKid?: string;
  readonly activatedAt: string;
};

export interface PlatformState {
  /** The last generation recorded; 0 before the first key. */
  readonly recordedGeneration: number;
}

export const initialPlatformState = (): PlatformState => ({ recordedGeneration: 0 });

export function evolvePlatform(state: PlatformState, event: PlatformEvent): PlatformState {
  switch (event.type) {
    case 'SigningKeyRotated':
      return { recordedGeneration: event.data.generation };
    default:
      return assertNever(event.type, 'platform event');
  }
}

/**
 * Stream version n is generation n: a rotation already recorded (another instance won) records nothing, and
 * neither does one whose predecessor is still missing (the next recording catches up in order).
 */
export function decidePlatform(command: PlatformCommand, state: PlatformState): SigningKeyRotated[] {
  switch (command.type) {
    case 'RecordSigningKeyRotation': {
      if (command.generation !== state.recordedGeneration + 1) return [];
      const { kid, generation, previousKid, activatedAt } = command;
      return [{ type: 'SigningKeyRotated', data: { kid, generation, ...(previousKid !== undefined ? { previousKid } : {}), activatedAt } }];
    }
    default:
      return assertNever(command.type, 'platform command');
  }
}

export const platformDecider = { initialState: initialPlatformState, evolve: evolvePlatform, decide: decidePlatform };
