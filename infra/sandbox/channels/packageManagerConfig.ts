import { credentialHostOf } from './credentialHost';
import { removingCleanup, writePrivateFile } from './credentialFiles';
import type { ChannelPreparer } from './preparer';
import { assertSingleLine } from './preparer';

/**
 * `package-manager-config`: a user config file holding the registry and a token scoped to that registry's
 * host (npm sends it to no other host), passed as `--userconfig`, so the workspace's `.npmrc` and `~/.npmrc`
 * are neither read for auth nor written. `--ignore-scripts` keeps every lifecycle script out of the process
 * that can read the token; the scripts run afterwards in a second process without it (see npmInstallPlan.ts).
 * Command-line flags outrank env, project and user config in npm, so neither can switch scripts back on.
 */
export const preparePackageManagerConfig: ChannelPreparer = async (request, target) => {
  assertSingleLine(request);
  const { host, origin } = credentialHostOf(request);
  const content = `registry=${origin}/\n//${host}/:_authToken=${request.value}\nignore-scripts=true\n`;
  const file = await writePrivateFile(target, 'npmrc', content);
  const paths = [file];
  return {
    env: {},
    argsAfterCommand: ['--userconfig', file, '--ignore-scripts'],
    paths,
    cleanup: removingCleanup(paths),
  };
};
