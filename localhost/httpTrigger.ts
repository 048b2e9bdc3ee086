import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FunctionRegistration } from './coreApi';
import type { ExtensionHttpRoutes, HostLogger } from './hostExtension';
import { type RawInvocationResult, type Invoker, triggerBindingName } from './invoker';
import { sendProblem } from './problems';
import { type CompiledRoute, compileRoute, matchRoute, routePrecedence } from './routes';

export interface HttpRoute {
  readonly functionName: string;
  readonly route: CompiledRoute;
  /** Upper-case methods; undefined means every method, as in Azure. */
  readonly methods: readonly string[] | undefined;
  readonly authLevel: string;
  /** The full path template including the route prefix, for display. */
  readonly displayPath: string;
}

export function httpRoutes(functions: Iterable<FunctionRegistration>, routePrefix: string): HttpRoute[] {
  const routes: HttpRoute[] = [];
  for (const fn of functions) {
    const trigger = fn.bindings[triggerBindingName(fn)];
    if (!trigger || trigger.type.toLowerCase() !== 'httptrigger') continue;
    const template = typeof trigger.route === 'string' && trigger.route.trim() !== '' ? trigger.route : fn.name;
    const methods = Array.isArray(trigger.methods) ? trigger.methods.map((m) => String(m).toUpperCase()) : undefined;
    const cleaned = template.replace(/^\/+|\/+$/g, '');
    routes.push({
      functionName: fn.name,
      route: compileRoute(cleaned),
      methods: methods && methods.length > 0 ? methods : undefined,
      authLevel: typeof trigger.authLevel === 'string' ? trigger.authLevel : 'function',
      displayPath: '/' + [routePrefix, cleaned].filter((p) => p !== '').join('/'),
    });
  }
  return routes.sort((a, b) => routePrecedence(a.route, b.route));
}

