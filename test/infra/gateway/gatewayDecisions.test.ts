import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assertGitRef, assertWorkspaceDir, hostAllowed, leaseExpiry, planGit, planNpm, type Destination, type GatewayOperation } from '../../../domain/gateway';
import { assertGitCommand } from '../../../infra/sandbox/channels';
import { gatewayOperationBody, toOperation } from '../../../infra/gateway/operationSchema';
import { dropUnsafeTail } from '../../../infra/gateway/sandboxGatewayOperations';
import { NPM_CREDENTIAL_FLAGS } from '../../../domain/secretPolicy';

/** Parses a body as the route does. */
function parse(body: unknown): { operation: GatewayOperation; remotePath: string } {
  return toOperation(gatewayOperationBody.parse(body));
}
const destinationOf = (url: string): Destination => parse({ kind: 'http', url, secret: 'S' }).operation.destination;

describe('hostAllowed: exact, case-insensitive, port-aware', () => {
  const cases: Array<[string[], string, boolean]> = [
    [['api.example.com'], 'https://api.example.com/x', true],
    [['API.Example.COM'], 'https://api.example.com/x', true],
    [['api.example.com'], 'https://API.EXAMPLE.COM/x', true],
    [['api.example.com'], 'https://api.example.com:443/x', true],
    [['api.example.com:443'], 'https://api.example.com/x', true],
    [['api.example.com'], 'http://api.example.com/x', true],
    [['api.example.com'], 'https://api.example.com:8443/x', false],
    [['api.example.com:8443'], 'https://api.example.com/x', false],
    [['example.com'], 'https://api.example.com/x', false],
    [['api.example.com'], 'https://api.example.com.evil.test/x', false],
    [['api.example.com'], 'https://api.example.com./x', false],
    [['api.example.com'], 'https://evil.test/api.example.com', false],
    [['*.example.com'], 'https://api.example.com/x', false],
    [[], 'https://api.example.com/x', false],
    [['127.0.0.1:4873'], 'http://127.0.0.1:4873/', true],
    [['127.0.0.1:4873'], 'http://2130706433:4873/', true],
    [['127.0.0.1'], 'http://127.0.0.1:4873/', false],
    [['[::1]:8080'], 'http://[::1]:8080/', true],
    [['[::1]'], 'http://[::1]:8080/', false],
  ];
  it.each(cases)('%j for %s → %s', (allowed, url, expected) => {
    expect(hostAllowed(allowed, destinationOf(url))).toBe(expected);
  });

  it('property: a host is allowed by its own entry, and by no entry that differs in host or port', () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
    fc.assert(
      fc.property(fc.array(label, { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), (labels, port, other) => {
        const host = `${labels.join('.')}.test`;
        const destination = destinationOf(`https://${host}:${port}/`);
        expect(hostAllowed([`${host}:${port}`], destination)).toBe(true);
        expect(hostAllowed([`${host.toUpperCase()}:${port}`], destination)).toBe(true);
        if (other !== port) expect(hostAllowed([`${host}:${other}`], destination)).toBe(false);
        expect(hostAllowed([`x${host}:${port}`, `${host}x:${port}`, `sub.${host}:${port}`], destination)).toBe(false);
      }),
    );
  });
});

describe('operation bodies', () => {
  it('refuses URLs with credentials, fragments, other schemes, and queries where none belong', () => {
    for (const body of [
      { kind: 'git', action: 'clone', remote: 'https://user:pw@example.com/r.git', secret: 'S' },
      { kind: 'git', action: 'clone', remote: 'https://example.com/r.git#x', secret: 'S' },
      { kind: 'git', action: 'clone', remote: 'ssh://example.com/r.git', secret: 'S' },
      { kind: 'git', action: 'clone', remote: 'file:///etc', secret: 'S' },
      { kind: 'git', action: 'clone', remote: 'https://example.com/r.git?x=1', secret: 'S' },
      { kind: 'npm-install', registry: 'https://registry.example.com/sub/', secret: 'S' },
      { kind: 'http', url: 'https://example.com/', secret: 'lower' },
      { kind: 'http', url: 'https://example.com/', secret: 'S', headers: { 'Transfer-Encoding': 'chunked' } },
      { kind: 'http', url: 'https://example.com/', secret: 'S', headers: { authorization: 'mine' } },
      { kind: 'http', url: 'https://example.com/', secret: 'S', headers: { 'X-A': 'a\r\nX-B: b' } },
      { kind: 'http', url: 'https://example.com/', secret: 'S', method: 'GET', body: 'x' },
      { kind: 'http', url: 'https://example.com/', secret: 'S', runId: 'r' },
    ])
      expect(gatewayOperationBody.safeParse(body).success, JSON.stringify(body)).toBe(false);
  });

  it('records scheme, host and path as the target, never the query', () => {
    const { operation } = parse({ kind: 'http', url: 'https://Api.Example.com:443/v1/items?token=abc', secret: 'S' });
    expect(operation.target).toBe('https://api.example.com/v1/items');
    expect(operation.destination).toEqual({ protocol: 'https', hostname: 'api.example.com', port: 443 });
  });
});

