import { credentialHostOf } from './credentialHost';
import { removingCleanup, writePrivateFile } from './credentialFiles';
import type { ChannelPreparer } from './preparer';
import { assertSingleLine } from './preparer';

/** The user name git sends with the token; hosts that take a token as the password ignore it. */
const USERNAME = 'x-access-token';

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * A POSIX sh credential helper for one protocol and host. It answers `get` with the token read from a file
 * by the shell's own `read` (a builtin), so the token is never in any process's argv or env; for any other
 * destination it answers nothing, and it ignores `store` and `erase` so git cannot persist the token.
 */
function helperScript(protocol: string, host: string, tokenFile: string): string {
  return `#!/bin/sh
# Written by the git-credential-helper channel; removed when the git process exits.
protocol= host=
while IFS= read -r line; do
  case $line in
    '') break ;;
    protocol=*) protocol=\${line#protocol=} ;;
    host=*) host=\${line#host=} ;;
  esac
done
[ "$1" = get ] || exit 0
[ "$protocol" = ${shellQuote(protocol)} ] && [ "$host" = ${shellQuote(host)} ] || exit 0
IFS= read -r token < ${shellQuote(tokenFile)} || [ -n "$token" ] || exit 0
printf 'username=%s\\npassword=%s\\n' ${shellQuote(USERNAME)} "$token"
`;
}

/**
 * `git-credential-helper`: git learns its helper from GIT_CONFIG_COUNT/KEY/VALUE env entries (command-scope
 * config, applied after system and global config), so nothing is written to `.git/config` or the remote URL.
 * The first entry (empty `credential.helper`) drops every helper configured elsewhere, so no store or cache
 * helper sees the token; prompts and askpass programs are switched off so a failure fails instead of asking.
 */
export const prepareGitCredentialHelper: ChannelPreparer = async (request, target) => {
  assertSingleLine(request);
  const { protocol, host, origin } = credentialHostOf(request);
  const paths: string[] = [];
  const cleanup = removingCleanup(paths);
  try {
    paths.push(await writePrivateFile(target, 'git-token', request.value));
    paths.push(await writePrivateFile(target, 'git-credential-helper', helperScript(protocol, host, paths[0] ?? ''), 0o700));
  } catch (error) {
    await cleanup();
    throw error;
  }
  const config: ReadonlyArray<readonly [string, string]> = [
    ['credential.helper', ''],
    [`credential.${origin}.helper`, `!${shellQuote(paths[1] ?? '')}`],
    [`credential.${origin}.useHttpPath`, 'false'],
    ['credential.interactive', 'false'],
    ['core.askPass', ''],
  ];
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(config.length), GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '' };
  config.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return { env, argsAfterCommand: [], paths, cleanup };
};
