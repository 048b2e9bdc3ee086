import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { processesHolding, urlCarries, type ProcessHolding } from './processLeaks';

const run = promisify(execFile);

export const fixturePackageDir = path.resolve(__dirname, '..', 'fixtures', 'npm', 'dp-fixture-pkg');

export interface RegistryRequest {
  readonly method: string;
  readonly url: string;
  readonly authorized: boolean;
}

export interface NpmRegistry {
  /** `http://127.0.0.1:<port>` without a trailing slash. */
  readonly origin: string;
  readonly packageName: string;
  readonly version: string;
  readonly requests: readonly RegistryRequest[];
  /** Whether any request carried the token in its URL. */
  readonly tokenSeenInUrl: boolean;
  /** Processes that held the token in argv or env while a request was served (should stay empty). */
  readonly leaks: readonly ProcessHolding[];
  close(): Promise<void>;
}

/** Packs the fixture package with the real `npm pack`, so the tarball is exactly what npm expects. */
async function packFixture(): Promise<{ tarball: Buffer; name: string; version: string; manifest: Record<string, unknown> }> {
  const work = mkdtempSync(path.join(tmpdir(), 'dp-npm-pack-'));
  try {
    const pkgDir = path.join(work, 'pkg');
    cpSync(fixturePackageDir, pkgDir, { recursive: true });
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work, '--ignore-scripts'], {
      cwd: pkgDir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work, npm_config_cache: path.join(work, 'cache') },
    });
    const [packed] = JSON.parse(stdout) as Array<{ filename: string }>;
    if (packed === undefined) throw new Error('npm pack reported nothing');
    const manifest = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as Record<string, unknown>;
    return {
      tarball: readFileSync(path.join(work, packed.filename)),
      name: String(manifest.name),
      version: String(manifest.version),
      manifest,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * A minimal npm registry on 127.0.0.1 serving the fixture package (packument and tarball). Every request
 * must carry `Authorization: Bearer <token>`; anything else gets 401, as a private registry answers.
 */
export async function startNpmRegistry(token: string): Promise<NpmRegistry> {
  const { tarball, name, version, manifest } = await packFixture();
  const requests: RegistryRequest[] = [];
  const leaks: ProcessHolding[] = [];
  let tokenSeenInUrl = false;
  let origin = '';
  const tarballPath = `/${name}/-/${name}-${version}.tgz`;

  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (urlCarries(url, token)) tokenSeenInUrl = true;
    leaks.push(...processesHolding(token));
    const authorized = req.headers.authorization === `Bearer ${token}`;
    requests.push({ method: req.method ?? '', url, authorized });
    if (!authorized) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="dp-registry"' });
      res.end(JSON.stringify({ error: 'authentication required' }));
      return;
    }
    if (req.method === 'GET' && url.split('?')[0] === `/${name}`) {
      const packument = {
        name,
        'dist-tags': { latest: version },
        versions: {
          [version]: {
            ...manifest,
            _id: `${name}@${version}`,
            hasInstallScript: true,
            dist: {
              tarball: `${origin}${tarballPath}`,
              shasum: createHash('sha1').update(tarball).digest('hex'),
              integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
            },
          },
        },
      };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(packument));
      return;
    }
    if (req.method === 'GET' && url === tarballPath) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': tarball.length });
      res.end(tarball);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'not found' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    packageName: name,
    version,
    requests,
    get tokenSeenInUrl() {
      return tokenSeenInUrl;
    },
    leaks,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
