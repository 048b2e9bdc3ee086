import { describe, it, expect } from 'vitest';
import { secretDecider, type SecretEvent, secretMetadata, evolveSecret, initialSecretState } from '../../domain/secret';
import { specFor } from '../support/decider';

const spec = specFor(secretDecider);
const set1: SecretEvent = { type: 'SecretSet', data: { name: 'NPM_TOKEN', version: 1, allowedHosts: ['registry.npmjs.org'] } };

describe('secret decisions', () => {
  it('sets version 1, then rotation is the same write with the next version', () => {
    spec.given([]).when({ type: 'SetSecret', name: 'NPM_TOKEN', allowedHosts: ['registry.npmjs.org'] }).then([set1]);
    spec.given([set1]).when({ type: 'SetSecret', name: 'NPM_TOKEN' })
      .then([{ type: 'SecretSet', data: { name: 'NPM_TOKEN', version: 2, allowedHosts: ['registry.npmjs.org'] } }]);
  });
  it('deletes, and versions never go back after re-creation', () => {
    const deleted: SecretEvent = { type: 'SecretDeleted', data: { name: 'NPM_TOKEN', version: 1 } };
    spec.given([set1]).when({ type: 'DeleteSecret', name: 'NPM_TOKEN' }).then([deleted]);
    spec.given([set1, deleted]).when({ type: 'SetSecret', name: 'NPM_TOKEN' })
      .then([{ type: 'SecretSet', data: { name: 'NPM_TOKEN', version: 2, allowedHosts: [] } }]);
  });
  it('deleting what does not exist is not found', () => {
    spec.given([]).when({ type: 'DeleteSecret', name: 'NPM_TOKEN' }).thenThrows('SECRET.NOT_FOUND');
  });
  it('refuses names Key Vault could not hold reversibly', () => {
    for (const name of ['', 'lower', '1ABC', 'A-B', 'A'.repeat(128), 'A B', '../X']) {
      spec.given([]).when({ type: 'SetSecret', name }).thenThrows('SECRET.INVALID_NAME');
    }
    spec.given([]).when({ type: 'SetSecret', name: `_${'A'.repeat(126)}` }).then([{ type: 'SecretSet', data: { name: `_${'A'.repeat(126)}`, version: 1, allowedHosts: [] } }]);
  });
  it('metadata carries who and when from the envelope, never a value', () => {
    const state = evolveSecret(initialSecretState(), { ...set1, meta: { at: '2026-01-01T00:00:00.000Z', actor: 'alice' } });
    expect(secretMetadata(state)).toEqual({
      name: 'NPM_TOKEN', version: 1, exists: true, allowedHosts: ['registry.npmjs.org'],
      updatedAt: '2026-01-01T00:00:00.000Z', updatedBy: 'alice',
    });
  });
});
