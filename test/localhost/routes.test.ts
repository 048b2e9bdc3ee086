import { describe, expect, it } from 'vitest';
import { compileRoute, matchRoute, routePrecedence } from '../../localhost/routes';
import { parseSchedule } from '../../localhost/timerTrigger';
import { parseTimeSpan } from '../../localhost/hostJson';
import { decodeMessage, encodeMessage } from '../../localhost/queueTrigger';

const match = (template: string, path: string) => matchRoute(compileRoute(template), path.split('/').filter(Boolean));

describe('route templates', () => {
  it('matches literals case-insensitively and captures parameters', () => {
    expect(match('workspaces/{ws}/secrets/{name}', 'Workspaces/w1/SECRETS/API_KEY')).toEqual({ ws: 'w1', name: 'API_KEY' });
    expect(match('workspaces/{ws}', 'workspaces/w1/extra')).toBeUndefined();
    expect(match('workspaces/{ws}', 'workspaces')).toBeUndefined();
  });

  it('treats {x?} and {x=default} as optional and {*rest} as catch-all', () => {
    expect(match('items/{id?}', 'items')).toEqual({});
    expect(match('items/{id?}', 'items/3')).toEqual({ id: '3' });
    expect(match('items/{id=1}', 'items')).toEqual({});
    expect(match('files/{*path}', 'files/a/b/c.txt')).toEqual({ path: 'a/b/c.txt' });
    expect(match('files/{*path}', 'files')).toEqual({});
  });

  it('checks known constraints and accepts unknown ones', () => {
    expect(match('items/{id:int}', 'items/12')).toEqual({ id: '12' });
    expect(match('items/{id:int}', 'items/1x')).toBeUndefined();
    expect(match('items/{id:int?}', 'items')).toEqual({});
    expect(match('items/{id:guid}', 'items/3f2504e0-4f89-11d3-9a0c-0305e82c3301')).toBeDefined();
    expect(match('items/{id:alpha:minlength(3)}', 'items/ab')).toBeUndefined();
    expect(match('items/{id:regex(^a:b$)}', 'items/a:b')).toEqual({ id: 'a:b' });
    expect(match('items/{id:mystery}', 'items/anything')).toEqual({ id: 'anything' });
  });

  it('orders literal segments before parameters before catch-alls', () => {
    const routes = ['items/{id}', 'items/{*rest}', 'items/new', 'items/{id:int}'].map(compileRoute).sort(routePrecedence);
    expect(routes.map((r) => r.template)).toEqual(['items/new', 'items/{id:int}', 'items/{id}', 'items/{*rest}']);
  });
});

describe('timer schedules', () => {
  it('reads six-field NCRONTAB in UTC, seconds first', () => {
    const next = parseSchedule('0 30 9 * * *')(new Date('2026-03-01T09:29:59.500Z'));
    expect(next.toISOString()).toBe('2026-03-01T09:30:00.000Z');
    expect(parseSchedule('*/5 * * * * *')(new Date('2026-03-01T00:00:01Z')).toISOString()).toBe('2026-03-01T00:00:05.000Z');
  });

  it('reads a TimeSpan as an interval', () => {
    expect(parseSchedule('00:00:10')(new Date('2026-03-01T00:00:00Z')).toISOString()).toBe('2026-03-01T00:00:10.000Z');
  });

  it('refuses five-field cron and nonsense with a message naming the schedule', () => {
    expect(() => parseSchedule('*/5 * * * *')).toThrow(/six fields/);
    expect(() => parseSchedule('0 0 25 * * *')).toThrow(/"0 0 25 \* \* \*" is invalid/);
  });

  it('parses host.json TimeSpans', () => {
    expect(parseTimeSpan('00:00:30')).toBe(30_000);
    expect(parseTimeSpan('1.02:00:00')).toBe(26 * 3_600_000);
    expect(parseTimeSpan('00:00:00.500')).toBe(500);
    expect(parseTimeSpan('30s')).toBeUndefined();
  });
});

describe('queue message encoding', () => {
  it('round-trips UTF-8 text through base64 as the Functions host encodes it', () => {
    const text = JSON.stringify({ runId: 'r1', note: 'ünïcode ✓' });
    expect(decodeMessage(encodeMessage(text, 'base64'), 'base64')).toBe(text);
    expect(decodeMessage('plain text', 'none')).toBe('plain text');
  });

  it('treats text that is not base64 as undecodable rather than garbage', () => {
    expect(decodeMessage('not base64!', 'base64')).toBeUndefined();
    expect(decodeMessage('abc', 'base64')).toBeUndefined();
  });
});
