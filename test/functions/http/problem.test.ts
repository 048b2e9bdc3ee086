import { describe, expect, it } from 'vitest';
import { DomainError, type DomainErrorKind } from '../../../domain/errors';
import { problemFromError } from '../../../functions/http/problem';

describe('the HTTP edge maps a domain error kind to a status', () => {
  it('each kind to its status, with the code and message as written', () => {
    const expected: Record<DomainErrorKind, number> = {
      invalid: 400, forbidden: 403, not_found: 404, conflict: 409, precondition: 409, gone: 410, too_large: 413, upstream: 502, unavailable: 503,
    };
    for (const [kind, status] of Object.entries(expected) as [DomainErrorKind, number][]) {
      const { response, expected: shown } = problemFromError(new DomainError('GATEWAY.SOMETHING', `a ${kind} answer`, kind));
      expect(shown).toBe(true);
      expect(response.status).toBe(status);
      expect(JSON.parse(String(response.body))).toMatchObject({ status, code: 'GATEWAY.SOMETHING', detail: `a ${kind} answer` });
    }
  });

  it('anything else is a bare 500 that quotes nothing', () => {
    const { response, expected } = problemFromError(new Error('token=npm_secret_value'));
    expect(expected).toBe(false);
    expect(response.status).toBe(500);
    expect(String(response.body)).not.toContain('npm_secret_value');
  });
});
