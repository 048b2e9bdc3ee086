import { startDevGitServer, type DevGitServer } from '../../localhost/devGitServer';
import { processesHolding, urlCarries, type ProcessHolding } from './processLeaks';

export { hermeticGitEnv, type GitRequest } from '../../localhost/devGitServer';

export interface GitHttpServer extends DevGitServer {
  /** Whether any request carried the token in its URL (path or query). */
  readonly tokenSeenInUrl: boolean;
  /** Processes that held the token in argv or env while a request was served (should stay empty). */
  readonly leaks: readonly ProcessHolding[];
}

/**
 * The development git server (localhost/devGitServer.ts), watched for the token leaking while it serves.
 * `onRequest` runs before each request is served (synchronously: a test may hold the client there).
 */
export async function startGitHttpServer(token: string, options: { onRequest?: (rawUrl: string) => void } = {}): Promise<GitHttpServer> {
  const leaks: ProcessHolding[] = [];
  let tokenSeenInUrl = false;
  const server = await startDevGitServer(token, {
    onRequest: (raw) => {
      if (urlCarries(raw, token)) tokenSeenInUrl = true;
      leaks.push(...processesHolding(token));
      options.onRequest?.(raw);
    },
  });
  return {
    origin: server.origin,
    projectRoot: server.projectRoot,
    requests: server.requests,
    get tokenSeenInUrl() {
      return tokenSeenInUrl;
    },
    leaks,
    createRepo: (name, files) => server.createRepo(name, files),
    revParse: (name, ref) => server.revParse(name, ref),
    close: () => server.close(),
  };
}
