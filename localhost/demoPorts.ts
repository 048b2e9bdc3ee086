/**
 * The demo's two git servers listen on these loopback ports. Isolated sandboxes reach no loopback port of
 * the host unless it is declared (SANDBOX_EGRESS_TEST_SERVERS); a development backend without that setting
 * declares these, so `npm run demo` works against `npm start`.
 */
export const DEMO_GIT_PORTS: readonly number[] = [7181, 7182];
