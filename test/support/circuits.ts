// Circuits for tests of pure code: the fields a test is about, over the record a newly created
// circuit has (generation 1, live, created 2026-01-01, nothing pending, no request digest).
import type { Circuit } from '../../lib/model.js';

type Described = Pick<Circuit, 'id' | 'worker' | 'protocol' | 'appMode' | 'frontend' | 'allowedClientIps' | 'healthCheck' | 'routes'>;

export function storedCircuit(fields: Described & Partial<Circuit>): Circuit {
  return {
    generation: 1,
    deletedAt: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    unloadRequestedAt: null,
    keysRemovedAt: null,
    createDigest: null,
    ...fields,
  };
}