describe('the commands an operation runs', () => {
  const git = (extra: Record<string, unknown>) => parse({ kind: 'git', remote: 'https://git.example.com/org/repo.git', secret: 'GIT_TOKEN', ...extra });

  it('clone, fetch and push pass the git channel check and keep the remote a URL', () => {
    // A clone runs in a private directory and names only the new directory; the rest says where it goes.
    for (const [extra, argv, cwd, handOverInto] of [
      [{ action: 'clone' }, ['git', 'clone', '--quiet', '--', 'https://git.example.com/org/repo.git', 'repo'], undefined, '.'],
      [{ action: 'clone', dir: 'src/repo' }, ['git', 'clone', '--quiet', '--', 'https://git.example.com/org/repo.git', 'repo'], undefined, 'src'],
      [{ action: 'fetch', dir: 'repo', ref: 'main' }, ['git', 'fetch', '--quiet', 'https://git.example.com/org/repo.git', 'main'], 'repo', undefined],
      [{ action: 'push', dir: 'repo' }, ['git', 'push', '--quiet', 'https://git.example.com/org/repo.git', 'HEAD'], 'repo', undefined],
    ] as const) {
      const { operation, remotePath } = git(extra);
      if (operation.kind !== 'git') throw new Error('not git');
      const plan = planGit(operation, remotePath);
      expect(plan.argv).toEqual(argv);
      expect(plan.cwd).toBe(cwd);
      expect(plan.handOverInto).toBe(handOverInto);
      expect(() => assertGitCommand('GIT_TOKEN', plan.argv)).not.toThrow();
    }
  });

  it('refuses directories outside the workspace and refspecs that force, delete or read as options', () => {
    for (const dir of ['..', '../x', 'a/../../x', '/etc', '-c', 'a//b', '.', 'a/./b', 'a b', '$(id)'])
      expect(() => assertWorkspaceDir(dir), dir).toThrow(/dir must be/);
    for (const ref of ['+main', ':main', 'main:', '-f', '--delete', 'a..b', 'main:+x', 'a:b:c', 'x.lock'])
      expect(() => assertGitRef(ref), ref).toThrow(/ref/);
    expect(assertGitRef('HEAD:refs/heads/feature/x')).toBe('HEAD:refs/heads/feature/x');
  });

  it('npm: registry packages and allow-listed flags only', () => {
    const npm = (args: string[], command = 'install') => {
      const { operation } = parse({ kind: 'npm-install', registry: 'https://npm.example.com', secret: 'NPM_TOKEN', command, args });
      if (operation.kind !== 'npm-install') throw new Error('not npm');
      return () => planNpm(operation);
    };
    expect(npm(['left-pad@^1.3.0', '@scope/pkg', '--no-audit', '--save-dev'])().argv).toEqual(['npm', 'install', 'left-pad@^1.3.0', '@scope/pkg', '--no-audit', '--save-dev', ...NPM_CREDENTIAL_FLAGS]);
    for (const args of [['--registry=https://evil.test/'], ['--userconfig', 'x'], ['--ignore-scripts=false'], ['https://evil.test/x.tgz'], ['git+ssh://x'], ['file:..'], ['./local'], ['--foreground-scripts']])
      expect(npm(args), args.join(' ')).toThrow(/npm/);
    expect(npm(['left-pad'], 'ci')).toThrow(/ci takes no package/);
  });

  it('a lease ends with the operation, and never after the deadline', () => {
    expect(leaseExpiry('2026-01-01T00:00:00.000Z', 60_000, '2026-01-01T00:10:00.000Z')).toBe('2026-01-01T00:01:00.000Z');
    expect(leaseExpiry('2026-01-01T00:09:30.000Z', 60_000, '2026-01-01T00:10:00.000Z')).toBe('2026-01-01T00:10:00.000Z');
  });
});

describe('output the sandbox host cut', () => {
  it('loses the bytes where the start of a value the sandbox redactor did not know could sit', () => {
    const value = 'tok_rotated_after_start_0123456789';
    const limit = 400;
    for (let shown = 1; shown < value.length; shown++) {
      const cut = `${'x'.repeat(limit - shown)}${value.slice(0, shown)}`;
      const kept = dropUnsafeTail(cut, limit, value);
      expect(kept).not.toContain(value.slice(0, Math.min(shown, 4)));
      expect(kept.length).toBe(Math.max(0, limit - 6 * value.length));
    }
    expect(dropUnsafeTail('short output', limit, value)).toBe('short output');
  });
});
