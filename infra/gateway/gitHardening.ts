import type { ProcessCredentialDelivery } from '../../domain/ports/sandboxHost';

/**
 * Command-scope git config for the one remote a gateway operation talks to. The git channel neutralises the
 * generic keys (proxy, pinned addresses, TLS checks, code-running ones); a repository the agent wrote can
 * still name this remote's URL in `http.<url>.*` or `remote.<url>.proxy`, which git prefers to the generic
 * keys, so the same keys are set again for the exact URL, with and without the trailing slash git adds.
 * Entries of equal specificity are decided by order, and command scope is read last.
 */
export function remoteScopedGitConfig(remote: string): ReadonlyArray<readonly [string, string]> {
  const bare = remote.replace(/\/+$/, '');
  const perUrl = [bare, `${bare}/`].flatMap((url) => [
    [`http.${url}.proxy`, ''],
    [`http.${url}.curloptResolve`, ''],
    [`http.${url}.sslVerify`, 'true'],
  ] as const);
  return [...perUrl, [`remote.${remote}.proxy`, ''], [`remote.${bare}/.proxy`, '']];
}

/** The channel's delivery with more GIT_CONFIG_KEY/VALUE entries after its own. */
export function withGitConfig<D extends ProcessCredentialDelivery>(delivery: D, entries: ReadonlyArray<readonly [string, string]>): D {
  const count = Number(delivery.env.GIT_CONFIG_COUNT);
  if (!Number.isInteger(count) || count < 0) throw new Error('the git delivery sets no GIT_CONFIG_COUNT');
  const env: Record<string, string> = { ...delivery.env, GIT_CONFIG_COUNT: String(count + entries.length) };
  entries.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${count + i}`] = key;
    env[`GIT_CONFIG_VALUE_${count + i}`] = value;
  });
  return { ...delivery, env, cleanup: () => delivery.cleanup() };
}
