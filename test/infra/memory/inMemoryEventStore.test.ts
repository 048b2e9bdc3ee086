import { InMemoryEventStore } from '../../../infra/memory/inMemoryEventStore';
import { describeEventStoreContract } from '../../contracts/eventStore.contract';

describeEventStoreContract('InMemoryEventStore', (options) => new InMemoryEventStore(options ?? {}));
