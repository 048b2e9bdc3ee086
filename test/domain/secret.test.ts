import { describe, it, expect } from 'vitest';
import { secretDecider, type SecretEvent, secretMetadata, secretMetadataFromRow, evolveSecret, initialSecretState } from '../../domain/secret';
import { DEFAULT_SECRET_USES } from '../../domain/secretPolicy';
import { specFor } from '../support/decider';

const spec = specFor(secretDecider);
const uses = DEFAULT_SECRET_USES;
const set1: SecretEvent = { type: 'SecretSet', data: { name: 'NPM_TOKEN', version: 1, allowedHosts: ['registry.npmjs.org'], uses } };

describe('secret decisions', () => {
  it('sets version 1, then rotation is the same write with the next version', () => {
    spec.given([]).when({ type: 'SetSecret', name: 'NPM_TOKEN', allowedHosts: ['registry.npmjs.org'] }).then([set1]);
    spec.given([set1]).when({ type: 'SetSecret', name: 'NPM_TOKEN' })
      .then([{ type: 'SecretSet', data: { name: 'NPM_TOKEN', version: 2, allowedHosts: ['registry.npmjs.org'], uses } }]);
  });
  it('deletes, and versions never go back after re-creation', () => {
    const deleted: SecretEvent = { type: 'SecretDeleted', data: { name: 'NPM_TOKEN', version: 1 } };
    spec.given([set1]).when({ type: 'DeleteSecret', name: 'NPM_TOKEN' }).then([{ type: 'SecretRevoked', data: { name: 'NPM_TOKEN', revokedThrough: 1 } }, deleted]);
    spec.given([set1, deleted]).when({ type: 'SetSecret', name: 'NPM_TOKEN' })
      .then([{ type: 'SecretSet', data: { name: 'NPM_TOKEN', version: 2, allowedHosts: [], uses } }]);
  });
  it('deleting what does not exist is not found', () => {
    spec.given([]).when({ type: 'DeleteSecret', name: 'NPM_TOKEN' }).thenThrows('SECRET.NOT_FOUND');
  });
  it('refuses names Key Vault could not hold reversibly', () => {
    for (const name of ['', 'lower', '1ABC', 'A-B', 'A'.repeat(128), 'A B', '../X']) {
      spec.given([]).when({ type: 'SetSecret', name }).thenThrows('SECRET.INVALID_NAME');
    }
    spec.given([]).when({ type: 'SetSecret', name: `_${'A'.repeat(126)}` }).then([{ type: 'SecretSet', data: { name: `_${'A'.repeat(126)}`, version: 1, allowedHosts: [], uses } }]);
  });
  it('metadata carries who and when from the envelope, never a value', () => {
    const state = evolveSecret(initialSecretState(), { ...set1, meta: { at: '2026-01-01T00:00:00.000Z', actor: 'alice' } });
    expect(secretMetadata(state)).toEqual({
      name: 'NPM_TOKEN', version: 1, exists: true, allowedHosts: ['registry.npmjs.org'],
      uses, updatedAt: '2026-01-01T00:00:00.000Z', updatedBy: 'alice',
    });
  });
  it('a stored metadata row reads back as its view; a row from before uses existed shows the default uses', () => {
    const view = secretMetadata(evolveSecret(initialSecretState(), { ...set1, meta: { at: '2026-01-01T00:00:00.000Z', actor: 'alice' } }));
    const row = JSON.parse(JSON.stringify(view)) as Record<string, unknown>;
    expect(secretMetadataFromRow(row)).toEqual(view);
    const { uses: _absent, ...older } = row;
    expect(secretMetadataFromRow({ ...older, updatedAt: null }).uses).toEqual(DEFAULT_SECRET_USES);
  });
});

describe('secret uses', () => {
  const modelOnly = { model: 'owners' as const };
  it('a new secret allows only the uses that keep its value on the platform side', () => {
    spec.given([]).when({ type: 'SetSecret', name: 'K' }).then([{ type: 'SecretSet', data: { name: 'K', version: 1, allowedHosts: [], uses: { git: 'members', npm: 'members', http: 'members' } } }]);
  });
  it('the owner sets uses with the value; a rotation without uses keeps them, a rotation with uses replaces them', () => {
    const first: SecretEvent = { type: 'SecretSet', data: { name: 'K', version: 1, allowedHosts: [], uses: modelOnly } };
    spec.given([]).when({ type: 'SetSecret', name: 'K', uses: modelOnly }).then([first]);
    spec.given([first]).when({ type: 'SetSecret', name: 'K' }).then([{ type: 'SecretSet', data: { name: 'K', version: 2, allowedHosts: [], uses: modelOnly } }]);
    spec.given([first]).when({ type: 'SetSecret', name: 'K', uses: { command: ['bob'] } })
      .then([{ type: 'SecretSet', data: { name: 'K', version: 2, allowedHosts: [], uses: { command: ['bob'] } } }]);
  });
  it('re-created after deletion, a secret starts from the default uses again', () => {
    const first: SecretEvent = { type: 'SecretSet', data: { name: 'K', version: 1, allowedHosts: [], uses: modelOnly } };
    const deleted: SecretEvent = { type: 'SecretDeleted', data: { name: 'K', version: 1 } };
    spec.given([first, deleted]).when({ type: 'SetSecret', name: 'K' }).then([{ type: 'SecretSet', data: { name: 'K', version: 2, allowedHosts: [], uses } }]);
  });
  it('a SecretSet recorded before uses existed folds to the default', () => {
    const legacy = { type: 'SecretSet', data: { name: 'K', version: 1, allowedHosts: [] } } as SecretEvent;
    spec.given([legacy]).thenState((state) => expect(state.uses).toEqual({ git: 'members', npm: 'members', http: 'members' }));
  });
  it('refuses an unknown use, a prototype key and an empty list of members', () => {
    for (const bad of [{ env: 'members' }, { toString: 'members' }, { model: [] }, { model: 'everyone' }, { model: [''] }])
      spec.given([]).when({ type: 'SetSecret', name: 'K', uses: bad as never }).thenThrows('SECRET.INVALID_USES');
  });
});
