import type { SandboxHost } from '../domain/ports/sandboxHost';
import { Gateway, type GatewayDependencies } from '../domain/services/gateway';
import type { RunSpecStore } from '../domain/services/runPorts';
import { DEFAULT_GATEWAY_LIMITS, type GatewayLimits, SandboxGatewayOperations } from '../infra/gateway/sandboxGatewayOperations';

/**
 * The gateway over a sandbox host: the domain's use case with this process's operation runner. Given the run
 * specs, it serves a run whose sandbox another instance holds wherever the host can adopt (docs/gateway.md).
 */
export function sandboxGateway(
  d: Omit<GatewayDependencies, 'operations' | 'operationTimeoutMs' | 'adoption'> & {
    readonly host: SandboxHost;
    readonly specs?: RunSpecStore;
    readonly limits?: Partial<GatewayLimits>;
    readonly fetch?: typeof fetch;
  },
): Gateway {
  const { host, specs, limits: partial, fetch: fetchImpl, ...rest } = d;
  const limits = { ...DEFAULT_GATEWAY_LIMITS, ...partial };
  return new Gateway({
    ...rest,
    ...(specs ? { adoption: { host, specs } } : {}),
    operations: new SandboxGatewayOperations(host, limits, fetchImpl),
    operationTimeoutMs: limits.operationTimeoutMs,
  });
}
