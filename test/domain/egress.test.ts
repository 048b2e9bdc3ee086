import { describe, expect, it } from 'vitest';
import { allowanceFor, egressAllows, firstWidening, isEgressHost, normalizeEgressHosts } from '../../domain/egress';

describe('egress allow-lists', () => {
  it('accept host names with an optional port or *. prefix, and nothing that is an address, a URL or a top-level wildcard', () => {
    for (const ok of ['registry.npmjs.org', 'API.OpenAI.com.', 'example.com:8443', '*.githubusercontent.com', 'localhost']) expect(isEgressHost(ok), ok).toBe(true);
    for (const bad of ['10.0.0.1', '127.1', '2130706433', '[::1]', 'https://x.com', 'x.com/p', '*.com', '*', 'a.*.com', 'x.com:0', 'x.com:65536', '-x.com', 'x_y.com', ''])
      expect(isEgressHost(bad), bad).toBe(false);
    expect(normalizeEgressHosts(['B.example', 'b.example:443', 'a.example:8443', 'b.example.'])).toEqual(['a.example:8443', 'b.example']);
    expect(() => normalizeEgressHosts(['10.0.0.1'])).toThrow(expect.objectContaining({ code: 'EGRESS.INVALID_HOST' }));
  });

  it('match by name and port; a wildcard matches names below it only', () => {
    const list = ['api.example.com', '*.cdn.example.com', 'tools.example.com:8443'];
    expect(egressAllows({ layers: [list] }, 'API.example.com', 443)).toBe(true);
    expect(egressAllows({ layers: [list] }, 'api.example.com', 80)).toBe(false);
    expect(egressAllows({ layers: [list] }, 'a.b.cdn.example.com', 443)).toBe(true);
    expect(egressAllows({ layers: [list] }, 'cdn.example.com', 443)).toBe(false);
    expect(egressAllows({ layers: [list] }, 'evilcdn.example.com', 443)).toBe(false);
    expect(egressAllows({ layers: [list] }, 'tools.example.com', 8443)).toBe(true);
    expect(egressAllows({ layers: [list] }, 'tools.example.com', 443)).toBe(false);
    expect(egressAllows({ layers: [[]] }, 'api.example.com', 443)).toBe(false);
  });

  it('a RunSpec narrows, never widens; both layers apply in the phase', () => {
    const workspace = ['api.example.com', '*.cdn.example.com'];
    expect(firstWidening(workspace, { turns: ['api.example.com', 'x.cdn.example.com', '*.a.cdn.example.com'], install: [] })).toBeUndefined();
    expect(firstWidening(workspace, { mcp: ['api.example.com:8443'] })).toEqual({ where: 'egress.mcp[0]', host: 'api.example.com:8443' });
    expect(firstWidening(workspace, { install: ['*.example.com'] })).toEqual({ where: 'egress.install[0]', host: '*.example.com' });
    expect(firstWidening(workspace, { turns: ['cdn.example.com'] })).toEqual({ where: 'egress.turns[0]', host: 'cdn.example.com' });
    const turns = allowanceFor(workspace, { turns: ['x.cdn.example.com'] }, 'turns');
    expect(egressAllows(turns, 'x.cdn.example.com', 443)).toBe(true);
    expect(egressAllows(turns, 'api.example.com', 443)).toBe(false);
    // The owner shrinks the list after the request: the narrowing no longer opens what it named.
    expect(egressAllows(allowanceFor([], { turns: ['x.cdn.example.com'] }, 'turns'), 'x.cdn.example.com', 443)).toBe(false);
    expect(egressAllows(allowanceFor(workspace, { turns: [] }, 'install'), 'api.example.com', 443)).toBe(true);
  });
});
