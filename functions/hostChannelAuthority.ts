import type { ServiceDependencies } from '../domain/services/dependencies';
import { authenticateHost, exchangeEnrolmentToken, recordHostMessageRefused, rotateHostCredential } from '../domain/services/sandboxHosts';
import type { HostChannelAuthority } from '../infra/sandbox/remote/hostChannelServer';
import { randomHostCredentials } from '../infra/sandbox/remote/randomHostCredentials';

/** The channel's authority over the use cases: enrolment, authentication and refusals, all on the host's stream. */
export function hostChannelAuthority(deps: ServiceDependencies): HostChannelAuthority {
  return {
    authenticate: (credential) => authenticateHost(deps, randomHostCredentials, credential),
    rotate: (credential) => rotateHostCredential(deps, randomHostCredentials, credential),
    enrol: (token) => exchangeEnrolmentToken(deps, randomHostCredentials, token),
    recordRefused: (address, refusal) => recordHostMessageRefused(deps, address, refusal),
  };
}
