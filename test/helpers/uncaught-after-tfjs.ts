// Run by test/faults.test.ts: start the tfjs wasm backend (which installs its own rethrowing
// uncaughtException handler), then throw from a timer, outside any promise the CLI awaits.
import { installLastResortHandlers } from '../../src/cli/failure.ts';
import { initTf } from '../../src/util/tfjs.ts';

installLastResortHandlers();
await initTf();
setTimeout(() => {
  throw new Error('thrown from a timer after tfjs started');
}, 0);
