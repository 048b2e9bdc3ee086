import type { Channel } from '../../../domain/run';
import { channelFor } from '../../../domain/secretPolicy';
import type { CredentialRequest } from '../credentialDelivery';
import { prepareGitCredentialHelper } from './gitCredentialHelper';
import { preparePackageManagerConfig } from './packageManagerConfig';
import { ChannelRequestError, type ChannelPreparer } from './preparer';
import { prepareProcessEnv } from './processEnv';
import { prepareStdin } from './stdin';
import { prepareTempFile } from './tempFile';

export type { ChannelPreparer } from './preparer';
export { ChannelRequestError } from './preparer';
export { planPackageInstall, type PlannedProcess } from './npmInstallPlan';
export { assertGitCommand, assertPrivateGitCommand } from './gitCredentialHelper';

/**
 * Every channel that delivers something into a sandbox process; `refused` has no preparer, so asking for it
 * cannot deliver, and `gateway-header` is applied by the platform process itself (infra/gateway), never here.
 */
export type DeliveringChannel = Exclude<Channel, 'refused' | 'gateway-header'>;

export const channelPreparers: Readonly<Record<DeliveringChannel, ChannelPreparer>> = {
  'process-env': prepareProcessEnv,
  'temp-file': prepareTempFile,
  stdin: prepareStdin,
  'git-credential-helper': prepareGitCredentialHelper,
  'package-manager-config': preparePackageManagerConfig,
};

/** The preparer for a request's use; the domain's policy picks the channel, and `refused` delivers nothing. */
export function preparerFor(request: CredentialRequest): ChannelPreparer {
  const channel = channelFor(request.use);
  if (channel === 'refused' || channel === 'gateway-header') throw new ChannelRequestError(request.secretName, `use "${request.use}" has no channel`);
  return channelPreparers[channel];
}
