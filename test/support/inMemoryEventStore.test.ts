import { InMemoryEventStore } from './inMemoryEventStore';
import { describeEventStoreContract } from '../contracts/eventStore.contract';

describeEventStoreContract('InMemoryEventStore', (options) => new InMemoryEventStore(options ?? {}));
