import type { IncomingMessage, ServerResponse } from 'node:http';
import { devIssuerJwks, type DevIssuerSettings } from '../infra/identity/devIssuer';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function sendJson(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * The dev issuer's discovery document and public keys, served by the local host under the issuer's path
 * so a verifier can use the issuer URL like any OpenID issuer. Public keys only.
 */
export function devIssuerRoutes(settings: DevIssuerSettings): Map<string, Handler> {
  const base = new URL(settings.issuer).pathname.replace(/\/+$/, '');
  const jwksPath = `${base}/.well-known/jwks.json`;
  const routes = new Map<string, Handler>();
  routes.set(jwksPath, (_req, res) => {
    devIssuerJwks(settings).then(
      (jwks) => sendJson(res, jwks),
      () => res.writeHead(500).end(),
    );
  });
  routes.set(`${base}/.well-known/openid-configuration`, (_req, res) => {
    sendJson(res, {
      issuer: settings.issuer,
      jwks_uri: `${settings.issuer.replace(/\/+$/, '')}/.well-known/jwks.json`,
      id_token_signing_alg_values_supported: ['EdDSA'],
    });
  });
  return routes;
}
