// The Functions app's entry point (package.json `main`): importing a feature file registers its triggers.
import './health.http';
import './api.http';
import './runLifecycle.orchestrator';
import './runLifecycle.activities';
import './gateway.http';
import './signing';
import './runQueue';
import './outbox';
