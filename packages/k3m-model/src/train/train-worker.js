// Worker-thread entry of data-parallel training: registers tsx (no build step) in this thread,
// then runs the TypeScript worker (train-worker.ts).
import { register } from 'tsx/esm/api';

register();
await import('./train-worker.ts');