export interface HttpTriggerOptions {
  readonly routes: readonly HttpRoute[];
  readonly routePrefix: string;
  readonly maxBodyBytes: number;
  readonly invoker: Invoker;
  readonly log: HostLogger;
  /** Host-level routes (outside the route prefix) answered before function routes, keyed by exact path. */
  readonly builtins?: ReadonlyMap<string, (req: IncomingMessage, res: ServerResponse) => void>;
  /** Extension routes by path prefix (matched case-insensitively, as the real host routes). */
  readonly extensionRoutes?: readonly ExtensionHttpRoutes[];
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        // Keep draining so the client can read the 413 instead of seeing a reset connection.
        req.resume();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** Whether the raw request target has a `.` or `..` path segment, percent-encoded or not. */
export function hasDotSegment(target: string): boolean {
  const path = target.split(/[?#]/, 1)[0] ?? '';
  return path.split(/[/\\]/).some((segment) => /^(\.|%2e){1,2}$/i.test(segment));
}

function splitPath(pathname: string): string[] | undefined {
  try {
    return pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
}

function requestHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

/** Serves HTTP-triggered functions through the invocation model, with problem+json for host errors. */
export function createHttpTriggerListener(options: HttpTriggerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const prefix = options.routePrefix.split('/').filter((s) => s !== '').map((s) => s.toLowerCase());
  return (req, res) => {
    handle(req, res).catch((error: unknown) => {
      options.log.error(`HTTP host error: ${error instanceof Error ? error.message : String(error)}`);
      sendProblem(res, { status: 500, title: 'Internal Server Error', detail: 'The host could not complete the request.', code: 'HOST.INTERNAL' });
    });
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`);
    } catch {
      sendProblem(res, { status: 400, title: 'Bad Request', detail: 'The request URL or Host header is malformed.', code: 'HOST.BAD_URL' });
      req.resume();
      return;
    }
    // `new URL` resolves `.` and `..` (and their %2e forms), so `DELETE .../secrets/..` would reach the route of
    // the workspace itself. Azure's front end never forwards such a path; this host refuses it too.
    if (hasDotSegment(req.url ?? '/')) {
      sendProblem(res, { status: 400, title: 'Bad Request', detail: 'The path has a "." or ".." segment, which this host does not resolve.', code: 'HOST.BAD_PATH' });
      req.resume();
      return;
    }
    const builtin = options.builtins?.get(url.pathname);
    if (builtin) return builtin(req, res);
    const lowerPath = url.pathname.toLowerCase();
    const extension = options.extensionRoutes?.find((r) => lowerPath === r.prefix.toLowerCase() || lowerPath.startsWith(`${r.prefix.toLowerCase()}/`));
    if (extension) return extension.handle(req, res);
    const segments = splitPath(url.pathname);
    if (!segments) {
      sendProblem(res, { status: 400, title: 'Bad Request', detail: 'The path is not validly percent-encoded.', code: 'HOST.BAD_PATH' });
      return;
    }
    const prefixMatches = prefix.every((p, i) => segments[i]?.toLowerCase() === p);
    const rest = prefixMatches ? segments.slice(prefix.length) : undefined;
    let matched: { route: HttpRoute; params: Record<string, string> } | undefined;
    if (rest) {
      for (const route of options.routes) {
        if (route.methods && !route.methods.includes(method)) continue;
        const params = matchRoute(route.route, rest);
        if (params) {
          matched = { route, params };
          break;
        }
      }
    }
    if (!matched) {
      // Azure answers 404 for a path with no function and for a method the function does not accept.
      sendProblem(res, { status: 404, title: 'Not Found', detail: `No function serves ${method} ${url.pathname}.`, code: 'HOST.NOT_FOUND' });
      req.resume();
      return;
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > options.maxBodyBytes) {
      tooLarge(res, declared > options.maxBodyBytes * 16);
      req.resume();
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(req, options.maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLarge) {
        tooLarge(res, false);
        return;
      }
      throw error;
    }
    const fn = options.invoker.registration(matched.route.functionName);
    const http = {
      method,
      url: url.toString(),
      headers: requestHeaders(req),
      params: matched.params,
      ...(body.length > 0 ? { body: { bytes: new Uint8Array(body) }, rawBody: { bytes: new Uint8Array(body) } } : {}),
    };
    const metadata: Record<string, { json: string } | { string: string }> = {};
    for (const [k, v] of Object.entries(matched.params)) metadata[k] = { string: v };
    let result: RawInvocationResult;
    try {
      result = await options.invoker.invoke(fn.name, { http }, metadata);
    } catch (error) {
      // The developer sees what failed in the host's output; the caller never sees a stack trace.
      options.log.error(`[${fn.name}] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      sendProblem(res, { status: 500, title: 'Internal Server Error', detail: `Function ${fn.name} failed.`, code: 'HOST.FUNCTION_FAILED' });
      return;
    }
    writeHttpResponse(res, httpOutput(fn, result));
  }

  function tooLarge(res: ServerResponse, closeConnection: boolean): void {
    sendProblem(
      res,
      { status: 413, title: 'Payload Too Large', detail: `The request body exceeds ${options.maxBodyBytes} bytes.`, code: 'HOST.PAYLOAD_TOO_LARGE' },
      closeConnection ? { connection: 'close' } : {},
    );
  }
}

/** The http output of an invocation: `$return` when it is an http binding, else the first http output. */
function httpOutput(fn: FunctionRegistration, result: RawInvocationResult): unknown {
  for (const [name, binding] of Object.entries(fn.bindings)) {
    if (binding.direction !== 'out' || binding.type.toLowerCase() !== 'http') continue;
    const value = name === '$return' ? result.returnValue : result.outputData.get(name);
    if (value !== undefined && value !== null) return value;
  }
  return undefined;
}

interface RpcHttpResponse {
  statusCode?: string;
  headers?: Record<string, string>;
  cookies?: RpcCookie[];
  body?: { bytes?: Uint8Array; string?: string };
}
interface RpcCookie {
  name?: string;
  value?: string;
  domain?: { value?: string };
  path?: { value?: string };
  expires?: { value?: { seconds?: number } };
  secure?: { value?: boolean };
  httpOnly?: { value?: boolean };
  sameSite?: string;
  maxAge?: { value?: number };
}

function serializeCookie(c: RpcCookie): string {
  const parts = [`${c.name ?? ''}=${c.value ?? ''}`];
  if (c.domain?.value) parts.push(`Domain=${c.domain.value}`);
  if (c.path?.value) parts.push(`Path=${c.path.value}`);
  if (c.expires?.value?.seconds !== undefined) parts.push(`Expires=${new Date(Number(c.expires.value.seconds) * 1000).toUTCString()}`);
  if (c.maxAge?.value !== undefined) parts.push(`Max-Age=${c.maxAge.value}`);
  if (c.secure?.value) parts.push('Secure');
  if (c.httpOnly?.value) parts.push('HttpOnly');
  if (c.sameSite && c.sameSite !== 'none') parts.push(`SameSite=${c.sameSite === 'explicitNone' ? 'None' : c.sameSite[0]?.toUpperCase() + c.sameSite.slice(1)}`);
  return parts.join('; ');
}

function writeHttpResponse(res: ServerResponse, output: unknown): void {
  const http = (output as { http?: RpcHttpResponse } | undefined)?.http;
  if (!http) {
    res.writeHead(204).end();
    return;
  }
  const status = Number(http.statusCode ?? 200) || 200;
  const body = http.body?.bytes ? Buffer.from(http.body.bytes) : Buffer.from(http.body?.string ?? '');
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(http.headers ?? {})) headers[k.toLowerCase()] = v;
  const cookies = (http.cookies ?? []).map(serializeCookie);
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  const bodyless = status === 204 || status === 304 || status < 200;
  if (!bodyless) headers['content-length'] = String(body.length);
  res.writeHead(status, headers);
  res.end(bodyless ? undefined : body);
}
