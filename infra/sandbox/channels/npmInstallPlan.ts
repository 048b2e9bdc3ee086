import path from 'node:path';
import { NPM_CREDENTIAL_FLAGS } from '../../../domain/secretPolicy';
import type { CredentialRequest } from '../credentialDelivery';
import { ChannelRequestError } from './preparer';

/** One process the launcher starts: its argv and, at most, the one credential it receives. */
export interface PlannedProcess {
  readonly command: readonly string[];
  readonly credential?: CredentialRequest;
}

const INSTALL_COMMANDS = new Set(['install', 'i', 'add', 'ci', 'clean-install', 'ic', 'install-clean', 'update', 'up', 'upgrade']);
const CLEAN_INSTALL = new Set(['ci', 'clean-install', 'ic', 'install-clean']);
/** What `npm install` with no package arguments runs for the project itself, in npm's order. */
const PROJECT_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepublish', 'preprepare', 'prepare', 'postprepare'];

/**
 * Flags that, placed after the channel's own `--userconfig <file> --ignore-scripts`, would win over them
 * (npm lets the last occurrence of a flag win): running scripts, or reading another config, in the process
 * that holds the token. `--foreground-scripts` and friends are harmless but refused with them for clarity.
 */
const OVERRIDING_FLAG = /^--?(no-)?(ignore-scripts|userconfig|globalconfig|script-shell|foreground-scripts)(=|$)/;

/**
 * Splits an npm install into two processes: the authenticated install with the token's config and
 * `--ignore-scripts` (added by the package-manager-config channel), then `npm rebuild` with no credential,
 * which runs the lifecycle scripts (preinstall, install, postinstall) the first process skipped, and, for an
 * install of the project itself, the project's own scripts. Scripts therefore run where no token is within
 * reach: not in their env, not in a config file (it is removed when the first process exits).
 */
export function planPackageInstall(command: readonly string[], credential: CredentialRequest): readonly PlannedProcess[] {
  const [program, ...args] = command;
  if (credential.use !== 'npm') throw new ChannelRequestError(credential.secretName, `use "${credential.use}" is not an npm install`);
  if (program === undefined || path.basename(program) !== 'npm')
    throw new ChannelRequestError(credential.secretName, 'the npm channel serves npm commands only');
  const subcommand = args.find((a) => !a.startsWith('-'));
  if (subcommand === undefined || !INSTALL_COMMANDS.has(subcommand))
    throw new ChannelRequestError(credential.secretName, `"npm ${subcommand ?? ''}" is not an install command`);
  const overriding = args.find((a) => OVERRIDING_FLAG.test(a));
  if (overriding !== undefined)
    throw new ChannelRequestError(credential.secretName, `the command sets ${overriding.split('=')[0]}, which the channel controls`);
  const packageArgs = CLEAN_INSTALL.has(subcommand) ? [] : args.slice(args.indexOf(subcommand) + 1).filter((a) => !a.startsWith('-'));
  const scripts: PlannedProcess[] = [{ command: [program, 'rebuild'] }];
  // `npm rebuild` runs dependencies' scripts; a bare install (`npm install`, `npm ci`) also owes the project's.
  if (packageArgs.length === 0)
    for (const event of PROJECT_SCRIPTS) scripts.push({ command: [program, 'run-script', '--if-present', event] });
  // The hardening flags go last, so they outrank every config file, including a project .npmrc written by
  // an earlier step's scripts (see NPM_CREDENTIAL_FLAGS).
  const hardened = [...command, ...NPM_CREDENTIAL_FLAGS.filter((flag) => !command.includes(flag))];
  return [{ command: hardened, credential }, ...scripts];
}
