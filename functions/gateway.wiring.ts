import type { SandboxHost } from '../domain/ports/sandboxHost';
import { Gateway, type GatewayDependencies } from '../domain/services/gateway';
import { DEFAULT_GATEWAY_LIMITS, type GatewayLimits, SandboxGatewayOperations } from '../infra/gateway/sandboxGatewayOperations';

/** The gateway over a sandbox host: the domain's use case with this process's operation runner. */
export function sandboxGateway(
  d: Omit<GatewayDependencies, 'operations' | 'operationTimeoutMs'> & { readonly host: SandboxHost; readonly limits?: Partial<GatewayLimits>; readonly fetch?: typeof fetch },
): Gateway {
  const { host, limits: partial, fetch: fetchImpl, ...rest } = d;
  const limits = { ...DEFAULT_GATEWAY_LIMITS, ...partial };
  return new Gateway({ ...rest, operations: new SandboxGatewayOperations(host, limits, fetchImpl), operationTimeoutMs: limits.operationTimeoutMs });
}
