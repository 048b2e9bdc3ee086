import path from 'node:path';
import { resolveTrustedProgram } from '../trustedPrograms';
import { credentialHostOf } from './credentialHost';
import { removingCleanup, writePrivateFile } from './credentialFiles';
import type { ChannelPreparer } from './preparer';
import { assertSingleLine, ChannelRequestError } from './preparer';

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
 * Command-scope config entries. They come after system, global and repository config, so for the same key
 * they win over anything a hostile repository (`.git/config`, `.git/hooks`) or HOME could set: the empty
 * `credential.helper` drops every helper configured elsewhere (no store or cache helper sees the token),
 * hooks and fsmonitor (code that would run as this uid, able to read the token file) are switched off, and
 * only the credential's own transport may run (no `ext::` or `file://` remotes that execute commands).
 */
function configEntries(protocol: string, origin: string, helper: string, egressProxy: string): ReadonlyArray<readonly [string, string]> {
  return [
    ['credential.helper', ''],
    [`credential.${origin}.helper`, `!${shellQuote(helper)}`],
    [`credential.${origin}.useHttpPath`, 'false'],
    ['credential.interactive', 'false'],
    ['core.askPass', ''],
    ['core.hooksPath', '/dev/null'],
    ['core.fsmonitor', 'false'],
    ['push.gpgSign', 'false'],
    // Under uid isolation the workspace repository belongs to the agent's uid, not this process's; with the
    // code-running keys above neutralised (and only clone/fetch/push/ls-remote allowed), operating on it is
    // the point of the delivery, so git's ownership check is lifted for this process only.
    ['safe.directory', '*'],
    // A hostile repository config must not run code here or route the request through a host of its choosing:
    // alternates with core.alternateRefsCommand run a shell command during fetch negotiation; a proxy, or a
    // pinned address with TLS checks off, would receive the Authorization header. (`http.<url>.*` and
    // `remote.<url>.proxy` entries are more specific than these; the gateway overrides them for its remote.)
    ['core.alternateRefsCommand', 'true'],
    // Submodules are other repositories, whose config the agent may have written: never entered here.
    ['submodule.recurse', 'false'],
    ['fetch.recurseSubmodules', 'false'],
    ['push.recurseSubmodules', 'no'],
    // The platform's egress proxy when the sandbox has its own network (the only way out), else none at all.
    ['http.proxy', egressProxy],
    ['http.curloptResolve', ''],
    ['http.sslVerify', 'true'],
    ['protocol.allow', 'never'],
    ...['ext', 'file', 'ssh', 'git', 'http', 'https'].map(
      (name) => [`protocol.${name}.allow`, name === protocol ? 'always' : 'never'] as const,
    ),
  ];
}

/**
 * `git-credential-helper`: git learns its helper from GIT_CONFIG_COUNT/KEY/VALUE env entries, so nothing is
 * written to `.git/config` or the remote URL and the token itself is never in the env, only the helper's
 * path. System and global config are not read at all (HOME may be writable by the agent); prompts and
 * askpass programs are off, so a failure fails instead of asking. `-c` on the command line and
 * GIT_CONFIG_PARAMETERS would be read after these entries: see `assertGitCommand`, and the delivery sets
 * GIT_CONFIG_PARAMETERS itself so a standing one is a launch conflict rather than an override.
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
  const config = configEntries(protocol, origin, paths[1] ?? '', target.egressProxy ?? '');
  const env: Record<string, string> = {
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_CONFIG_PARAMETERS: '',
    GIT_CONFIG_COUNT: String(config.length),
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '',
    // A process working in a private directory below this one must not discover a repository above it
    // (/dev/shm is writable by every sandbox; a `.git` planted there would bring its own config).
    GIT_CEILING_DIRECTORIES: target.credentialDir,
  };
  config.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return { env, argsAfterCommand: [], paths, cleanup };
};

/**
 * Options that would be applied after the channel's config (`-c`, `--config-env`), that bring config or
 * templates of the caller's choosing into a new clone (`--config`, `--template`, where a filter driver would
 * run at checkout), or that name a program to run in the process holding the delivery (`--exec-path`,
 * `--upload-pack`, `--receive-pack`, `--exec`, `--signed` via gpg.program).
 */
const UNSAFE_GIT_OPTION =
  /^(-c.*|--config-env(=.*)?|--config(=.*)?|--template(=.*)?|--exec-path(=.*)?|--upload-pack(=.*)?|--receive-pack(=.*)?|--exec(=.*)?|--signed(=.*)?)$/;
/** The operations a credential is for; anything that checks out or merges (pull, checkout) runs without it. */
const GIT_SUBCOMMANDS = new Set(['clone', 'fetch', 'push', 'ls-remote']);
/** Global options that take their value as the next argument. */
const GLOBAL_WITH_VALUE = new Set(['-C', '--git-dir', '--work-tree', '--namespace']);

/** Checks a git command before it receives this channel's delivery; throws naming the offending part. */
export function assertGitCommand(secretName: string, command: readonly string[], allowed: ReadonlySet<string> = GIT_SUBCOMMANDS): void {
  const [program, ...args] = command;
  // Resolved the way the host will run it (trusted directories only), so a workspace file named `git` is not git.
  let resolved: string | undefined;
  try {
    resolved = program === undefined ? undefined : resolveTrustedProgram(program);
  } catch {
    resolved = undefined;
  }
  if (resolved === undefined || path.basename(resolved) !== 'git') throw new ChannelRequestError(secretName, 'the git channel serves the system git only');
  const unsafe = args.find((a) => UNSAFE_GIT_OPTION.test(a));
  if (unsafe !== undefined) throw new ChannelRequestError(secretName, `the git command uses ${unsafe.split('=')[0]}, which could override the channel`);
  let i = 0;
  while (i < args.length && (args[i] ?? '').startsWith('-')) i += GLOBAL_WITH_VALUE.has(args[i] ?? '') ? 2 : 1;
  const subcommand = args[i];
  if (subcommand === undefined || !allowed.has(subcommand))
    throw new ChannelRequestError(secretName, `"git ${subcommand ?? ''}" is not an operation the git channel serves here (${[...allowed].join(', ')})`);
}

/** An argument (or an option's `=value`) that names a place outside the working directory. */
const LEAVES_WORKDIR = /^(-[^=]*=)?(\/|~)|(^|[=/])\.\.(\/|$)/;

/**
 * A git command that runs in a private directory and hands its result over afterwards (CommandSpec.handOver):
 * the subcommand comes first (no `-C`, `--git-dir` or `--work-tree` to work elsewhere) and no argument
 * names an absolute path, a home directory or a parent, so everything it reads and writes on disk stays in
 * the directory nothing else of the sandbox can write while it runs.
 */
export function assertPrivateGitCommand(secretName: string, command: readonly string[]): void {
  const [, subcommand, ...args] = command;
  if (subcommand === undefined || subcommand.startsWith('-'))
    throw new ChannelRequestError(secretName, 'the git command must start with its subcommand (no -C, --git-dir or --work-tree)');
  const outside = args.find((a) => LEAVES_WORKDIR.test(a) || a.startsWith('--separate-git-dir'));
  if (outside !== undefined)
    throw new ChannelRequestError(secretName, 'a credentialed git command works in its own directory: no absolute path, ~ or .. in its arguments');
}
