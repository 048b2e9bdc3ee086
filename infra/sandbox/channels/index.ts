import type { Channel } from '../../../domain/run';
import type { CredentialRequest } from '../credentialDelivery';
import { prepareGitCredentialHelper } from './gitCredentialHelper';
import { preparePackageManagerConfig } from './packageManagerConfig';
import type { ChannelPreparer } from './preparer';
import { prepareProcessEnv } from './processEnv';
import { prepareStdin } from './stdin';
import { prepareTempFile } from './tempFile';

export type { ChannelPreparer } from './preparer';
export { ChannelRequestError } from './preparer';
export { planPackageInstall, type PlannedProcess } from './npmInstallPlan';

/** Every channel that delivers something; `refused` has no preparer, so asking for it cannot deliver. */
export type DeliveringChannel = Exclude<Channel, 'refused'>;

export const channelPreparers: Readonly<Record<DeliveringChannel, ChannelPreparer>> = {
  'process-env': prepareProcessEnv,
  'temp-file': prepareTempFile,
  stdin: prepareStdin,
  'git-credential-helper': prepareGitCredentialHelper,
  'package-manager-config': preparePackageManagerConfig,
};

/** The platform picks the channel from the use a RunSpec or gateway operation names (DESIGN.md §5). */
export const channelForUse: Readonly<Record<CredentialRequest['use'], DeliveringChannel>> = {
  env: 'process-env',
  file: 'temp-file',
  stdin: 'stdin',
  git: 'git-credential-helper',
  npm: 'package-manager-config',
};

/** The preparer for a request's use. */
export function preparerFor(request: CredentialRequest): ChannelPreparer {
  return channelPreparers[channelForUse[request.use]];
}
