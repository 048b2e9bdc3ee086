import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** An env for the git commands this server runs itself: no user or system config, a fixed identity. */
export function hermeticGitEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'Fixture',
    GIT_AUTHOR_EMAIL: 'fixture@example.invalid',
    GIT_COMMITTER_NAME: 'Fixture',
    GIT_COMMITTER_EMAIL: 'fixture@example.invalid',
  };
}

export interface GitRequest {
  readonly method: string;
  readonly url: string;
  /** The Basic-auth user name when the password was right; undefined when refused. */
  readonly user?: string;
}

export interface DevGitServer {
  /** `http://127.0.0.1:<port>` without a trailing slash. */
  readonly origin: string;
  /** Bare repositories live here, each served at `${origin}/<name>.git`. */
  readonly projectRoot: string;
  readonly requests: readonly GitRequest[];
  /** Creates `<name>.git` with one commit on `main` holding `files`; push is enabled. */
  createRepo(name: string, files: Record<string, string>): Promise<string>;
  /** The commit `ref` points at in the served repository. */
  revParse(name: string, ref: string): Promise<string>;
  close(): Promise<void>;
}

function basicAuth(header: string | undefined): { user: string; password: string } | undefined {
  if (header === undefined || !header.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice('Basic '.length), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Splits CGI output into its header block and the body that follows it. */
function parseCgiHeaders(block: string): { status: number; headers: Record<string, string> } {
  let status = 200;
  const headers: Record<string, string> = {};
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
    else headers[name] = value;
  }
  return { status, headers };
}

export interface DevGitServerOptions {
  /** Called with each raw request URL before it is served (tests check it for a token in the URL). */
  readonly onRequest?: (rawUrl: string) => void;
  /** A fixed port (the demo's, which a development backend lets its sandboxes reach); default: any free one. */
  readonly port?: number;
}

/**
 * A real smart-HTTP git server for local development (the demo) and tests: Node's http server on 127.0.0.1
 * running `git http-backend` as CGI for each request, behind HTTP Basic auth where any user name is accepted
 * and the password must be `token`. Loopback only; never a production component.
 */
export async function startDevGitServer(token: string, options: DevGitServerOptions = {}): Promise<DevGitServer> {
  const projectRoot = mkdtempSync(path.join(tmpdir(), 'dp-git-server-'));
  const home = path.join(projectRoot, '.home');
  const requests: GitRequest[] = [];

  const server = http.createServer((req, res) => {
    const raw = req.url ?? '/';
    options.onRequest?.(raw);
    const auth = basicAuth(req.headers.authorization);
    if (auth === undefined || auth.password !== token) {
      requests.push({ method: req.method ?? '', url: raw });
      req.resume();
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="dp-git"', 'Content-Type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    requests.push({ method: req.method ?? '', url: raw, user: auth.user });
    const url = new URL(raw, 'http://127.0.0.1');
    const env: NodeJS.ProcessEnv = {
      ...hermeticGitEnv(home),
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      REQUEST_METHOD: req.method ?? 'GET',
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_USER: auth.user || 'git',
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
    };
    if (req.headers['content-length'] !== undefined) env.CONTENT_LENGTH = req.headers['content-length'];
    if (req.headers['content-encoding'] !== undefined) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding'];
    const protocol = req.headers['git-protocol'];
    if (typeof protocol === 'string') env.GIT_PROTOCOL = protocol;

    const cgi = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersSent = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersSent) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const text = head.toString('latin1');
      const crlf = text.indexOf('\r\n\r\n');
      const lf = text.indexOf('\n\n');
      const end = crlf >= 0 && (lf < 0 || crlf < lf) ? { at: crlf, len: 4 } : lf >= 0 ? { at: lf, len: 2 } : undefined;
      if (end === undefined) return;
      const { status, headers } = parseCgiHeaders(text.slice(0, end.at));
      res.writeHead(status, headers);
      headersSent = true;
      res.write(head.subarray(end.at + end.len));
    });
    cgi.stderr.resume();
    cgi.on('close', (code) => {
      if (!headersSent) res.writeHead(code === 0 ? 200 : 500);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const git = (args: string[], cwd?: string) => run('git', args, { cwd, env: hermeticGitEnv(home) });

  return {
    origin,
    projectRoot,
    requests,
    async createRepo(name, files) {
      const bare = path.join(projectRoot, `${name}.git`);
      await git(['init', '--quiet', '--bare', '--initial-branch=main', bare]);
      await git(['config', 'http.receivepack', 'true'], bare);
      const seed = mkdtempSync(path.join(tmpdir(), 'dp-git-seed-'));
      try {
        await git(['init', '--quiet', '--initial-branch=main', seed]);
        for (const [file, content] of Object.entries(files)) writeFileSync(path.join(seed, file), content);
        await git(['add', '.'], seed);
        await git(['commit', '--quiet', '-m', 'Seed'], seed);
        await git(['push', '--quiet', bare, 'main'], seed);
      } finally {
        rmSync(seed, { recursive: true, force: true });
      }
      return bare;
    },
    async revParse(name, ref) {
      const { stdout } = await git(['--git-dir', path.join(projectRoot, `${name}.git`), 'rev-parse', ref]);
      return stdout.trim();
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(projectRoot, { recursive: true, force: true });
    },
  };
}
