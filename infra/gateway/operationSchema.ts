import { z } from 'zod';
import { DEFAULT_PORTS, type Destination, type GatewayOperation } from '../../domain/gateway';
import { SECRET_NAME_PATTERN } from '../../domain/secret';
import { IDENTITY_NAME_PATTERN } from '../../domain/workloadIdentity';

/**
 * The body of `POST /api/gateway/operations`, validated. URLs are parsed here (the domain has no URL
 * parser) into a `Destination` the allow-list is checked against; nothing in the body names a run.
 */

export const GATEWAY_BODY_LIMIT = 1024 * 1024 + 16 * 1024;
const MAX_HTTP_BODY = 1024 * 1024;

const secret = z.string().regex(SECRET_NAME_PATTERN, 'must be a secret name');
const relativeDir = z.string().min(1).max(1024);
/** Header names as RFC 9110 tokens; values without control characters (no header injection). */
const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/, 'must be a header name');
const headerValue = z.string().max(8192).regex(/^[^\u0000-\u0008\u000a-\u001f\u007f]*$/, 'must not contain control characters');
/** Headers the platform sets, or that would change how the request is framed or where it goes. */
const RESERVED_HEADERS = new Set([
  'host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer',
  'proxy-authorization', 'proxy-connection', 'expect', 'forwarded', 'x-forwarded-for', 'x-forwarded-host',
]);

interface ParsedUrl {
  readonly href: string;
  readonly destination: Destination;
  readonly pathname: string;
  readonly target: string;
}

/** An absolute http(s) URL without credentials or fragment; `allowQuery` for http operations only. */
function parseUrl(raw: string, allowQuery: boolean): ParsedUrl | string {
  if (raw.length > 4096) return 'is too long';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'is not an absolute URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be http or https';
  if (url.username !== '' || url.password !== '') return 'must not carry credentials';
  if (url.hash !== '') return 'must not have a fragment';
  if (!allowQuery && url.search !== '') return 'must not have a query';
  const protocol = url.protocol === 'https:' ? 'https' : 'http';
  const destination: Destination = {
    protocol,
    hostname: url.hostname.toLowerCase(),
    port: url.port === '' ? DEFAULT_PORTS[protocol] : Number(url.port),
  };
  return { href: url.href, destination, pathname: url.pathname, target: `${url.origin}${url.pathname}` };
}

function urlField(allowQuery: boolean) {
  return z.string().transform((raw, ctx) => {
    const parsed = parseUrl(raw, allowQuery);
    if (typeof parsed === 'string') {
      ctx.addIssue({ code: 'custom', message: parsed });
      return z.NEVER;
    }
    return parsed;
  });
}

const gitBody = z.strictObject({
  kind: z.literal('git'),
  action: z.enum(['clone', 'fetch', 'push']),
  remote: urlField(false),
  secret,
  dir: relativeDir.optional(),
  ref: z.string().min(1).max(255).optional(),
});

const httpBody = z
  .strictObject({
    kind: z.literal('http'),
    method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']).default('GET'),
    url: urlField(true),
    secret,
    header: headerName.default('Authorization'),
    scheme: z.enum(['Bearer', 'token', 'Basic', 'raw']).default('Bearer'),
    headers: z.record(headerName, headerValue).default({}),
    body: z.string().max(MAX_HTTP_BODY).optional(),
  })
  .superRefine((b, ctx) => {
    if (b.body !== undefined && (b.method === 'GET' || b.method === 'HEAD'))
      ctx.addIssue({ code: 'custom', path: ['body'], message: `${b.method} takes no body` });
    const names = Object.keys(b.headers).map((n) => n.toLowerCase());
    if (RESERVED_HEADERS.has(b.header.toLowerCase()))
      ctx.addIssue({ code: 'custom', path: ['header'], message: 'cannot carry the credential in that header' });
    const clash = names.find((n) => RESERVED_HEADERS.has(n) || n === b.header.toLowerCase());
    if (clash !== undefined) ctx.addIssue({ code: 'custom', path: ['headers'], message: `header ${clash} is set by the gateway` });
    if (names.length > 50) ctx.addIssue({ code: 'custom', path: ['headers'], message: 'at most 50 headers' });
  });

const npmBody = z.strictObject({
  kind: z.literal('npm-install'),
  registry: urlField(false),
  secret,
  command: z.enum(['install', 'ci']).default('install'),
  args: z.array(z.string().min(1).max(214)).max(50).default([]),
  dir: relativeDir.optional(),
}).refine((b) => b.registry.pathname === '/', { path: ['registry'], message: 'must be an origin (the token is scoped to its host)' });

export const gatewayOperationBody = z.discriminatedUnion('kind', [gitBody, httpBody, npmBody]);
export type GatewayOperationBody = z.infer<typeof gatewayOperationBody>;

/** A workload identity token for the run (docs/identity.md): no secret, no destination, just the identity's name. */
const identityTokenBody = z.strictObject({
  kind: z.literal('identity-token'),
  identity: z.string().regex(IDENTITY_NAME_PATTERN, 'must be an identity name'),
});

/** Everything the gateway route accepts: an operation that uses a secret, or an identity token. */
export const gatewayRequestBody = z.discriminatedUnion('kind', [...gatewayOperationBody.options, identityTokenBody]);
export type GatewayRequestBody = z.infer<typeof gatewayRequestBody>;

/** The validated body as the domain's operation; the git remote's path comes along for `clone`'s default dir. */
export function toOperation(body: GatewayOperationBody): { operation: GatewayOperation; remotePath: string } {
  switch (body.kind) {
    case 'git':
      return {
        operation: {
          kind: 'git', action: body.action, remote: body.remote.href, secret: body.secret, destination: body.remote.destination,
          target: body.remote.target, ...(body.dir !== undefined ? { dir: body.dir } : {}), ...(body.ref !== undefined ? { ref: body.ref } : {}),
        },
        remotePath: body.remote.pathname,
      };
    case 'http':
      return {
        operation: {
          kind: 'http', method: body.method, url: body.url.href, secret: body.secret, destination: body.url.destination, target: body.url.target,
          header: body.header, scheme: body.scheme, headers: body.headers, ...(body.body !== undefined ? { body: body.body } : {}),
        },
        remotePath: body.url.pathname,
      };
    case 'npm-install': {
      return {
        operation: {
          kind: 'npm-install', registry: `${body.registry.destination.protocol}://${new URL(body.registry.href).host}`, secret: body.secret,
          destination: body.registry.destination, target: body.registry.target, command: body.command, args: body.args,
          ...(body.dir !== undefined ? { dir: body.dir } : {}),
        },
        remotePath: body.registry.pathname,
      };
    }
  }
}
