import { describeHttpFuzz } from '../support/batteryHttpFuzzSuite';

describeHttpFuzz({ name: 'HTTP bad input', runs: 1000, timeoutMs: 110_000 });
