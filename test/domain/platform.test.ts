import { describe, it } from 'vitest';
import { type PlatformCommand, type SigningKeyRotated, platformDecider } from '../../domain/platform';
import { specFor } from '../support/decider';

const spec = specFor(platformDecider);
const at = '2026-01-01T00:00:00.000Z';
const rotated = (generation: number, previousKid?: string): SigningKeyRotated => ({
  type: 'SigningKeyRotated',
  data: { kid: `k${generation}`, generation, ...(previousKid ? { previousKid } : {}), activatedAt: at },
});
const record = (generation: number, previousKid?: string): PlatformCommand => ({
  type: 'RecordSigningKeyRotation', kid: `k${generation}`, generation, ...(previousKid ? { previousKid } : {}), activatedAt: at,
});

describe('platform decisions (stream version n is generation n)', () => {
  it('records the first key, then each next generation with the key it replaced', () => {
    spec.given([]).when(record(1)).then([rotated(1)]);
    spec.given([rotated(1)]).when(record(2, 'k1')).then([rotated(2, 'k1')]);
  });
  it('records a generation already in the log nothing (another instance won the race)', () => {
    spec.given([rotated(1), rotated(2, 'k1')]).when(record(2, 'k1')).then([]);
    spec.given([rotated(1), rotated(2, 'k1')]).when(record(1)).then([]);
  });
  it('records nothing past a missing generation, so the log never skips one', () => {
    spec.given([]).when(record(2, 'k1')).then([]);
  });
});
